import { ConfigError } from './core/config-errors.js';
import { CidrSet } from './core/ip.js';
import { issuerProblem, scopesProblem } from './core/portal/oidc.js';
import { userClaimsProblem } from './core/portal/portal-user.js';

/**
 * Environment read and validated once, at cold start: a misconfigured function fails at init with a
 * message that names the variable, never mid-request.
 */
export type Env = Record<string, string | undefined>;

export function requiredString(env: Env, name: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`environment variable ${name} is required`);
  return value;
}

export function optionalString(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** Comma-separated CIDRs; absent or empty means "no list". */
export function optionalCidrs(env: Env, name: string): CidrSet | undefined {
  const value = optionalString(env, name);
  if (value === undefined) return undefined;
  try {
    return CidrSet.parse(splitList(value));
  } catch (error) {
    throw new ConfigError(`${name}: ${(error as Error).message}`);
  }
}

export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/** A path prefix must be one URL path segment of safe characters, so it can be compared literally. */
export function validatePathPrefix(prefix: string | undefined, what = 'path prefix'): string | undefined {
  if (prefix === undefined) return undefined;
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9._~-]{1,128}$/.test(trimmed)) {
    throw new ConfigError(`${what} must be 1–128 characters of A–Z, a–z, 0–9, '.', '_', '~' or '-'`);
  }
  return trimmed;
}

export interface ResolverFunctionConfig {
  readonly tableName: string;
  /** The verifier's tokens table; absent: POST …/verifyToken answers 404. */
  readonly tokensTableName?: string;
  readonly allowedSources?: CidrSet;
  readonly pathPrefix?: string;
}

/** The portal's environment, as lib/resolver-portal.ts sets it on the portal's own function. */
export interface PortalFunctionConfig {
  readonly issuer: string;
  /** Absent in cognito mode: the client id is in the secret (see lambda/adapters/portal-secret.ts). */
  readonly clientId?: string;
  readonly secretId: string;
  readonly gatewayUrl: string;
  readonly groupsClaim?: string;
  /** Space-separated; @default 'openid email profile' */
  readonly scopes?: string;
  readonly leaseSeconds?: number;
  /** PORTAL_USER_CLAIMS, comma-separated: claims trusted as names besides the defaults (see UserClaimsPolicy). */
  readonly userClaims?: readonly string[];
}

function scopesOf(value: string | undefined): string | undefined {
  const problem = value === undefined ? undefined : scopesProblem(value);
  if (problem) throw new ConfigError(`PORTAL_SCOPES ${problem}`);
  return value;
}

export function readPortalFunctionConfig(env: Env): PortalFunctionConfig | undefined {
  const issuer = optionalString(env, 'PORTAL_ISSUER');
  if (issuer === undefined) return undefined;
  let problem: string | undefined;
  try {
    problem = issuerProblem(new URL(issuer));
  } catch {
    problem = 'must be a URL';
  }
  if (problem) throw new ConfigError(`PORTAL_ISSUER ${problem}`);
  const lease = optionalString(env, 'PORTAL_LEASE_SECONDS');
  if (lease !== undefined && !/^\d{2,7}$/.test(lease)) throw new ConfigError('PORTAL_LEASE_SECONDS must be a number of seconds (10 to 9999999)');
  const groupsClaim = optionalString(env, 'PORTAL_GROUPS_CLAIM');
  const claims = optionalString(env, 'PORTAL_USER_CLAIMS');
  const userClaims = claims === undefined ? [] : splitList(claims);
  const claimsProblem = userClaimsProblem(userClaims, groupsClaim);
  if (claimsProblem) throw new ConfigError(`PORTAL_USER_CLAIMS ${claimsProblem}`);
  return {
    issuer,
    clientId: optionalString(env, 'PORTAL_CLIENT_ID'),
    secretId: requiredString(env, 'PORTAL_SECRET_ID'),
    gatewayUrl: requiredString(env, 'PORTAL_GATEWAY_URL'),
    groupsClaim,
    scopes: scopesOf(optionalString(env, 'PORTAL_SCOPES')),
    ...(lease === undefined ? {} : { leaseSeconds: Number(lease) }),
    ...(userClaims.length > 0 ? { userClaims } : {}),
  };
}

export function readResolverFunctionConfig(env: Env): ResolverFunctionConfig {
  return {
    tableName: requiredString(env, 'TABLE_NAME'),
    tokensTableName: optionalString(env, 'TOKENS_TABLE_NAME'),
    allowedSources: optionalCidrs(env, 'ALLOWED_SOURCE_CIDRS'),
    pathPrefix: validatePathPrefix(optionalString(env, 'PATH_PREFIX'), 'PATH_PREFIX'),
  };
}

/** The portal's own function: the tables it reads and writes, who may reach it, and its sign-in settings. */
export interface PortalLambdaConfig {
  readonly tableName: string;
  readonly tokensTableName: string;
  /** Users' browsers allowed (PORTAL_ALLOWED_SOURCE_CIDRS); absent: anyone. */
  readonly allowedSources?: CidrSet;
  readonly portal: PortalFunctionConfig;
}

export function readPortalLambdaConfig(env: Env): PortalLambdaConfig {
  const portal = readPortalFunctionConfig(env);
  if (!portal) throw new ConfigError('environment variable PORTAL_ISSUER is required');
  return {
    tableName: requiredString(env, 'TABLE_NAME'),
    tokensTableName: requiredString(env, 'TOKENS_TABLE_NAME'),
    allowedSources: optionalCidrs(env, 'PORTAL_ALLOWED_SOURCE_CIDRS'),
    portal,
  };
}

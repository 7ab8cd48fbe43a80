import { ConfigError } from './core/config-errors';
import { CidrSet } from './core/ip';

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

export function readResolverFunctionConfig(env: Env): ResolverFunctionConfig {
  return {
    tableName: requiredString(env, 'TABLE_NAME'),
    tokensTableName: optionalString(env, 'TOKENS_TABLE_NAME'),
    allowedSources: optionalCidrs(env, 'ALLOWED_SOURCE_CIDRS'),
    pathPrefix: validatePathPrefix(optionalString(env, 'PATH_PREFIX'), 'PATH_PREFIX'),
  };
}

import { validateTagPrefix } from '../lambda/core/discovery/tag-parser.js';
import { resolveAccessSettings, type AccessSettings } from './access-settings.js';
import { PORTAL_LEASE_SECONDS_RANGE, resolvePortalSettings, type PortalProps } from './portal-settings.js';

/**
 * CDK context values (`-c key=value` or cdk.json) read and validated in one place. Context values from
 * the command line arrive as strings; from cdk.json they may be numbers or booleans.
 */
export interface StackContext extends AccessSettings, PortalProps {
  readonly stackName: string;
  readonly tableName?: string;
  /** The token verifier and its table on/off (default on), and the tokens table's name. */
  readonly verifier?: boolean;
  readonly tokensTableName?: string;
  readonly resolverMemorySize?: number;
  readonly resolverTimeoutSeconds?: number;
  readonly bundleAwsSdk?: boolean;
  /** EC2 tag discovery on/off (default on), its tag prefix and full-reconcile interval in minutes. */
  readonly discovery?: boolean;
  readonly tagPrefix?: string;
  readonly discoveryScheduleMinutes?: number;
  /** The power pass (desktops on demand) on/off; default on whenever discovery is. */
  readonly desktopPower?: boolean;
  /** SNS topic the alarms notify (lib/resolver-observability.ts). */
  readonly alarmTopicArn?: string;
}

type Lookup = (key: string) => unknown;

function text(lookup: Lookup, key: string): string | undefined {
  const value = lookup(key);
  if (value === undefined || value === null || value === '') return undefined;
  return String(value).trim();
}

export function contextInt(lookup: Lookup, key: string, min: number, max: number): number | undefined {
  const value = text(lookup, key);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`context '${key}' must be an integer from ${min} to ${max}, not '${value}'`);
  }
  return n;
}

export function contextBool(lookup: Lookup, key: string): boolean | undefined {
  const value = text(lookup, key);
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new Error(`context '${key}' must be true or false, not '${value}'`);
}

/** Comma-separated in `-c`, or a JSON array in cdk.json. */
export function contextList(lookup: Lookup, key: string): string[] | undefined {
  const value = lookup(key);
  if (value === undefined || value === null || value === '') return undefined;
  const parts = (Array.isArray(value) ? value.map(String) : String(value).split(','))
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  return parts.length > 0 ? parts : undefined;
}

/** A discovery tag prefix, validated by the same rule the function uses. Not trimmed: tags match literally. */
export function contextTagPrefix(lookup: Lookup, key: string): string | undefined {
  const value = lookup(key);
  if (value === undefined || value === null || value === '') return undefined;
  try {
    return validateTagPrefix(String(value));
  } catch (error) {
    throw new Error(`context '${key}': ${(error as Error).message}`);
  }
}

const SNS_TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;

/** An SNS topic ARN (checked here, so a typo fails at synth rather than at the first alarm). */
export function contextTopicArn(lookup: Lookup, key: string): string | undefined {
  const value = text(lookup, key);
  if (value === undefined) return undefined;
  if (!SNS_TOPIC_ARN.test(value)) {
    throw new Error(`context '${key}' must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>), not '${value}'`);
  }
  return value;
}

/**
 * Reads and validates everything; throws with a message that names the context key to set. The access
 * rules (an allow-list or an explicit open endpoint in `network` mode) are enforced here, so the default
 * `npx cdk synth` with no context fails and says what to set.
 */
export function readStackContext(lookup: Lookup): StackContext {
  const access = resolveAccessSettings({
    accessMode: text(lookup, 'accessMode'),
    allowedSourceCidrs: contextList(lookup, 'allowedSourceCidrs'),
    allowAnySource: contextBool(lookup, 'allowAnySource'),
    pathPrefix: text(lookup, 'pathPrefix'),
    invokerRoleArn: text(lookup, 'invokerRoleArn'),
    reservedConcurrency: contextInt(lookup, 'reservedConcurrency', 1, 1000),
    vpcEndpointIds: contextList(lookup, 'vpcEndpointIds'),
    vpcId: text(lookup, 'vpcId'),
    subnetIds: contextList(lookup, 'subnetIds'),
    vpcCidr: text(lookup, 'vpcCidr'),
  });
  const verifier = contextBool(lookup, 'verifier');
  const portal: PortalProps = {
    portal: text(lookup, 'portal'),
    gatewayUrl: text(lookup, 'gatewayUrl'),
    oidcIssuer: text(lookup, 'oidcIssuer'),
    oidcClientId: text(lookup, 'oidcClientId'),
    oidcGroupsClaim: text(lookup, 'oidcGroupsClaim'),
    oidcScopes: text(lookup, 'oidcScopes'),
    oidcUserClaims: contextList(lookup, 'oidcUserClaims'),
    portalLeaseSeconds: contextInt(lookup, 'portalLeaseSeconds', PORTAL_LEASE_SECONDS_RANGE.min, PORTAL_LEASE_SECONDS_RANGE.max),
    cognitoDomainPrefix: text(lookup, 'cognitoDomainPrefix'),
    portalAllowedSourceCidrs: contextList(lookup, 'portalAllowedSourceCidrs'),
  };
  // Validated here too, so `cdk synth` stops with one line naming the key before any construct is built.
  resolvePortalSettings(portal, { verifier });
  return {
    ...access,
    ...portal,
    stackName: text(lookup, 'stackName') ?? 'DcvSessionResolver',
    tableName: text(lookup, 'tableName'),
    verifier,
    tokensTableName: text(lookup, 'tokensTableName'),
    resolverMemorySize: contextInt(lookup, 'resolverMemorySize', 128, 10240),
    resolverTimeoutSeconds: contextInt(lookup, 'resolverTimeoutSeconds', 1, 900),
    bundleAwsSdk: contextBool(lookup, 'bundleAwsSdk'),
    discovery: contextBool(lookup, 'discovery'),
    tagPrefix: contextTagPrefix(lookup, 'tagPrefix'),
    discoveryScheduleMinutes: contextInt(lookup, 'discoveryScheduleMinutes', 1, 1440),
    desktopPower: contextBool(lookup, 'desktopPower'),
    alarmTopicArn: contextTopicArn(lookup, 'alarmTopicArn'),
  };
}

import { Token } from 'aws-cdk-lib';
import { validatePathPrefix } from '../lambda/config.js';
import { CidrSet } from '../lambda/core/ip.js';

/**
 * How callers reach the resolver (contract section 3: a Function URL is always public, so `network` and
 * `iam` build "private" from layers; `private` leaves the internet out). The names are the product's
 * interface: CDK context keys and stack props share them.
 *
 * - `network`: Function URL, AuthType NONE + a source allow-list checked in the handler + optional secret path prefix.
 * - `iam`: Function URL, AuthType AWS_IAM; the named role invokes it through `dcv-resolver proxy`.
 * - `private`: no Function URL; a PRIVATE API Gateway REST API reached only through the given (or a created)
 *   execute-api interface VPC endpoint, for networks with no internet path (lib/private-api.ts).
 */
export type AccessMode = 'network' | 'iam' | 'private';
export const ACCESS_MODES: readonly AccessMode[] = ['network', 'iam', 'private'];

/** A cost cap: at most this many concurrent resolver invocations. */
export const DEFAULT_RESERVED_CONCURRENCY = 10;

export interface AccessProps {
  /**
   * How callers reach the Function URL: `'network'` (AuthType NONE, a source allow-list checked in the
   * handler, an optional secret path prefix) or `'iam'` (AuthType AWS_IAM, invoked by `invokerRoleArn`
   * through `dcv-resolver proxy` on the gateway host).
   * @default 'network'
   */
  readonly accessMode?: string;
  /**
   * Caller CIDRs (IPv4/IPv6) in `network` mode: the gateway's and DCV servers' egress addresses.
   * In `network` mode either this or `allowAnySource: true` must be set, or synthesis fails with an error.
   * @default - none (see allowAnySource)
   */
  readonly allowedSourceCidrs?: readonly string[];
  /**
   * `true` deploys a `network`-mode endpoint that answers any caller, on purpose.
   * @default false
   */
  readonly allowAnySource?: boolean;
  /**
   * Secret first path segment: the gateway's url becomes `https://<host>/<prefix>`.
   * @default - no prefix
   */
  readonly pathPrefix?: string;
  /**
   * Required in `iam` mode: the role allowed to invoke the URL (the gateway host's instance role). The grant
   * goes into the function's resource policy; the role itself is never edited.
   * @default - none (an error in `iam` mode)
   */
  readonly invokerRoleArn?: string;
  /**
   * Reserved concurrency of the resolver function (a cost cap). In `private` mode the API stage's
   * throttling is derived from it too.
   * @default 10 (DEFAULT_RESERVED_CONCURRENCY)
   */
  readonly reservedConcurrency?: number;
  /**
   * `private` mode: existing execute-api interface VPC endpoint ids (`vpce-…`) the API admits. Either this or
   * `vpcId` + `subnetIds` (the stack creates an endpoint) must be set.
   * @default - none
   */
  readonly vpcEndpointIds?: readonly string[];
  /**
   * `private` mode: the VPC in which to create an execute-api interface endpoint (with `subnetIds`).
   * @default - none
   */
  readonly vpcId?: string;
  /**
   * `private` mode: the subnets (one per Availability Zone) of the endpoint created in `vpcId`.
   * @default - none
   */
  readonly subnetIds?: readonly string[];
  /**
   * `private` mode, created endpoint: the VPC's CIDR, admitted on 443 by the endpoint's security group when
   * `allowedSourceCidrs` is not set.
   * @default - none (then allowedSourceCidrs must be set)
   */
  readonly vpcCidr?: string;
}

export interface AccessSettings {
  readonly accessMode: AccessMode;
  readonly allowedSourceCidrs?: readonly string[];
  readonly allowAnySource: boolean;
  readonly pathPrefix?: string;
  readonly invokerRoleArn?: string;
  readonly reservedConcurrency: number;
  /** `private` mode only: the endpoint to admit, or the one to create. */
  readonly privateEndpoint?: PrivateEndpointSettings;
}

/** `private` mode: admit existing endpoints, or create one in a VPC. */
export type PrivateEndpointSettings =
  | { readonly kind: 'existing'; readonly vpcEndpointIds: readonly string[] }
  | { readonly kind: 'create'; readonly vpcId: string; readonly subnetIds: readonly string[]; readonly vpcCidr?: string };

export const MISSING_ALLOW_LIST_MESSAGE =
  "accessMode 'network' needs an allow-list of callers: set allowedSourceCidrs to the gateway's and DCV " +
  "servers' egress CIDRs (e.g. -c allowedSourceCidrs=203.0.113.10/32,2001:db8:1::/64), or set " +
  'allowAnySource=true to deploy an endpoint that answers any caller on purpose, or use ' +
  '-c accessMode=iam -c invokerRoleArn=arn:aws:iam::<account>:role/<gateway-host-role>';

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const VPC_ENDPOINT_ID = /^vpce-[0-9a-f]{8,17}$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const PRIVATE_ONLY_KEYS = ['vpcEndpointIds', 'vpcId', 'subnetIds', 'vpcCidr'] as const;

/** Thrown for settings that cannot be deployed; the message names the key to set. */
export class AccessSettingsError extends Error {
  override readonly name = 'AccessSettingsError';
}

function fail(message: string): never {
  throw new AccessSettingsError(message);
}

export interface ResolveAccessOptions {
  /**
   * Whether a `network` mode without an allow-list and without allowAnySource throws (the CDK app) or
   * is reported back as `undecidedOpen` (the stack, which turns it into a synth error annotation).
   * @default true
   */
  readonly requireSourceDecision?: boolean;
}

/** Validates and fills defaults; every message says which key is wrong and what it should be. */
export function resolveAccessSettings(
  props: AccessProps,
  options: ResolveAccessOptions = {},
): AccessSettings & { readonly undecidedOpen: boolean } {
  const mode = props.accessMode ?? 'network';
  if (!(ACCESS_MODES as readonly string[]).includes(mode)) {
    fail(`accessMode must be 'network', 'iam' or 'private', not '${mode}'`);
  }
  const accessMode = mode as AccessMode;

  const list = props.allowedSourceCidrs?.map((c) => c.trim()).filter((c) => c.length > 0);
  const allowedSourceCidrs = list && list.length > 0 ? list : undefined;
  if (allowedSourceCidrs) {
    try {
      CidrSet.parse(allowedSourceCidrs);
    } catch (error) {
      fail(`allowedSourceCidrs: ${(error as Error).message}`);
    }
  }
  const allowAnySource = props.allowAnySource === true;
  if (accessMode === 'network' && allowAnySource && allowedSourceCidrs) {
    fail('set either allowedSourceCidrs or allowAnySource=true, not both');
  }

  let pathPrefix: string | undefined;
  try {
    pathPrefix = validatePathPrefix(props.pathPrefix, 'pathPrefix');
  } catch (error) {
    fail((error as Error).message);
  }

  const invokerRoleArn = props.invokerRoleArn?.trim() || undefined;
  if (accessMode === 'iam') {
    if (!invokerRoleArn) {
      fail(
        "accessMode 'iam' needs invokerRoleArn: the ARN of the role the gateway host runs as " +
          '(e.g. -c invokerRoleArn=arn:aws:iam::123456789012:role/DcvGatewayHost)',
      );
    }
    if (!Token.isUnresolved(invokerRoleArn) && !ROLE_ARN.test(invokerRoleArn)) {
      fail(`invokerRoleArn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), not '${invokerRoleArn}'`);
    }
  } else if (invokerRoleArn) {
    fail("invokerRoleArn is only used with accessMode 'iam'; set -c accessMode=iam or remove it");
  }

  const reservedConcurrency = props.reservedConcurrency ?? DEFAULT_RESERVED_CONCURRENCY;
  if (!Number.isInteger(reservedConcurrency) || reservedConcurrency < 1 || reservedConcurrency > 1000) {
    fail(`reservedConcurrency must be an integer from 1 to 1000, not '${reservedConcurrency}'`);
  }

  const privateEndpoint = accessMode === 'private' ? resolvePrivateEndpoint(props, allowedSourceCidrs, allowAnySource) : undefined;
  if (accessMode !== 'private') {
    const stray = PRIVATE_ONLY_KEYS.find((key) => nonEmpty(props[key]));
    if (stray) fail(`${stray} is only used with accessMode 'private'; set -c accessMode=private or remove it`);
  }

  const undecidedOpen = accessMode === 'network' && !allowedSourceCidrs && !allowAnySource;
  if (undecidedOpen && options.requireSourceDecision !== false) fail(MISSING_ALLOW_LIST_MESSAGE);

  return {
    accessMode,
    allowedSourceCidrs,
    allowAnySource,
    pathPrefix,
    invokerRoleArn,
    reservedConcurrency,
    undecidedOpen,
    ...(privateEndpoint ? { privateEndpoint } : {}),
  };
}

function nonEmpty(value: string | readonly string[] | undefined): boolean {
  return typeof value === 'string' ? value.trim() !== '' : Array.isArray(value) && value.some((v) => v.trim() !== '');
}

function listOf(values: readonly string[] | undefined): string[] {
  return (values ?? []).map((v) => v.trim()).filter((v) => v.length > 0);
}

/** `private` mode's endpoint: existing ids, or a VPC and subnets to create one in; never both, never neither. */
function resolvePrivateEndpoint(
  props: AccessProps,
  allowedSourceCidrs: readonly string[] | undefined,
  allowAnySource: boolean,
): PrivateEndpointSettings {
  if (allowAnySource) {
    fail("allowAnySource does not apply to accessMode 'private': only the VPC endpoint reaches the API; remove it");
  }
  const ids = listOf(props.vpcEndpointIds);
  const vpcId = props.vpcId?.trim() || undefined;
  const subnetIds = listOf(props.subnetIds);
  const vpcCidr = props.vpcCidr?.trim() || undefined;
  if (ids.length > 0 && (vpcId || subnetIds.length > 0 || vpcCidr)) {
    fail("accessMode 'private': set either vpcEndpointIds (existing endpoints) or vpcId + subnetIds (create one), not both");
  }
  if (ids.length > 0) {
    const bad = ids.find((id) => !Token.isUnresolved(id) && !VPC_ENDPOINT_ID.test(id));
    if (bad) fail(`vpcEndpointIds: '${bad}' is not a VPC endpoint id (vpce- and 8 to 17 hex digits)`);
    return { kind: 'existing', vpcEndpointIds: ids };
  }
  if (!vpcId && subnetIds.length === 0) {
    fail(
      "accessMode 'private' needs the execute-api VPC endpoint the gateway and DCV servers use: set vpcEndpointIds " +
        '(e.g. -c vpcEndpointIds=vpce-0123456789abcdef0), or vpcId and subnetIds to create one ' +
        '(e.g. -c vpcId=vpc-0a1b2c3d -c subnetIds=subnet-0a1b2c3d,subnet-4e5f6a7b)',
    );
  }
  if (!vpcId || !(Token.isUnresolved(vpcId) || VPC_ID.test(vpcId))) {
    fail(`vpcId must be a VPC id (vpc- and 8 to 17 hex digits)${vpcId ? `, not '${vpcId}'` : ' when subnetIds is set'}`);
  }
  if (subnetIds.length === 0) fail('subnetIds must name the subnets (one per Availability Zone) of the endpoint to create in vpcId');
  const badSubnet = subnetIds.find((id) => !Token.isUnresolved(id) && !SUBNET_ID.test(id));
  if (badSubnet) fail(`subnetIds: '${badSubnet}' is not a subnet id (subnet- and 8 to 17 hex digits)`);
  if (vpcCidr) {
    try {
      CidrSet.parse([vpcCidr]);
    } catch (error) {
      fail(`vpcCidr: ${(error as Error).message}`);
    }
  }
  if (!allowedSourceCidrs && !vpcCidr) {
    fail(
      "accessMode 'private' with a created endpoint needs the addresses its security group admits on 443: " +
        "set allowedSourceCidrs (the gateway's and DCV servers' addresses) or vpcCidr (the whole VPC)",
    );
  }
  return { kind: 'create', vpcId, subnetIds, ...(vpcCidr ? { vpcCidr } : {}) };
}

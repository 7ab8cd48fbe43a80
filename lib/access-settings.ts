import { Token } from 'aws-cdk-lib';
import { validatePathPrefix } from '../lambda/config.js';
import { CidrSet } from '../lambda/core/ip.js';

/**
 * How callers reach the resolver's Function URL (contract section 3: the URL is always public, so
 * "private" is built from layers). The names are the product's interface: CDK context keys and stack
 * props share them.
 *
 * - `network`: AuthType NONE + a source allow-list checked in the handler + optional secret path prefix.
 * - `iam`: AuthType AWS_IAM; the named role invokes it through `dcv-resolver proxy`.
 */
export type AccessMode = 'network' | 'iam';
export const ACCESS_MODES: readonly AccessMode[] = ['network', 'iam'];

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
   * Reserved concurrency of the resolver function (a cost cap).
   * @default 10 (DEFAULT_RESERVED_CONCURRENCY)
   */
  readonly reservedConcurrency?: number;
}

export interface AccessSettings {
  readonly accessMode: AccessMode;
  readonly allowedSourceCidrs?: readonly string[];
  readonly allowAnySource: boolean;
  readonly pathPrefix?: string;
  readonly invokerRoleArn?: string;
  readonly reservedConcurrency: number;
}

export const MISSING_ALLOW_LIST_MESSAGE =
  "accessMode 'network' needs an allow-list of callers: set allowedSourceCidrs to the gateway's and DCV " +
  "servers' egress CIDRs (e.g. -c allowedSourceCidrs=203.0.113.10/32,2001:db8:1::/64), or set " +
  'allowAnySource=true to deploy an endpoint that answers any caller on purpose, or use ' +
  '-c accessMode=iam -c invokerRoleArn=arn:aws:iam::<account>:role/<gateway-host-role>';

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

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
    fail(`accessMode must be 'network' or 'iam', not '${mode}'`);
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

  const undecidedOpen = accessMode === 'network' && !allowedSourceCidrs && !allowAnySource;
  if (undecidedOpen && options.requireSourceDecision !== false) fail(MISSING_ALLOW_LIST_MESSAGE);

  return { accessMode, allowedSourceCidrs, allowAnySource, pathPrefix, invokerRoleArn, reservedConcurrency, undecidedOpen };
}

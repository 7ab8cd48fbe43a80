import { EC2Client, paginateDescribeInstances, type DescribeInstancesCommandOutput, type Instance } from '@aws-sdk/client-ec2';
import { boundedHttpHandler } from './sdk-http-handler.js';
import type { InstanceSource } from '../core/discovery/run-discovery.js';
import type { InstanceInfo } from '../core/discovery/tag-parser.js';

/**
 * DescribeInstances for discovery. The SDK already retries each call a few times; on top of that a page
 * that is still throttled is retried with exponential backoff and the listing resumes from the last
 * good page's NextToken, so a long scan survives a throttled minute without starting over. If a page
 * still fails, the listing throws and discovery removes nothing.
 */
export interface Ec2InstanceSourceOptions {
  /** Instances per DescribeInstances page (5–1000). @default 1000 */
  readonly pageSize?: number;
  /** Extra attempts per page after the SDK's own retries give up on throttling. @default 5 */
  readonly pageRetries?: number;
  /** First backoff in ms; doubles per retry, with full jitter, capped at `maxBackoffMs`. @default 500 */
  readonly baseBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

const THROTTLING = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'EC2ThrottledException',
  'RequestThrottled',
  'ServiceUnavailable',
  'Unavailable',
  'InternalError',
]);

export function isRetryableEc2Error(error: unknown): boolean {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  if (THROTTLING.has(e?.name ?? '') || THROTTLING.has(e?.Code ?? '')) return true;
  const status = e?.$metadata?.httpStatusCode;
  return status === 429 || (status !== undefined && status >= 500);
}

/** The SDK's instance → what discovery needs (addresses, state, launch time, tags). */
export function toInstanceInfo(instance: Instance): InstanceInfo | undefined {
  if (!instance.InstanceId) return undefined;
  const tags: Record<string, string> = {};
  for (const tag of instance.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? '';
  const ipv6 =
    instance.Ipv6Address ??
    instance.NetworkInterfaces?.flatMap((ni) => ni.Ipv6Addresses ?? []).find((a) => a.Ipv6Address)?.Ipv6Address;
  const launch = instance.LaunchTime ? new Date(instance.LaunchTime).getTime() : NaN;
  return {
    instanceId: instance.InstanceId,
    state: instance.State?.Name ?? 'unknown',
    ...(Number.isFinite(launch) ? { launchTime: launch } : {}),
    ...(instance.PrivateIpAddress ? { privateIp: instance.PrivateIpAddress } : {}),
    ...(instance.PrivateDnsName ? { privateDns: instance.PrivateDnsName } : {}),
    ...(instance.PublicIpAddress ? { publicIp: instance.PublicIpAddress } : {}),
    ...(instance.PublicDnsName ? { publicDns: instance.PublicDnsName } : {}),
    ...(ipv6 ? { ipv6 } : {}),
    // EC2 sets Platform only for Windows; the power pass reads Linux hosts' signals only.
    ...(instance.Platform ? { platform: String(instance.Platform).toLowerCase() } : {}),
    tags,
  };
}

function instancesOf(page: DescribeInstancesCommandOutput): InstanceInfo[] {
  const out: InstanceInfo[] = [];
  for (const reservation of page.Reservations ?? []) {
    for (const instance of reservation.Instances ?? []) {
      const info = toInstanceInfo(instance);
      if (info) out.push(info);
    }
  }
  return out;
}

/** A discovery client: standard SDK configuration (AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2). */
export function createDiscoveryEc2Client(): EC2Client {
  return new EC2Client({
    maxAttempts: 3,
    requestHandler: boundedHttpHandler({ connectionTimeoutMs: 3000, requestTimeoutMs: 20_000 }),
  });
}

// instance-id filter values per DescribeInstances call.
const DESCRIBE_BATCH = 200;

export class Ec2InstanceSource implements InstanceSource {
  private callCount = 0;
  private readonly pageSize: number;
  private readonly pageRetries: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(
    private readonly client: EC2Client,
    options: Ec2InstanceSourceOptions = {},
  ) {
    this.pageSize = options.pageSize ?? 1000;
    this.pageRetries = options.pageRetries ?? 5;
    this.baseBackoffMs = options.baseBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 8000;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  get calls(): number {
    return this.callCount;
  }

  listTagged(tagKey: string): AsyncIterable<InstanceInfo[]> {
    return this.pages([{ Name: 'tag-key', Values: [tagKey] }]);
  }

  /** Instances carrying any of `tagKeys` (one filter: EC2 ORs a filter's values). */
  listWithAnyTag(tagKeys: readonly string[]): AsyncIterable<InstanceInfo[]> {
    return this.pages([{ Name: 'tag-key', Values: [...tagKeys] }]);
  }

  async describe(instanceIds: readonly string[]): Promise<InstanceInfo[]> {
    const out: InstanceInfo[] = [];
    // A filter, not InstanceIds: an unknown id then yields nothing instead of failing the whole call.
    for (let i = 0; i < instanceIds.length; i += DESCRIBE_BATCH) {
      const batch = instanceIds.slice(i, i + DESCRIBE_BATCH);
      for await (const page of this.pages([{ Name: 'instance-id', Values: [...batch] }])) out.push(...page);
    }
    return out;
  }

  private async *pages(filters: { Name: string; Values: string[] }[]): AsyncGenerator<InstanceInfo[]> {
    let token: string | undefined;
    let retries = 0;
    for (;;) {
      try {
        const paginator = paginateDescribeInstances(
          { client: this.client, pageSize: this.pageSize, startingToken: token },
          { Filters: filters },
        );
        for await (const page of this.countCalls(paginator)) {
          retries = 0;
          token = page.NextToken;
          yield instancesOf(page);
        }
        return;
      } catch (error) {
        if (!isRetryableEc2Error(error) || retries >= this.pageRetries) throw error;
        const ceiling = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** retries);
        retries++;
        await this.sleep(Math.round(this.random() * ceiling));
      }
    }
  }

  private async *countCalls(
    paginator: AsyncIterable<DescribeInstancesCommandOutput>,
  ): AsyncGenerator<DescribeInstancesCommandOutput> {
    const iterator = paginator[Symbol.asyncIterator]();
    for (;;) {
      this.callCount++;
      const next = await iterator.next();
      if (next.done) {
        this.callCount--; // the paginator made no call to find it was done
        return;
      }
      yield next.value;
    }
  }
}

import type { DescribeInstancesCommandInput, DescribeInstancesCommandOutput, Instance } from '@aws-sdk/client-ec2';

/**
 * An in-memory EC2 fleet that answers DescribeInstances like EC2 does for discovery's two filters
 * (`tag-key`, `instance-id`), with MaxResults/NextToken paging. Tests and benchmarks plug it into
 * aws-sdk-client-mock or a loopback HTTP server; `failure` injects an error on a chosen call.
 */
export interface FleetInstanceSpec {
  readonly state?: string;
  readonly tags?: Record<string, string>;
  readonly privateIp?: string;
  readonly launchTime?: Date;
}

export function instanceIdOf(n: number): string {
  return `i-${n.toString(16).padStart(17, '0')}`;
}

export function fleetInstance(n: number, spec: FleetInstanceSpec = {}): Instance {
  const ip = spec.privateIp ?? `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  return {
    InstanceId: instanceIdOf(n),
    State: { Name: (spec.state ?? 'running') as 'running', Code: 16 },
    LaunchTime: spec.launchTime ?? new Date(Date.UTC(2025, 0, 1) + n * 1000),
    PrivateIpAddress: ip,
    PrivateDnsName: `ip-${ip.replaceAll('.', '-')}.ec2.internal`,
    Tags: Object.entries(spec.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
  };
}

export class FakeFleet {
  readonly instances = new Map<string, Instance>();
  /** DescribeInstances calls answered or failed. */
  calls = 0;
  /** Called before each answer; return an error to fail that call. */
  failure?: (call: { readonly index: number; readonly input: DescribeInstancesCommandInput }) => Error | undefined;

  put(instance: Instance): void {
    this.instances.set(instance.InstanceId!, instance);
  }

  update(instanceId: string, change: (instance: Instance) => Instance): void {
    const current = this.instances.get(instanceId);
    if (!current) throw new Error(`no instance ${instanceId}`);
    this.instances.set(instanceId, change(current));
  }

  setTags(instanceId: string, tags: Record<string, string>): void {
    this.update(instanceId, (i) => ({ ...i, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }));
  }

  setState(instanceId: string, state: string): void {
    this.update(instanceId, (i) => ({ ...i, State: { Name: state as 'running' } }));
  }

  describe(input: DescribeInstancesCommandInput): DescribeInstancesCommandOutput {
    const index = this.calls++;
    const error = this.failure?.({ index, input });
    if (error) throw error;
    let matches = [...this.instances.values()];
    for (const filter of input.Filters ?? []) {
      const values = new Set(filter.Values ?? []);
      if (filter.Name === 'tag-key') matches = matches.filter((i) => (i.Tags ?? []).some((t) => values.has(t.Key!)));
      else if (filter.Name === 'instance-id') matches = matches.filter((i) => values.has(i.InstanceId!));
      else throw new Error(`FakeFleet: unsupported filter ${filter.Name}`);
    }
    for (const id of input.InstanceIds ?? []) if (!this.instances.has(id)) throw new Error(`FakeFleet: InstanceIds unsupported`);
    matches.sort((a, b) => (a.InstanceId! < b.InstanceId! ? -1 : 1));
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const size = input.MaxResults ?? 1000;
    const page = matches.slice(start, start + size);
    const next = start + size < matches.length ? String(start + size) : undefined;
    // One reservation per instance, as EC2 does for instances launched separately.
    return {
      Reservations: page.map((instance) => ({ ReservationId: `r-${instance.InstanceId}`, Instances: [instance] })),
      NextToken: next,
      $metadata: {},
    };
  }
}

import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client, type DescribeInstancesCommandInput, type Instance } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { createDiscoveryDynamoClient } from '../lambda/adapters/dynamodb-discovery-table';
import { createLogger } from '../lambda/adapters/logger';
import { runFullReconcile, type FullReconcileReport } from '../lambda/discovery/discovery-runner';
import { applyOfflineAwsEnv, cpuSeconds, progress, report, spread, startDynaliteChild, type Spread } from './lib';

/**
 * 4. Discovery at fleet scale: a full reconcile of N tagged instances into an empty dynalite table, then
 * the same fleet again (nothing changed: it must write nothing). EC2 is mocked at the SDK
 * (aws-sdk-client-mock) with EC2's paging: 1,000 instances per page, one reservation per instance.
 * Args: [size:repeats,…], e.g. 1000:3,10000:3,50000:1 (the biggest fleet once: it takes minutes).
 */
const plan = (process.argv[2] ?? '1000:3,10000:3,50000:1').split(',').map((entry) => {
  const [size, repeats] = entry.split(':');
  return { size: Number(size), repeats: Number(repeats ?? 1) };
});
const TABLE = 'DiscoverySessions';
const PAGE = 1000;

function instance(n: number): Instance {
  const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  return {
    InstanceId: `i-${n.toString(16).padStart(17, '0')}`,
    State: { Name: 'running', Code: 16 },
    LaunchTime: new Date(Date.UTC(2025, 0, 1) + n * 1000),
    PrivateIpAddress: ip,
    PrivateDnsName: `ip-${ip.replaceAll('.', '-')}.ec2.internal`,
    InstanceType: 'g4dn.xlarge',
    Tags: [
      { Key: 'Name', Value: `workstation-${n}` },
      { Key: 'dcv:session-id', Value: `ws-${n}` },
      { Key: 'dcv:port', Value: '8443' },
    ],
  };
}

/** DescribeInstances over a fixed fleet: the tag-key filter, MaxResults/NextToken paging. */
function mockEc2(fleet: readonly Instance[]): { calls: () => number; restore: () => void } {
  let calls = 0;
  const mock = mockClient(EC2Client);
  mock.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) => {
    calls++;
    const keys = new Set(input.Filters?.find((f) => f.Name === 'tag-key')?.Values ?? []);
    const matches = keys.size ? fleet.filter((i) => i.Tags?.some((t) => keys.has(t.Key!))) : fleet;
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const size = Math.min(input.MaxResults ?? PAGE, PAGE);
    const page = matches.slice(start, start + size);
    return {
      Reservations: page.map((i) => ({ ReservationId: `r-${i.InstanceId}`, Instances: [i] })),
      NextToken: start + size < matches.length ? String(start + size) : undefined,
    };
  });
  return { calls: () => calls, restore: () => mock.restore() };
}

/** Peak heap and RSS while `work` runs, sampled every 100 ms (process.memoryUsage() is not free). */
async function withPeakMemory<T>(work: () => Promise<T>): Promise<{ value: T; peakHeapMiB: number; peakRssMiB: number }> {
  let heap = 0;
  let rss = 0;
  const sample = () => {
    const m = process.memoryUsage();
    heap = Math.max(heap, m.heapUsed);
    rss = Math.max(rss, m.rss);
  };
  sample();
  const timer = setInterval(sample, 100);
  try {
    const value = await work();
    sample();
    return { value, peakHeapMiB: Number((heap / 2 ** 20).toFixed(0)), peakRssMiB: Number((rss / 2 ** 20).toFixed(0)) };
  } finally {
    clearInterval(timer);
  }
}

async function countItems(client: DynamoDBClient): Promise<number> {
  let count = 0;
  let start: Record<string, never> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: TABLE, Select: 'COUNT', ExclusiveStartKey: start }));
    count += page.Count ?? 0;
    start = page.LastEvaluatedKey as typeof start;
  } while (start);
  return count;
}

interface RunRecord {
  readonly seconds: number;
  readonly writes: number;
  readonly deletes: number;
  readonly ec2Calls: number;
  readonly peakHeapMiB: number;
  readonly peakRssMiB: number;
  readonly discoveryCpuSeconds: number;
  readonly dynaliteCpuSeconds: number;
}

export interface DiscoveryRun {
  readonly instances: number;
  readonly run: 'from empty' | 'unchanged';
  readonly seconds: Spread;
  readonly writes: number;
  readonly deletes: number;
  readonly ec2Calls: number;
  readonly ec2Pages: number;
  readonly peakHeapMiB: number;
  readonly peakRssMiB: number;
  readonly discoveryCpuSeconds: Spread;
  readonly dynaliteCpuSeconds: Spread;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`discovery bench: ${message}`);
}

async function reconcile(
  size: number,
  dynamodb: DynamoDBClient,
  ec2: EC2Client,
  dynalitePid: number,
  expectWrites: boolean,
): Promise<RunRecord> {
  const logger = createLogger({ logLevel: 'INFO' });
  const ownCpu = process.cpuUsage();
  const dynaliteCpu = cpuSeconds(dynalitePid) ?? 0;
  const { value, peakHeapMiB, peakRssMiB } = await withPeakMemory<FullReconcileReport>(() =>
    runFullReconcile({ ec2, dynamodb }, { tableName: TABLE, log: logger }),
  );
  const c = value.result.counts;
  const own = process.cpuUsage(ownCpu);
  // A benchmark of a broken answer is void: the run must have done exactly what the fleet asks.
  check(value.result.abortReason === undefined, `aborted: ${value.result.abortReason}`);
  check(c.instances === size, `saw ${c.instances} of ${size} instances`);
  check(c.failed === 0 && c.skipped === 0 && c.conflicts === 0 && c.unparsable === 0, `unexpected outcome ${JSON.stringify(c)}`);
  if (expectWrites) check(c.added === size, `added ${c.added} of ${size}`);
  else check(c.unchanged === size, `unchanged ${c.unchanged} of ${size}`);
  return {
    seconds: value.elapsedMs / 1000,
    writes: value.writes,
    deletes: value.deletes,
    ec2Calls: value.ec2Calls,
    peakHeapMiB,
    peakRssMiB,
    // Where the time went: discovery's own process versus the dynalite process answering it.
    discoveryCpuSeconds: (own.user + own.system) / 1e6,
    dynaliteCpuSeconds: (cpuSeconds(dynalitePid) ?? Number.NaN) - dynaliteCpu,
  };
}

function summarise(instances: number, run: DiscoveryRun['run'], records: RunRecord[]): DiscoveryRun {
  const last = records.at(-1)!;
  return {
    instances,
    run,
    seconds: spread(records.map((r) => r.seconds), 2),
    writes: last.writes,
    deletes: last.deletes,
    ec2Calls: last.ec2Calls,
    ec2Pages: Math.ceil(instances / PAGE),
    peakHeapMiB: Math.max(...records.map((r) => r.peakHeapMiB)),
    peakRssMiB: Math.max(...records.map((r) => r.peakRssMiB)),
    discoveryCpuSeconds: spread(records.map((r) => r.discoveryCpuSeconds), 2),
    dynaliteCpuSeconds: spread(records.map((r) => r.dynaliteCpuSeconds), 2),
  };
}

applyOfflineAwsEnv();
const runs: DiscoveryRun[] = [];
for (const { size, repeats } of plan) {
  const fleet = Array.from({ length: size }, (_, n) => instance(n + 1));
  const ec2Mock = mockEc2(fleet);
  const fromEmpty: RunRecord[] = [];
  const unchanged: RunRecord[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      // A fresh dynalite per repeat: an empty table, and no heap carried over from the previous size.
      const dynalite = await startDynaliteChild(TABLE);
      process.env.AWS_ENDPOINT_URL_DYNAMODB = dynalite.endpoint;
      const dynamodb = createDiscoveryDynamoClient();
      const ec2 = new EC2Client({});
      try {
        fromEmpty.push(await reconcile(size, dynamodb, ec2, dynalite.process.pid!, true));
        check((await countItems(dynamodb)) === size, `table does not hold ${size} items after the first run`);
        unchanged.push(await reconcile(size, dynamodb, ec2, dynalite.process.pid!, false));
        progress(`discovery ${size}: repeat ${r + 1}/${repeats}: ${fromEmpty.at(-1)!.seconds.toFixed(1)} s, then ${unchanged.at(-1)!.seconds.toFixed(1)} s`);
      } finally {
        dynamodb.destroy();
        dynalite.stop();
      }
    }
  } finally {
    ec2Mock.restore();
  }
  runs.push(summarise(size, 'from empty', fromEmpty), summarise(size, 'unchanged', unchanged));
}
await report({ plan, pageSize: PAGE, runs });

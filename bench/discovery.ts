import { loadavg } from 'node:os';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { EC2Client, type DescribeInstancesCommandInput, type Instance } from '@aws-sdk/client-ec2';
import type { DynamoApi, DynamoOperation } from '../lambda/adapters/dynamodb-api';
import { createDiscoveryDynamoApi, createDiscoveryDynamoClient, DynamoDbDiscoveryTable } from '../lambda/adapters/dynamodb-discovery-table';
import { Ec2InstanceSource } from '../lambda/adapters/ec2-instance-source';
import { createLogger } from '../lambda/adapters/logger';
import { silentLog } from '../lambda/core/log';
import { DiscoveryService } from '../lambda/core/discovery/run-discovery';
import { runFullReconcile, type FullReconcileReport } from '../lambda/discovery/discovery-runner';
import { createDiscoveryHandler } from '../lambda/handlers/discovery-handler';
import { recreateAsDiscoveryTable } from '../test/helpers/discovery-table';
import { lambdaContext } from '../test/helpers/function-url-event';
import { applyOfflineAwsEnv, cpuSeconds, progress, report, spread, startDynaliteChild, withPeakMemory, type Spread } from './lib';

/**
 * 4. Discovery at fleet scale: a full reconcile of N tagged instances into an empty dynalite table, then
 * the same fleet again (nothing changed: it must write nothing), then on that table what events cost:
 * one state-change event, the same event the old way (a full Scan, as before the InstanceId index),
 * and a burst of state-change events delivered in queue batches as the event source mapping would.
 * EC2 is faked at the SDK (a middleware answers DescribeInstances) with EC2's paging: 1,000 instances per page, one
 * reservation per instance; the fleet is computed per page, never held, so the measured heap is
 * discovery's. Args: [size:repeats,…] [burst events], e.g. 1000:3,10000:3,50000:1 300.
 */
const plan = (process.argv[2] ?? '1000:3,10000:3,50000:1').split(',').map((entry) => {
  const [size, repeats] = entry.split(':');
  return { size: Number(size), repeats: Number(repeats ?? 1) };
});
const BURST = Number(process.argv[3] ?? 300);
/** A burst of BURST events in a minute reaches the function in batches of what a 5 s window gathers. */
const BURST_WINDOW_SECONDS = 5;
const BURST_BATCH = Math.max(1, Math.round((BURST / 60) * BURST_WINDOW_SECONDS));
const TABLE = 'DiscoverySessions';
const PAGE = 1000;

function instanceId(n: number): string {
  return `i-${n.toString(16).padStart(17, '0')}`;
}

function instance(n: number, state: string): Instance {
  const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  return {
    InstanceId: instanceId(n),
    State: { Name: state as 'running', Code: 16 },
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

/**
 * An EC2 client answering DescribeInstances over instances 1…size, every one tagged, from a middleware
 * (no request leaves the process): the tag-key filter pages through all of them (MaxResults/NextToken),
 * the instance-id filter returns the named ones. `states` overrides. Not aws-sdk-client-mock: its stub
 * records every call and answer, which at 100,000 instances would be most of the measured heap.
 */
function fakeEc2(size: number, states: Map<number, string>): { client: EC2Client; calls: () => number } {
  let calls = 0;
  const numberOf = (id: string) => parseInt(id.slice(2), 16);
  const answer = (input: DescribeInstancesCommandInput) => {
    calls++;
    const ids = input.Filters?.find((f) => f.Name === 'instance-id')?.Values;
    if (ids) {
      const found = ids.map(numberOf).filter((n) => n >= 1 && n <= size);
      return { Reservations: found.map((n) => ({ ReservationId: `r-${n}`, Instances: [instance(n, states.get(n) ?? 'running')] })) };
    }
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const count = Math.min(input.MaxResults ?? PAGE, PAGE, size - start);
    const page = Array.from({ length: count }, (_, i) => start + i + 1);
    return {
      Reservations: page.map((n) => ({ ReservationId: `r-${n}`, Instances: [instance(n, states.get(n) ?? 'running')] })),
      NextToken: start + count < size ? String(start + count) : undefined,
    };
  };
  const client = new EC2Client({});
  client.middlewareStack.add(
    () => async (args) => ({ output: { ...answer(args.input as DescribeInstancesCommandInput), $metadata: {} }, response: {} }) as never,
    { step: 'initialize', name: 'benchFakeDescribeInstances', priority: 'high' },
  );
  return { client, calls: () => calls };
}

/** DynamoDB requests by operation, counted at the client seam (what is sent; the client's own retries not included). */
class CountingApi implements DynamoApi {
  private counts: Record<string, number> = {};

  constructor(private readonly inner: DynamoApi) {}

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call<T = Record<string, any>>(operation: DynamoOperation, input: Record<string, unknown>): Promise<T> {
    this.counts[operation] = (this.counts[operation] ?? 0) + 1;
    return this.inner.call<T>(operation, input);
  }

  take(): Record<string, number> {
    const counts = this.counts;
    this.counts = {};
    return counts;
  }

  close(): void {
    this.inner.close?.();
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
  /** Heap in use before the run (modules, clients): the run's own share is the peak minus this. */
  readonly heapBeforeMiB: number;
  readonly discoveryCpuSeconds: Spread;
  readonly dynaliteCpuSeconds: Spread;
}

export interface EventCost {
  readonly instances: number;
  readonly case: string;
  /** Lambda invocations (one per event, or one per queue batch). */
  readonly invocations: number;
  readonly events: number;
  readonly seconds: number;
  /** DynamoDB requests by operation, EC2 DescribeInstances calls. */
  readonly requests: Record<string, number>;
  readonly ec2Calls: number;
  readonly removed: number;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`discovery bench: ${message}`);
}

function heapMiB(): number {
  return Number((process.memoryUsage().heapUsed / 2 ** 20).toFixed(0));
}

async function reconcile(
  size: number,
  dynamodb: DynamoApi,
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

function summarise(instances: number, run: DiscoveryRun['run'], records: RunRecord[], heapBeforeMiB: number): DiscoveryRun {
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
    heapBeforeMiB,
    discoveryCpuSeconds: spread(records.map((r) => r.discoveryCpuSeconds), 2),
    dynaliteCpuSeconds: spread(records.map((r) => r.dynaliteCpuSeconds), 2),
  };
}

const stateChange = (n: number, state: string) => ({
  version: '0',
  source: 'aws.ec2',
  'detail-type': 'EC2 Instance State-change Notification',
  resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${instanceId(n)}`],
  detail: { 'instance-id': instanceId(n), state },
});

/** What events cost on a table of `size` items: instances size, size-1, … are stopped one by one. */
async function measureEvents(size: number, counter: CountingApi, states: Map<number, string>, ec2: EC2Client, ec2Calls: () => number): Promise<EventCost[]> {
  const logger = createLogger({ logLevel: 'WARN' });
  const service = (instanceIndex?: string) =>
    new DiscoveryService(
      new Ec2InstanceSource(ec2),
      new DynamoDbDiscoveryTable(counter, TABLE, { log: silentLog, ...(instanceIndex ? { instanceIndex } : {}) }),
      { log: silentLog },
    );
  const costs: EventCost[] = [];
  let next = size;
  const measure = async (name: string, invocations: { events: unknown[]; direct: boolean }[], instanceIndex?: string) => {
    const handler = createDiscoveryHandler({ service: service(instanceIndex), logger });
    // The discovery function's timeout, not the resolver's few seconds (middy aborts just before it).
    const context = { ...lambdaContext(), getRemainingTimeInMillis: () => 600_000 };
    counter.take();
    const ec2Before = ec2Calls();
    const started = performance.now();
    let removed = 0;
    for (const { events, direct } of invocations) {
      if (direct) {
        const result = (await handler(events[0], context)) as { counts: { removed: number } };
        removed += result.counts.removed;
      } else {
        const batch = {
          Records: events.map((event, i) => ({ messageId: `m-${i}`, eventSource: 'aws:sqs', body: JSON.stringify(event) })),
        };
        const answer = (await handler(batch, context)) as { batchItemFailures: unknown[] };
        check(answer.batchItemFailures.length === 0, `${name}: ${answer.batchItemFailures.length} message(s) failed`);
        removed += events.length;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const eventCount = invocations.reduce((t, i) => t + i.events.length, 0);
    costs.push({ instances: size, case: name, invocations: invocations.length, events: eventCount, seconds: Number(seconds.toFixed(3)), requests: counter.take(), ec2Calls: ec2Calls() - ec2Before, removed });
    progress(`discovery ${size}: ${name}: ${seconds.toFixed(2)} s, ${JSON.stringify(costs.at(-1)!.requests)}`);
  };
  const stop = () => {
    const n = next--;
    states.set(n, 'stopped');
    return stateChange(n, 'stopped');
  };

  // One event, as deployed: the index finds the instance's items; no Scan.
  await measure('one state-change event (InstanceId index)', [{ events: [stop()], direct: true }]);
  // The same, the way event runs read before the index (and still do while it backfills): a full Scan.
  await measure('one state-change event (full Scan, as before)', [{ events: [stop()], direct: true }], 'NoSuchIndex');
  // A burst: BURST events in a minute, gathered by the queue's batching window into batches.
  const batches: { events: unknown[]; direct: boolean }[] = [];
  for (let left = BURST; left > 0; left -= BURST_BATCH) {
    batches.push({ events: Array.from({ length: Math.min(BURST_BATCH, left) }, stop), direct: false });
  }
  await measure(`burst of ${BURST} state-change events in queue batches of ${BURST_BATCH}`, batches);
  for (const cost of costs) check(cost.removed === cost.events, `${cost.case}: removed ${cost.removed} items for ${cost.events} stopped instances`);
  return costs;
}

applyOfflineAwsEnv();
const runs: DiscoveryRun[] = [];
const events: EventCost[] = [];
for (const { size, repeats } of plan) {
  const states = new Map<number, string>();
  const fake = fakeEc2(size, states);
  const fromEmpty: RunRecord[] = [];
  const unchanged: RunRecord[] = [];
  let heapBefore = 0;
  try {
    for (let r = 0; r < repeats; r++) {
      states.clear();
      // A fresh dynalite per repeat: an empty table, and no heap carried over from the previous size.
      const dynalite = await startDynaliteChild(TABLE);
      process.env.AWS_ENDPOINT_URL_DYNAMODB = dynalite.endpoint;
      // The function's client (lean, signed); the SDK client only sets up and checks the table.
      const api = new CountingApi(createDiscoveryDynamoApi());
      const admin = createDiscoveryDynamoClient();
      const ec2 = fake.client;
      try {
        await recreateAsDiscoveryTable(admin, TABLE);
        heapBefore = heapMiB();
        fromEmpty.push(await reconcile(size, api, ec2, dynalite.process.pid!, true));
        check((await countItems(admin)) === size, `table does not hold ${size} items after the first run`);
        unchanged.push(await reconcile(size, api, ec2, dynalite.process.pid!, false));
        const [a, b] = [fromEmpty.at(-1)!, unchanged.at(-1)!];
        progress(
          `discovery ${size}: repeat ${r + 1}/${repeats}: from empty ${a.seconds.toFixed(1)} s (CPU ${a.discoveryCpuSeconds.toFixed(1)} + dynalite ${a.dynaliteCpuSeconds.toFixed(1)} s, ` +
            `heap ${a.peakHeapMiB} MiB, RSS ${a.peakRssMiB} MiB), unchanged ${b.seconds.toFixed(1)} s (CPU ${b.discoveryCpuSeconds.toFixed(1)} + ${b.dynaliteCpuSeconds.toFixed(1)} s, ` +
            `heap ${b.peakHeapMiB} MiB, ${b.writes} writes); load ${loadavg().map((v) => v.toFixed(1)).join(' ')}`,
        );
        if (r === repeats - 1 && BURST > 0) events.push(...(await measureEvents(size, api, states, ec2, fake.calls)));
      } finally {
        api.close?.();
        admin.destroy();
        dynalite.stop();
      }
    }
  } finally {
    fake.client.destroy();
  }
  runs.push(summarise(size, 'from empty', fromEmpty, heapBefore), summarise(size, 'unchanged', unchanged, heapBefore));
}
await report({ plan, pageSize: PAGE, burst: { events: BURST, windowSeconds: BURST_WINDOW_SECONDS, batch: BURST_BATCH }, runs, events });

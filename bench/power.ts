import { fork } from 'node:child_process';
import { join } from 'node:path';
import { BatchWriteItemCommand, CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { sdkDynamoApi } from '../lambda/adapters/dynamodb-api';
import { runPowerPass, type PowerPassResult } from '../lambda/power/power-runner';
import { applyOfflineAwsEnv, NODE_ARGS, OFFLINE_AWS_ENV, progress, report, ROOT, spread, startDynaliteChild, withPeakMemory, type Spread } from './lib';

/**
 * 5. The power pass at fleet scale: one real pass (not a dry run) over N on-demand desktops, with the
 * loopback EC2 and SSM in a child process (bench/power-standins.ts: the real wire protocols, SSM answers
 * precomputed) and dynalite in another, so wall, CPU and heap here are the pass's. Every 10th desktop is
 * idle and is stopped, every 20th is not a managed node, the rest are in use. Reported: requests per
 * service, wall, CPU, peak heap. Args: [size:repeats,…], e.g. 1000:3,10000:1.
 */
const plan = (process.argv[2] ?? '1000:3,10000:1').split(',').map((entry) => {
  const [size, repeats] = entry.split(':');
  return { size: Number(size), repeats: Number(repeats ?? 1) };
});
const TABLE = 'PowerSessions';

interface StandIns {
  readonly ec2: string;
  readonly ssm: string;
  readonly idle: number;
  readonly unmanaged: number;
  stop(): void;
}

function startStandIns(size: number): Promise<StandIns> {
  return new Promise((resolve, reject) => {
    const child = fork(join(ROOT, 'bench', 'power-standins.ts'), [String(size)], {
      execArgv: NODE_ARGS,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, ...OFFLINE_AWS_ENV },
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('stand-ins did not start within 60 s'));
    }, 60_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve({ ...(message as Omit<StandIns, 'stop'>), stop: () => child.kill('SIGTERM') });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stand-ins exited early (${code})`));
    });
  });
}

/** The items discovery would have written: one per desktop, Source ec2, AutoStopMinutes 30. */
async function seed(client: DynamoDBClient, size: number): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: TABLE,
      AttributeDefinitions: [{ AttributeName: 'SessionId', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'SessionId', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  const batches: number[][] = [];
  for (let n = 1; n <= size; n += 25) batches.push(Array.from({ length: Math.min(25, size - n + 1) }, (_, i) => n + i));
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      await client.send(
        new BatchWriteItemCommand({
          RequestItems: {
            [TABLE]: batch.map((n) => ({
              PutRequest: {
                Item: {
                  SessionId: { S: `desk-${n}` },
                  DcvServerEndpoint: { S: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}` },
                  HttpPort: { N: '8443' },
                  WebUrlPath: { S: '/' },
                  Source: { S: 'ec2' },
                  InstanceId: { S: `i-${n.toString(16).padStart(17, '0')}` },
                  InstanceState: { S: 'running' },
                  AutoStopMinutes: { N: '30' },
                  DiscoveredHash: { S: 'bench' },
                },
              },
            })),
          },
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

export interface PowerRun {
  readonly desktops: number;
  readonly seconds: Spread;
  readonly cpuSeconds: Spread;
  readonly peakHeapMiB: number;
  readonly peakRssMiB: number;
  readonly requests: PowerPassResult['requests'];
  readonly stops: number;
  readonly signalsUnknown: number;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`power bench: ${message}`);
}

applyOfflineAwsEnv();
const runs: PowerRun[] = [];
for (const { size, repeats } of plan) {
  const seconds: number[] = [];
  const cpu: number[] = [];
  let peakHeap = 0;
  let peakRss = 0;
  let last: PowerPassResult | undefined;
  for (let round = 0; round < repeats; round++) {
    const standIns = await startStandIns(size);
    const dynalite = await startDynaliteChild('Unused');
    const dynamoClient = new DynamoDBClient({ endpoint: dynalite.endpoint });
    const ec2 = new EC2Client({ endpoint: standIns.ec2 });
    const ssm = new SSMClient({ endpoint: standIns.ssm });
    try {
      await seed(dynamoClient, size);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const measured = await withPeakMemory(() =>
        runPowerPass(
          { ec2, ssm, dynamodb: sdkDynamoApi(dynamoClient) },
          // The function's budget: 60 s less its margin.
          { tableName: TABLE, deadline: Date.now() + 50_000, signals: { commands: ['true'] } },
        ),
      );
      seconds.push((performance.now() - t0) / 1000);
      const used = process.cpuUsage(cpu0);
      cpu.push((used.user + used.system) / 1e6);
      peakHeap = Math.max(peakHeap, measured.peakHeapMiB);
      peakRss = Math.max(peakRss, measured.peakRssMiB);
      last = measured.value;
      check(last.counts.stops === standIns.idle, `expected ${standIns.idle} stops, got ${last.counts.stops}`);
      check(last.counts.signalsUnknown === standIns.unmanaged, `expected ${standIns.unmanaged} unknown, got ${last.counts.signalsUnknown}`);
      check(last.failures.length === 0, `failures: ${JSON.stringify(last.failures.slice(0, 3))}`);
      progress(`power ${size}: round ${round + 1}/${repeats} ${seconds.at(-1)!.toFixed(1)} s, requests ${JSON.stringify(last.requests)}`);
    } finally {
      ec2.destroy();
      ssm.destroy();
      dynamoClient.destroy();
      standIns.stop();
      dynalite.stop();
    }
  }
  runs.push({
    desktops: size,
    seconds: spread(seconds),
    cpuSeconds: spread(cpu),
    peakHeapMiB: peakHeap,
    peakRssMiB: peakRss,
    requests: last!.requests,
    stops: last!.counts.stops!,
    signalsUnknown: last!.counts.signalsUnknown!,
  });
}
await report({ runs });
process.exit(0);

import { Bench } from 'tinybench';
import { createResolveDynamoClient, DynamoDbSessionStore } from '../lambda/adapters/dynamodb-session-store';
import { createLogger } from '../lambda/adapters/logger';
import { MemorySessionStore, type SessionStore } from '../lambda/core/session-store';
import { createResolverHandler, type ResolverHandler } from '../lambda/handlers/resolver-handler';
import { CASES, lambdaContext, SESSION, type Case } from './events';
import { applyOfflineAwsEnv, progress, report, spread, startDynaliteChild, type Spread } from './lib';

/**
 * 1. Handler cost: the real middy-wrapped handler, called in-process with Function URL events, logging
 * at INFO to stdout (which the parent points at /dev/null: serialisation and the write stay in).
 * Args: [rounds] [ms per task per round].
 */
const rounds = Number(process.argv[2] ?? 5);
const timeMs = Number(process.argv[3] ?? 400);

export interface HandlerCaseResult {
  readonly store: string;
  readonly case: string;
  readonly p50Us: Spread;
  readonly p99Us: Spread;
  readonly samples: number;
}

/** Either event shape: the handler answers each in its own result shape (statusCode and body in both). */
type AnyHandler = (event: Case['event'], context: ReturnType<typeof lambdaContext>) => Promise<{ statusCode?: number; body?: string }>;

async function checkAnswers(resolverHandler: ResolverHandler, store: string): Promise<void> {
  const handler = resolverHandler as AnyHandler;
  for (const c of CASES) {
    const result = await handler(c.event, lambdaContext());
    if (result.statusCode !== c.status || (c.body !== undefined && result.body !== c.body)) {
      throw new Error(`${store}/${c.name}: got ${result.statusCode} ${result.body}; expected ${c.status} ${c.body ?? ''}`);
    }
  }
}

async function measure(store: SessionStore, storeName: string, storeRounds: number): Promise<HandlerCaseResult[]> {
  const resolverHandler = createResolverHandler({ store, logger: createLogger({ logLevel: 'INFO' }) });
  const handler = resolverHandler as AnyHandler;
  // A benchmark of a broken answer is void: check every case before timing any.
  await checkAnswers(resolverHandler, storeName);
  const context = lambdaContext();
  const p50s = new Map<string, number[]>();
  const p99s = new Map<string, number[]>();
  const samples = new Map<string, number>();
  for (let round = 0; round < storeRounds; round++) {
    const bench = new Bench({ time: timeMs, warmupTime: 100, throws: true });
    for (const c of CASES) bench.add(c.name, () => handler(c.event, context));
    await bench.run();
    for (const task of bench.tasks) {
      const latency = task.result?.latency;
      if (!latency?.p50 || !latency.p99) throw new Error(`${storeName}/${task.name}: no result`);
      (p50s.get(task.name) ?? p50s.set(task.name, []).get(task.name)!).push(latency.p50 * 1000);
      (p99s.get(task.name) ?? p99s.set(task.name, []).get(task.name)!).push(latency.p99 * 1000);
      samples.set(task.name, (samples.get(task.name) ?? 0) + latency.samples.length);
    }
    progress(`handler ${storeName}: round ${round + 1}/${storeRounds}`);
  }
  await checkAnswers(resolverHandler, storeName);
  return CASES.map((c) => ({
    store: storeName,
    case: c.name,
    p50Us: spread(p50s.get(c.name)!, 2),
    p99Us: spread(p99s.get(c.name)!, 2),
    samples: samples.get(c.name)!,
  }));
}

applyOfflineAwsEnv();
const results: HandlerCaseResult[] = [];
results.push(...(await measure(new MemorySessionStore([SESSION]), 'memory', rounds)));

const TABLE = 'BenchSessions';
const dynalite = await startDynaliteChild(TABLE, [SESSION]);
try {
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynalite.endpoint;
  const store = new DynamoDbSessionStore(createResolveDynamoClient(), TABLE);
  // dynalite answers in milliseconds, so fewer rounds give as many samples' worth of signal.
  results.push(...(await measure(store, 'dynalite', Math.max(1, Math.ceil(rounds / 2)))));
  store.close();
} finally {
  dynalite.stop();
}
await report({ rounds, timeMsPerTask: timeMs, results });

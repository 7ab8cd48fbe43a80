import { DeleteItemCommand, PutItemCommand, ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbDiscoveryTable, toAttributeMap } from '../../lambda/adapters/dynamodb-discovery-table';
import { DiscoveryService, type DiscoveryResult, type DiscoveryTable, type InstanceSource } from '../../lambda/core/discovery/run-discovery';
import { parseInstanceTags, type InstanceInfo } from '../../lambda/core/discovery/tag-parser';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { applyEdit, editArb, getItem, sameItem, shortName, sortKeys, type Edit, type Raw } from '../helpers/console-edits';
import { RecordingLog } from '../helpers/recording-log';

/**
 * "An edit made while a run is in flight is never overwritten": discovery reads the table, an operator edits
 * items (any attribute: changed, removed, added under a name discovery knows or not, on items of any size),
 * then discovery writes. After the run, every edited item is exactly as the operator left it and the run
 * reported its write as skipped; every item nobody edited got discovery's write.
 */

const TABLE = 'concurrent-edits';
const UPDATED_AT = '2025-06-01T12:00:00.000Z';
let dynamo: LocalDynamo;
let db: DynamoDBClient;

beforeAll(async () => {
  dynamo = await startDynalite();
  db = dynamo.client();
  await createDiscoveryTable(db, TABLE);
});
afterAll(() => dynamo.stop());

const get = (sessionId: string) => getItem(db, TABLE, sessionId);

class StaticInstances implements InstanceSource {
  calls = 0;
  constructor(private readonly instances: readonly InstanceInfo[]) {}
  async *listTagged(): AsyncIterable<readonly InstanceInfo[]> {
    this.calls++;
    yield this.instances;
  }
  async describe(ids: readonly string[]): Promise<readonly InstanceInfo[]> {
    this.calls++;
    return this.instances.filter((i) => ids.includes(i.instanceId));
  }
}

interface Case {
  readonly tags: Record<string, string>;
  /** What the run wants: new tags (a change) or the instance stopped (a removal). */
  readonly plan: { readonly kind: 'change'; readonly tags: Record<string, string> } | { readonly kind: 'remove' };
  readonly edits: readonly Edit[];
}

// Small lists, and lists of 90-100 short names: the size that made the old condition fall back.
const names = fc.oneof(fc.constant(undefined), fc.array(shortName, { minLength: 1, maxLength: 3 }), fc.array(shortName, { minLength: 90, maxLength: 100 }));
const cidrs = fc.option(fc.subarray(['10.0.0.0/8', '192.168.1.0/24', '2001:db8::/32', '0.0.0.0/0'], { minLength: 1 }), { nil: undefined });

const tagsArb = fc
  .record({
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    quic: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    users: names,
    groups: names,
    cidrs,
    pool: fc.option(fc.constantFrom('gpu', 'cad'), { nil: undefined }),
    target: fc.option(fc.constantFrom('console', 'Sitzung-ü'), { nil: undefined }),
  })
  .map((t) => (sessionId: string): Record<string, string> => ({
    'dcv:session-id': t.target ? `${sessionId}=${t.target}` : sessionId,
    ...(t.port ? { 'dcv:port': String(t.port) } : {}),
    ...(t.quic ? { 'dcv:quic-port': String(t.quic) } : {}),
    ...(t.users ? { 'dcv:allowed-users': t.users.join(',') } : {}),
    ...(t.groups ? { 'dcv:allowed-groups': t.groups.join(',') } : {}),
    ...(t.cidrs ? { 'dcv:allowed-client-cidrs': t.cidrs.join(',') } : {}),
    ...(t.pool ? { 'dcv:pool': t.pool } : {}),
  }));

const caseArb: fc.Arbitrary<Omit<Case, 'tags' | 'plan'> & { tags: (id: string) => Record<string, string>; plan: { kind: 'change'; tags: (id: string) => Record<string, string> } | { kind: 'remove' } }> =
  fc.record({
    tags: tagsArb,
    plan: fc.oneof(fc.record({ kind: fc.constant('change' as const), tags: tagsArb }), fc.constant({ kind: 'remove' as const })),
    edits: fc.array(editArb(['AllowedUsers', 'AllowedGroups']), { maxLength: 3 }),
  });

function instance(n: number, tags: Record<string, string>, state = 'running'): InstanceInfo {
  return { instanceId: `i-${n.toString(16).padStart(17, '0')}`, state, privateIp: `10.0.0.${n}`, tags };
}

async function clear(): Promise<void> {
  const page = await db.send(new ScanCommand({ TableName: TABLE, ConsistentRead: true }));
  for (const item of page.Items ?? []) await db.send(new DeleteItemCommand({ TableName: TABLE, Key: { SessionId: item.SessionId! } }));
}

interface Outcome {
  readonly result: DiscoveryResult;
  readonly read: Map<string, Raw>;
  readonly edited: Map<string, Raw | undefined>;
  readonly after: Map<string, Raw | undefined>;
  readonly desired: Map<string, Raw | undefined>;
}

/** Seeds the items as discovery wrote them, runs a full reconcile with the edits between its read and its writes. */
async function run(cases: readonly Case[]): Promise<Outcome> {
  await clear();
  const ids = cases.map((_, i) => `s${i}`);
  const desired = new Map<string, Raw | undefined>();
  const fleet: InstanceInfo[] = [];
  for (const [i, c] of cases.entries()) {
    const seeded = parseInstanceTags(instance(i + 1, c.tags));
    if (!seeded.ok) throw new Error(seeded.reason);
    await db.send(new PutItemCommand({ TableName: TABLE, Item: toAttributeMap({ ...seeded.records[0]!.item, UpdatedAt: '2025-01-01T00:00:00.000Z' }) }));
    if (c.plan.kind === 'remove') {
      fleet.push(instance(i + 1, c.tags, 'stopped'));
      desired.set(ids[i]!, undefined);
    } else {
      const wanted = instance(i + 1, c.plan.tags);
      const claim = parseInstanceTags(wanted);
      if (!claim.ok) throw new Error(claim.reason);
      fleet.push(wanted);
      desired.set(ids[i]!, toAttributeMap({ ...claim.records[0]!.item, UpdatedAt: UPDATED_AT }));
    }
  }
  const read = new Map<string, Raw>();
  for (const id of ids) read.set(id, (await get(id))!);
  const edited = new Map<string, Raw | undefined>();
  const inner = new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() });
  const editsAfterRead: DiscoveryTable = {
    async *scan() {
      yield* inner.scan();
      for (const [i, c] of cases.entries()) {
        for (const edit of c.edits) await applyEdit(db, TABLE, ids[i]!, edit);
        edited.set(ids[i]!, await get(ids[i]!));
      }
    },
    readScoped: (request) => inner.readScoped(request),
    apply: (change, updatedAt) => inner.apply(change, updatedAt),
  };
  const service = new DiscoveryService(new StaticInstances(fleet), editsAfterRead, { log: new RecordingLog(), now: () => Date.parse(UPDATED_AT) });
  const result = await service.reconcileAll();
  const after = new Map<string, Raw | undefined>();
  for (const id of ids) after.set(id, await get(id));
  return { result, read, edited, after, desired };
}

/**
 * The property: an edited item is exactly as the operator left it, and a write planned for it was reported
 * skipped, never applied; an item nobody edited got the planned write (or stayed as read when none was planned).
 */
function checkNoEditLost(outcome: Outcome): void {
  const { result, read, edited, after, desired } = outcome;
  const planned = new Set(result.plan.changes.map((c) => c.sessionId));
  const skipped = new Set(result.skipped.map((s) => s.change.sessionId));
  const applied = new Set(result.applied.map((c) => c.sessionId));
  expect(result.failed).toEqual([]);
  for (const [id, before] of read) {
    const mine = edited.get(id);
    if (!sameItem(mine, before)) {
      expect({ id, after: sortKeys(after.get(id)) }).toEqual({ id, after: sortKeys(mine) });
      expect({ id, skipped: skipped.has(id), applied: applied.has(id) }).toEqual({ id, skipped: planned.has(id), applied: false });
    } else {
      expect({ id, after: sortKeys(after.get(id)) }).toEqual({ id, after: sortKeys(planned.has(id) ? desired.get(id) : before) });
    }
  }
}

function manyNames(prefix: string, n: number): string {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(',');
}

describe('discovery never overwrites an edit made while it runs', () => {
  it('an item with 100 users and 100 groups disabled mid-run stays disabled (no weaker condition for big items)', async () => {
    const big = { 'dcv:allowed-users': manyNames('u', 100), 'dcv:allowed-groups': manyNames('g', 100) };
    const outcome = await run([
      { tags: { 'dcv:session-id': 's0', ...big }, plan: { kind: 'change', tags: { 'dcv:session-id': 's0', 'dcv:port': '9443', ...big } }, edits: [{ kind: 'set', name: 'Enabled', value: { BOOL: false } }] },
      { tags: { 'dcv:session-id': 's1', ...big }, plan: { kind: 'change', tags: { 'dcv:session-id': 's1', 'dcv:port': '9443', ...big } }, edits: [] },
    ]);
    expect(outcome.after.get('s0')).toMatchObject({ Enabled: { BOOL: false }, HttpPort: { N: '8443' } });
    checkNoEditLost(outcome);
    expect(outcome.result.applied.map((c) => c.sessionId)).toEqual(['s1']);
  });

  it('an item annotated mid-run (an attribute discovery has never heard of) is neither deleted nor overwritten', async () => {
    const notes = { kind: 'set', name: 'Notes', value: { S: 'desk 4, ask Ana' } } as const;
    const outcome = await run([
      { tags: { 'dcv:session-id': 's0' }, plan: { kind: 'remove' }, edits: [notes] },
      { tags: { 'dcv:session-id': 's1' }, plan: { kind: 'change', tags: { 'dcv:session-id': 's1', 'dcv:port': '9443' } }, edits: [notes] },
      { tags: { 'dcv:session-id': 's2' }, plan: { kind: 'remove' }, edits: [] },
    ]);
    expect(outcome.after.get('s0')).toMatchObject({ Notes: { S: 'desk 4, ask Ana' }, Source: { S: 'ec2' } });
    expect(outcome.after.get('s1')).toMatchObject({ Notes: { S: 'desk 4, ask Ana' }, HttpPort: { N: '8443' } });
    checkNoEditLost(outcome);
    expect(outcome.result.skipped.map((s) => s.change.sessionId)).toEqual(['s0', 's1']);
    expect(outcome.result.applied.map((c) => `${c.kind} ${c.sessionId}`)).toEqual(['remove s2']);
    expect(outcome.result.counts).toMatchObject({ skipped: 2, removed: 1, changed: 0, failed: 0 });
  });

  it('property: random items (up to 100 users and groups), random edits between read and write, no edit is ever lost', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb, { minLength: 1, maxLength: 3 }), async (generated) => {
        const cases = generated.map((c, i): Case => {
          const id = `s${i}`;
          return { tags: c.tags(id), plan: c.plan.kind === 'remove' ? c.plan : { kind: 'change', tags: c.plan.tags(id) }, edits: c.edits };
        });
        checkNoEditLost(await run(cases));
      }),
      { numRuns: 60 },
    );
  });
});

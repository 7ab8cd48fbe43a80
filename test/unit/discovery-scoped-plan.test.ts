import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { silentLog } from '../../lambda/core/log';
import { withFingerprint } from '../../lambda/core/discovery/fingerprint';
import { planReconcile, type CurrentItem } from '../../lambda/core/discovery/reconcile';
import { DiscoveryService, mergeSnapshots, type DiscoveryTable, type InstanceSource, type TableSnapshot } from '../../lambda/core/discovery/run-discovery';
import { parseInstanceTags, type InstanceInfo } from '../../lambda/core/discovery/tag-parser';

/**
 * Event runs no longer read the whole table, only what the named instances hold or want (and, for a
 * disputed id, what its holder holds and wants). Property: for any fleet, table and event, that plan is
 * exactly the plan the whole table gives (the way event runs planned before the index). And a full
 * run's plan does not depend on the order the table's items stream in.
 */
const POOL = ['a', 'b', 'c', 'd', 'e', 'f'];
const iid = (n: number) => `i-${String(n).padStart(8, '0')}`;

interface Scenario {
  readonly fleet: InstanceInfo[];
  readonly current: CurrentItem[];
  readonly protectedIds: Set<string>;
  readonly event: string[];
}

const instanceArb = (n: number) =>
  fc.record({
    present: fc.boolean().map((b) => b || n % 3 !== 0),
    state: fc.constantFrom('running', 'running', 'stopped', 'terminated'),
    launch: fc.integer({ min: 0, max: 5 }),
    ids: fc.uniqueArray(fc.constantFrom(...POOL), { maxLength: 3 }),
    broken: fc.boolean(),
  });

const itemArb = fc.record({
  sessionId: fc.constantFrom(...POOL, 'x', 'y'),
  kind: fc.constantFrom('ec2', 'ec2', 'ec2', 'manual', 'edited'),
  owner: fc.integer({ min: 1, max: 10 }),
  port: fc.constantFrom(8443, 8443, 9443),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    instances: fc.tuple(...Array.from({ length: 8 }, (_, i) => instanceArb(i + 1))),
    items: fc.uniqueArray(itemArb, { selector: (i) => i.sessionId, maxLength: 8 }),
    event: fc.uniqueArray(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 4 }),
  })
  .map(({ instances, items, event }) => {
    const fleet: InstanceInfo[] = [];
    instances.forEach((spec, i) => {
      if (!spec.present) return;
      const n = i + 1;
      fleet.push({
        instanceId: iid(n),
        state: spec.state,
        launchTime: Date.UTC(2025, 0, 1, 0, spec.launch),
        privateIp: `10.0.0.${n}`,
        tags: spec.ids.length === 0 ? {} : { 'dcv:session-id': spec.ids.join(','), ...(spec.broken && n % 2 ? { 'dcv:port': 'x' } : {}) },
      });
    });
    const current: CurrentItem[] = [];
    const protectedIds = new Set<string>();
    for (const it of items) {
      if (it.kind === 'manual') {
        protectedIds.add(it.sessionId);
        continue;
      }
      const content = {
        SessionId: it.sessionId,
        DcvServerEndpoint: `10.0.0.${it.owner}`,
        HttpPort: it.port,
        WebUrlPath: '/',
        Source: 'ec2',
        InstanceId: iid(it.owner),
        InstanceState: 'running',
      };
      const item = it.kind === 'edited' ? { ...withFingerprint(content), HttpPort: 1234 } : withFingerprint(content);
      current.push({ sessionId: it.sessionId, item: { ...item, UpdatedAt: '2025-01-01T00:00:00.000Z' } });
    }
    return { fleet, current, protectedIds, event: event.map(iid) };
  });

function instanceSource(fleet: readonly InstanceInfo[]): InstanceSource {
  return {
    calls: 0,
    async *listTagged() {
      yield fleet.filter((i) => i.tags['dcv:session-id'] !== undefined);
    },
    async describe(ids) {
      return fleet.filter((i) => ids.includes(i.instanceId));
    },
  };
}

/** The table in memory; readScoped returns exactly what was asked for (an index that never lags). */
function memoryTable(s: Scenario, reads: { scoped: number }): DiscoveryTable {
  return {
    async *scan() {
      yield { current: s.current, protectedIds: s.protectedIds };
    },
    async readScoped({ instanceIds, sessionIds }): Promise<TableSnapshot> {
      reads.scoped++;
      const owners = new Set(instanceIds);
      const keys = new Set(sessionIds);
      return {
        current: s.current.filter((c) => keys.has(c.sessionId) || owners.has(String(c.item.InstanceId))),
        protectedIds: new Set([...s.protectedIds].filter((id) => keys.has(id))),
      };
    },
    async apply() {
      throw new Error('dry run writes nothing');
    },
  };
}

/** How event runs planned before the index: the whole table, holders of disputed ids described too. */
function wholeTablePlan(s: Scenario) {
  const scope = new Set(s.event);
  let claims = s.fleet.filter((i) => scope.has(i.instanceId)).map((i) => parseInstanceTags(i));
  const wanted = new Set(claims.flatMap((c) => (c.ok ? c.records.map((r) => r.sessionId) : [])));
  const holders = new Set<string>();
  for (const c of s.current) {
    const holder = c.item.InstanceId as string;
    if (wanted.has(c.sessionId) && !scope.has(holder)) holders.add(holder);
  }
  if (holders.size > 0) {
    claims = [...claims, ...s.fleet.filter((i) => holders.has(i.instanceId)).map((i) => parseInstanceTags(i))];
    for (const h of holders) scope.add(h);
  }
  return planReconcile({ claims, current: s.current, protectedIds: s.protectedIds, scope, complete: true });
}

describe('event runs read only what they need, and plan as the whole table would', () => {
  it('scoped reads give the whole-table plan (dry run, 500 random fleets, tables and events)', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const reads = { scoped: 0 };
        const service = new DiscoveryService(instanceSource(s.fleet), memoryTable(s, reads), { log: silentLog, dryRun: true });
        const result = await service.reconcileInstances(s.event);
        expect(result.plan).toEqual(wholeTablePlan(s));
        expect(reads.scoped).toBeGreaterThanOrEqual(1);
        expect(reads.scoped).toBeLessThanOrEqual(2);
      }),
      { numRuns: 500 },
    );
  });

  it('a full run plans the same whatever order the table streams in', () => {
    fc.assert(
      fc.property(scenarioArb, fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })), (s, random) => {
        const claims = s.fleet.filter((i) => i.tags['dcv:session-id'] !== undefined).map((i) => parseInstanceTags(i));
        const inOrder = planReconcile({ claims, current: s.current, protectedIds: s.protectedIds, scope: 'full', complete: true });
        const shuffled = [...s.current].map((c) => ({ c, k: random.next().value })).sort((a, b) => a.k - b.k).map((x) => x.c);
        const reversedClaims = [...claims].reverse();
        expect(planReconcile({ claims: reversedClaims, current: shuffled, protectedIds: s.protectedIds, scope: 'full', complete: true })).toEqual(inOrder);
      }),
      { numRuns: 300 },
    );
  });
});

describe('mergeSnapshots', () => {
  const item = (id: string, port: number): CurrentItem => ({ sessionId: id, item: { SessionId: id, HttpPort: port, Source: 'ec2' } });

  it('a key read twice keeps the later copy, including a switch between discovered and protected', () => {
    const merged = mergeSnapshots(
      { current: [item('a', 1), item('b', 1)], protectedIds: new Set(['m']) },
      { current: [item('a', 2), item('m', 3)], protectedIds: new Set(['b']) },
    );
    expect(merged.current).toEqual([item('a', 2), item('m', 3)]);
    expect([...merged.protectedIds]).toEqual(['b']);
  });
});

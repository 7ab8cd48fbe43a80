import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../lambda/core/discovery/fingerprint';
import { EDITED_REASON, planReconcile, type CurrentItem, type PlanInput, type PlanScope } from '../../lambda/core/discovery/reconcile';
import { parseInstanceTags, type InstanceInfo } from '../../lambda/core/discovery/tag-parser';
import { parseDiscoveryEvent } from '../../lambda/core/discovery/discovery-event';

/** Instance i-<n> at 10.0.0.<n>, launched at minute <launch>, claiming `sessions`. */
function inst(n: number, sessions: string | undefined, extra: Partial<InstanceInfo> = {}): InstanceInfo {
  return {
    instanceId: `i-${String(n).padStart(8, '0')}`,
    state: 'running',
    launchTime: Date.UTC(2025, 0, 1, 0, n),
    privateIp: `10.0.0.${n}`,
    tags: sessions === undefined ? {} : { 'dcv:session-id': sessions },
    ...extra,
  };
}

const iid = (n: number) => `i-${String(n).padStart(8, '0')}`;

/**
 * The item discovery wrote for session `id` on instance n (what the table holds after a good run), `extra`
 * included: e.g. an older port is an item discovery wrote before the tags changed. It carries the
 * DiscoveredHash discovery writes.
 */
function stored(id: string, n: number, extra: Record<string, unknown> = {}): CurrentItem {
  const content = handWritten(id, n, extra).item;
  return { sessionId: id, item: { ...content, DiscoveredHash: fingerprint(content) } };
}

/** A `Source = ec2` item an operator created in the console: the same attributes, no DiscoveredHash. */
function handWritten(id: string, n: number, extra: Record<string, unknown> = {}): CurrentItem {
  return {
    sessionId: id,
    item: {
      SessionId: id,
      DcvServerEndpoint: `10.0.0.${n}`,
      HttpPort: 8443,
      WebUrlPath: '/',
      Source: 'ec2',
      InstanceId: iid(n),
      InstanceState: 'running',
      UpdatedAt: '2025-01-01T00:00:00.000Z',
      ...extra,
    },
  };
}

/** A discovered item an operator then edited in the console (the DiscoveredHash stays as discovery wrote it). */
function edited(current: CurrentItem, changes: Record<string, unknown>): CurrentItem {
  const item = { ...current.item, ...changes };
  for (const [key, value] of Object.entries(changes)) if (value === undefined) delete item[key];
  return { sessionId: current.sessionId, item };
}

function plan(instances: InstanceInfo[], current: CurrentItem[], opts: { manual?: string[]; scope?: PlanScope; complete?: boolean } = {}) {
  const input: PlanInput = {
    claims: instances.map((i) => parseInstanceTags(i)),
    current,
    protectedIds: new Set(opts.manual ?? []),
    scope: opts.scope ?? 'full',
    complete: opts.complete ?? true,
  };
  return planReconcile(input);
}

/** A compact view: "add a@i-…", "change a@i-… [DcvServerEndpoint]", "remove a (reason)". */
function summary(p: ReturnType<typeof plan>) {
  return {
    changes: p.changes.map((c) =>
      c.kind === 'add'
        ? `add ${c.sessionId}@${c.instanceId}`
        : c.kind === 'change'
          ? `change ${c.sessionId}@${c.instanceId} [${c.changed.join(',')}]`
          : `remove ${c.sessionId} (${c.reason})`,
    ),
    conflicts: p.conflicts.map((c) => `${c.kind} ${c.sessionId}@${c.instanceId}`),
    unparsable: p.unparsable.map((u) => u.instanceId),
    unchanged: p.unchanged,
  };
}

describe('planReconcile', () => {
  it.each([
    {
      name: 'empty table: every claim is an add',
      instances: [inst(1, 'a,b'), inst(2, 'c')],
      current: [],
      expected: { changes: [`add a@${iid(1)}`, `add b@${iid(1)}`, `add c@${iid(2)}`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'unchanged fleet: no write (UpdatedAt is ignored)',
      instances: [inst(1, 'a'), inst(2, 'b')],
      current: [stored('a', 1), stored('b', 2, { UpdatedAt: '2030-01-01T00:00:00Z' })],
      expected: { changes: [], conflicts: [], unparsable: [], unchanged: 2 },
    },
    {
      name: 'address changed: one change naming the attribute',
      instances: [inst(1, 'a', { privateIp: '10.9.9.9' })],
      current: [stored('a', 1)],
      expected: { changes: [`change a@${iid(1)} [DcvServerEndpoint]`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'an older item discovery wrote (tags changed since): brought in line',
      instances: [inst(1, 'a', { tags: { 'dcv:session-id': 'a', 'dcv:port': '9443' } })],
      current: [stored('a', 1)],
      expected: { changes: [`change a@${iid(1)} [HttpPort]`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'a port retyped as a string by hand is an edit: left alone, not normalised back',
      instances: [inst(1, 'a')],
      current: [edited(stored('a', 1), { HttpPort: '8443' })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand between runs (port and endpoint): not overwritten, reported once',
      instances: [inst(1, 'a')],
      current: [edited(stored('a', 1), { HttpPort: 9999, DcvServerEndpoint: '10.9.9.9' })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand, and the tags changed too: still not overwritten',
      instances: [inst(1, 'a', { privateIp: '10.5.5.5', tags: { 'dcv:session-id': 'a', 'dcv:port': '7443' } })],
      current: [edited(stored('a', 1), { Enabled: false })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand: an attribute added, or one cleared to NULL, counts as an edit',
      instances: [inst(1, 'a'), inst(2, 'b')],
      current: [edited(stored('a', 1), { Notes: 'ops desk' }), edited(stored('b', 2), { WebUrlPath: null })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`, `edited b@${iid(2)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand, its instance stopped: not removed',
      instances: [inst(1, 'a', { state: 'stopped' })],
      current: [edited(stored('a', 1), { HttpPort: 9999 })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand, its instance gone: not removed',
      instances: [],
      current: [edited(stored('a', 1), { DcvServerEndpoint: 'desk.example.com' })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand, its instance retagged: the old id stays, the new id is added',
      instances: [inst(1, 'b')],
      current: [edited(stored('a', 1), { HttpPort: 9999 })],
      expected: { changes: [`add b@${iid(1)}`], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited by hand, claimed by two instances: neither gets it, reported once',
      instances: [inst(2, 'a'), inst(1, 'a')],
      current: [edited(stored('a', 2), { HttpPort: 9999 })],
      expected: { changes: [], conflicts: [`edited a@${iid(2)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'hand-created Source = ec2 item (no DiscoveredHash): protected, even matching the tags exactly',
      instances: [inst(1, 'a'), inst(2, 'b', { state: 'stopped' })],
      current: [handWritten('a', 1), handWritten('b', 2), handWritten('c', 3, { InstanceId: undefined })],
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`, `edited b@${iid(2)}`, 'edited c@-'], unparsable: [], unchanged: 0 },
    },
    {
      name: 'edited items next to untouched ones: the untouched ones are updated and removed as usual',
      instances: [inst(1, 'a', { privateIp: '10.9.9.9' }), inst(2, 'b', { state: 'stopped' }), inst(3, 'c', { privateIp: '10.9.9.9' })],
      current: [stored('a', 1), stored('b', 2), edited(stored('c', 3), { HttpPort: 1 }), edited(stored('d', 4), { HttpPort: 1 })],
      expected: {
        changes: [`change a@${iid(1)} [DcvServerEndpoint]`, `remove b (instance ${iid(2)} is stopped)`],
        conflicts: [`edited c@${iid(3)}`, `edited d@${iid(4)}`],
        unparsable: [],
        unchanged: 0,
      },
    },
    {
      name: 'stopped instance: its items are removed',
      instances: [inst(1, 'a', { state: 'stopped' })],
      current: [stored('a', 1)],
      expected: { changes: [`remove a (instance ${iid(1)} is stopped)`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'instance gone (terminated and no longer listed)',
      instances: [],
      current: [stored('a', 1)],
      expected: { changes: [`remove a (instance ${iid(1)} not found among tagged instances)`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'retagged: old id removed, new id added',
      instances: [inst(1, 'b')],
      current: [stored('a', 1)],
      expected: { changes: [`remove a (instance ${iid(1)} no longer claims it)`, `add b@${iid(1)}`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'tags stop parsing: reported, and the instance registers nothing',
      instances: [inst(1, 'a', { tags: { 'dcv:session-id': 'a', 'dcv:port': 'x' } })],
      current: [stored('a', 1)],
      expected: { changes: [`remove a (instance ${iid(1)} tags do not parse)`], conflicts: [], unparsable: [iid(1)], unchanged: 0 },
    },
    {
      name: 'manual item wins; the clash is reported; nothing written',
      instances: [inst(1, 'console,b')],
      current: [],
      manual: ['console'],
      expected: { changes: [`add b@${iid(1)}`], conflicts: [`manual console@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'duplicate claim: earliest launch wins, whatever the order',
      instances: [inst(5, 'a'), inst(3, 'a'), inst(4, 'a')],
      current: [],
      expected: { changes: [`add a@${iid(3)}`], conflicts: [`duplicate a@${iid(4)}`, `duplicate a@${iid(5)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'duplicate claim, same launch time: smallest instance id wins',
      instances: [inst(7, 'a', { launchTime: 0 }), inst(6, 'a', { launchTime: 0 })],
      current: [],
      expected: { changes: [`add a@${iid(6)}`], conflicts: [`duplicate a@${iid(7)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'duplicate claim held by the winner: no flapping, no write',
      instances: [inst(2, 'a'), inst(1, 'a')],
      current: [stored('a', 1)],
      expected: { changes: [], conflicts: [`duplicate a@${iid(2)}`], unparsable: [], unchanged: 1 },
    },
    {
      name: 'duplicate claim held by the loser: handed to the winner',
      instances: [inst(2, 'a'), inst(1, 'a')],
      current: [stored('a', 2)],
      expected: { changes: [`change a@${iid(1)} [DcvServerEndpoint,InstanceId]`], conflicts: [`duplicate a@${iid(2)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'event scope: items of undescribed instances are untouched',
      instances: [inst(1, 'a', { state: 'stopped' })],
      current: [stored('a', 1), stored('b', 2)],
      scope: new Set([iid(1)]),
      expected: { changes: [`remove a (instance ${iid(1)} is stopped)`], conflicts: [], unparsable: [], unchanged: 0 },
    },
    {
      name: 'event scope: an id held by an undescribed instance stays with it',
      instances: [inst(1, 'b')],
      current: [stored('b', 2)],
      scope: new Set([iid(1)]),
      expected: { changes: [], conflicts: [`held b@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'event scope: an edited item of a described, stopped instance is reported and kept',
      instances: [inst(1, 'a', { state: 'stopped' })],
      current: [edited(stored('a', 1), { HttpPort: 1 }), edited(stored('b', 2), { HttpPort: 1 })],
      scope: new Set([iid(1)]),
      expected: { changes: [], conflicts: [`edited a@${iid(1)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'event scope: an edited item held by an undescribed instance is reported when claimed, never taken',
      instances: [inst(1, 'b')],
      current: [edited(stored('b', 2), { HttpPort: 1 })],
      scope: new Set([iid(1)]),
      expected: { changes: [], conflicts: [`edited b@${iid(2)}`], unparsable: [], unchanged: 0 },
    },
    {
      name: 'event scope: described instance gone, its items removed',
      instances: [],
      current: [stored('a', 1), stored('b', 2)],
      scope: new Set([iid(1)]),
      expected: { changes: [`remove a (instance ${iid(1)} not found among tagged instances)`], conflicts: [], unparsable: [], unchanged: 0 },
    },
  ])('$name', ({ instances, current, manual, scope, expected }) => {
    const result = plan(instances, current, { manual, scope });
    expect(result.aborted).toBe(false);
    expect(summary(result)).toEqual(expected);
  });

  it('an edited item is reported with its instance and what the operator can do', () => {
    const result = plan([inst(1, 'a', { state: 'terminated' })], [edited(stored('a', 1), { HttpPort: 9999 })]);
    expect(result.conflicts).toEqual([{ kind: 'edited', sessionId: 'a', instanceId: iid(1), reason: EDITED_REASON }]);
    expect(EDITED_REASON).toBe(
      'edited by hand since discovery wrote it; left alone — set Source = manual to keep it, or delete the item to let discovery manage it again',
    );
  });

  it('an item discovery wrote from the same tags is unchanged, whatever its UpdatedAt', () => {
    const instance = inst(1, 'a', { tags: { 'dcv:session-id': 'a=console', 'dcv:allowed-client-cidrs': '10.0.0.0/8,2001:db8::/32', 'dcv:quic-port': '8443' } });
    const claim = parseInstanceTags(instance);
    if (!claim.ok) throw new Error(claim.reason);
    const item = { ...claim.records[0]!.item, UpdatedAt: '2031-01-01T00:00:00.000Z' };
    const result = plan([instance], [{ sessionId: 'a', item }]);
    expect(summary(result)).toEqual({ changes: [], conflicts: [], unparsable: [], unchanged: 1 });
  });

  it('partial scan: aborted, nothing written or removed, whatever it saw', () => {
    const result = plan([inst(1, 'b')], [stored('a', 1), stored('c', 3)], { complete: false });
    expect(result).toEqual({ aborted: true, changes: [], conflicts: [], unparsable: [], unchanged: 0 });
  });

  it('a change carries the item as read, so the write can be conditional on it', () => {
    const previous = stored('a', 1, { HttpPort: 1 });
    const [change] = plan([inst(1, 'a')], [previous]).changes;
    expect(change).toMatchObject({ kind: 'change', previous, item: { SessionId: 'a', HttpPort: 8443, InstanceId: iid(1) } });
  });

  it('power runtime attributes are bookkeeping: they never pin an item, and a rewrite for the same instance keeps them', () => {
    const runtime = {
      LastVerifiedAt: '2026-03-02T08:00:00.000Z',
      PowerStartAt: '2026-03-02T07:59:00.000Z',
      ScheduleStartAt: '2026-03-02T07:00:00.000Z',
      IdleSince: '2026-03-02T08:01:00.000Z',
      PowerStopAt: '2026-03-02T08:20:00.000Z',
    };
    // Written on a discovered item by the verifier, the pass or the portal: still discovery's, unchanged.
    expect(summary(plan([inst(1, 'a')], [edited(stored('a', 1), runtime)]))).toEqual({ changes: [], conflicts: [], unparsable: [], unchanged: 1 });
    // The instance came back at a new address: the rewrite carries them over.
    const [change] = plan([inst(1, 'a', { privateIp: '10.0.9.9' })], [edited(stored('a', 1), runtime)]).changes;
    expect(change).toMatchObject({ kind: 'change', changed: ['DcvServerEndpoint'], item: { DcvServerEndpoint: '10.0.9.9', ...runtime } });
    expect(fingerprint((change as { item: Record<string, unknown> }).item)).toBe((change as { item: Record<string, unknown> }).item.DiscoveredHash);
    // Another instance takes the id: the old host's power state is not the new host's.
    const moved = plan([inst(1, 'b'), inst(2, 'a')], [edited(stored('a', 1), runtime)]).changes.find((c) => c.sessionId === 'a');
    expect(moved).toMatchObject({ kind: 'change', item: { InstanceId: iid(2) } });
    for (const key of Object.keys(runtime)) expect((moved as { item: Record<string, unknown> }).item).not.toHaveProperty(key);
  });

  it('is deterministic: the same inputs in any order give the same plan', () => {
    const instances = [inst(1, 'a,b'), inst(2, 'b,c'), inst(3, 'c,d', { launchTime: 0 }), inst(4, 'e', { state: 'stopped' })];
    const current = [stored('b', 2), stored('e', 4), stored('z', 9)];
    const first = plan(instances, current, { manual: ['d'] });
    const second = plan([...instances].reverse(), [...current].reverse(), { manual: ['d'] });
    expect(second).toEqual(first);
    expect(summary(first).changes).toEqual([
      `add a@${iid(1)}`,
      `change b@${iid(1)} [DcvServerEndpoint,InstanceId]`,
      `add c@${iid(3)}`,
      `remove e (instance ${iid(4)} is stopped)`,
      `remove z (instance ${iid(9)} not found among tagged instances)`,
    ]);
  });
});

describe('parseDiscoveryEvent', () => {
  const arn = (id: string) => `arn:aws:ec2:us-east-1:123456789012:instance/${id}`;
  it.each([
    [{ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} }, { kind: 'full', trigger: 'schedule' }],
    [
      { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: { 'instance-id': 'i-0abc1234def567890', state: 'stopped' } },
      { kind: 'instances', trigger: 'state-change stopped', instanceIds: ['i-0abc1234def567890'] },
    ],
    [
      {
        source: 'aws.tag',
        'detail-type': 'Tag Change on Resource',
        resources: [arn('i-0bbbbbbbbbbbbbbbb'), arn('i-0aaaaaaaaaaaaaaaa'), 'arn:aws:ec2:us-east-1:1:volume/vol-1'],
        detail: { service: 'ec2', 'resource-type': 'instance', 'changed-tag-keys': ['dcv:port'] },
      },
      { kind: 'instances', trigger: 'tag-change', instanceIds: ['i-0aaaaaaaaaaaaaaaa', 'i-0bbbbbbbbbbbbbbbb'] },
    ],
  ])('accepts %#', (event, expected) => expect(parseDiscoveryEvent(event)).toEqual(expected));

  it.each([
    [null, /not an object/],
    ['text', /not an object/],
    [{ source: 'aws.s3', 'detail-type': 'Object Created' }, /unsupported event \(source 'aws.s3'/],
    [{ source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: {} }, /instance-id/],
    [{ source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: { 'instance-id': 'i-; drop' } }, /instance-id/],
    [{ source: 'aws.tag', 'detail-type': 'Tag Change on Resource', resources: [arn('i-0aaaaaaaaaaaaaaaa')], detail: { service: 'rds', 'resource-type': 'db' } }, /not about an EC2 instance/],
    [{ source: 'aws.tag', 'detail-type': 'Tag Change on Resource', resources: ['nonsense'], detail: { service: 'ec2', 'resource-type': 'instance' } }, /names no EC2 instance/],
  ])('rejects %#', (event, reason) => expect(() => parseDiscoveryEvent(event)).toThrow(reason));
});

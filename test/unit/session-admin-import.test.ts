import { describe, expect, it } from 'vitest';
import type { StoredItem } from '../../lambda/core/session-admin';
import { invalidRecordText, planImport, validateImportRecords } from '../../lambda/core/session-admin-import';

const ok = (id: string, extra: Record<string, unknown> = {}) => ({ SessionId: id, DcvServerEndpoint: '10.0.0.1', ...extra });

describe('validateImportRecords', () => {
  it('accepts valid records as they are', () => {
    const records = [ok('a'), ok('b', { HttpPort: '9443', Source: 'ec2', InstanceId: 'i-1' })];
    expect(validateImportRecords(records)).toEqual({ ok: true, records });
  });

  it('reports every invalid record with its index, id, attribute and rule', () => {
    const result = validateImportRecords([
      ok('a'),
      ok('b', { HttpPort: 70000 }),
      'not an object',
      { DcvServerEndpoint: 'h' },
      ok('a'),
      ok('e', { AllowedClientCidrs: ['10.0.0.0/8', 'nope'] }),
      ok('f', { Extra: { nested: true } }),
    ]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.invalid.map(invalidRecordText)).toEqual([
      "record 1 (SessionId 'b'): HttpPort must be 1–65535",
      'record 2: record must be a JSON object',
      'record 3: SessionId is required',
      "record 4 (SessionId 'a'): SessionId appears more than once (first at record 0)",
      "record 5 (SessionId 'e'): AllowedClientCidrs 'nope' is not a CIDR",
      "record 6 (SessionId 'f'): Extra must be a string, a finite number, a boolean, null or a list of strings",
    ]);
  });

  it.each([[{}], ['text'], [null]])('a file that is not an array (%j) is refused', (data) => {
    const result = validateImportRecords(data);
    expect(result.ok === false && result.invalid.map(invalidRecordText)).toEqual(['file must be a JSON array of session items']);
  });
});

describe('planImport', () => {
  const existing = new Map<string, StoredItem>([
    ['same', { item: ok('same', { HttpPort: 8443 }) }],
    ['manual', { item: ok('manual', { Source: 'manual' }) }],
    ['found', { item: ok('found', { Source: 'ec2', InstanceId: 'i-0abc' }) }],
    ['found-same', { item: ok('found-same', { Source: 'ec2' }) }],
  ]);

  it('adds, replaces manual items, leaves equal items, refuses changed discovered items', () => {
    const plan = planImport(
      [ok('new'), ok('same', { HttpPort: 8443 }), ok('manual', { HttpPort: 9443 }), ok('found'), ok('found-same', { Source: 'ec2' })],
      existing,
      false,
    );
    expect(plan.added).toEqual(['new']);
    expect(plan.replaced).toEqual(['manual']);
    expect(plan.unchanged).toEqual(['same', 'found-same']);
    expect(plan.refused).toEqual([{ sessionId: 'found', instanceId: 'i-0abc' }]);
    expect(plan.puts.map((p) => [p.item.SessionId, p.expected.kind])).toEqual([
      ['new', 'absent'],
      ['manual', 'unchanged'],
    ]);
  });

  it('with force, replaces discovered items too, conditional on what was read', () => {
    const plan = planImport([ok('found')], existing, true);
    expect(plan.refused).toEqual([]);
    expect(plan.replaced).toEqual(['found']);
    expect(plan.puts[0]!.expected).toEqual({ kind: 'unchanged', current: existing.get('found') });
  });
});

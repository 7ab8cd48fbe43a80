import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSessionAdminStore, writeFileAtomic } from '../../lambda/adapters/session-admin-file';
import { toAttributes, unchangedCondition } from '../../lambda/adapters/session-admin-table';
import { ConcurrentChangeError, SessionNotFoundError, StoreError } from '../../lambda/core/session-admin';
import { slowProgress } from '../../lambda/cli/sessions-command';

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'session-admin-'));
  file = join(dir, 'sessions.json');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const a = { SessionId: 'a', DcvServerEndpoint: '10.0.0.1' };
const b = { SessionId: 'b', DcvServerEndpoint: '10.0.0.2', HttpPort: '9443' };

describe('FileSessionAdminStore', () => {
  it('creates the file on the first put, then keeps its order and appends new items (2-space JSON)', async () => {
    const store = new FileSessionAdminStore(file, { missingIsEmpty: true });
    await store.putIf({ item: b, expected: { kind: 'absent' } });
    await store.putIf({ item: a, expected: { kind: 'absent' } });
    const b2 = { ...b, HttpPort: 8443 };
    await store.putIf({ item: b2, expected: { kind: 'unchanged', current: { item: b } } });
    expect(readFileSync(file, 'utf8')).toBe(`${JSON.stringify([b2, a], null, 2)}\n`);
    expect((await store.list()).map((s) => s.item)).toEqual([b2, a]);
    expect(await store.get('a')).toEqual({ item: a });
    expect(await store.get('zzz')).toBeUndefined();
  });

  it('replaces the file by rename (new inode), keeps its permissions and leaves no temp file', async () => {
    writeFileSync(file, JSON.stringify([a]));
    chmodSync(file, 0o600);
    const before = statSync(file);
    await new FileSessionAdminStore(file).updateIf('a', { Enabled: false });
    const after = statSync(file);
    expect(after.ino).not.toBe(before.ino);
    expect(after.mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['sessions.json']);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([{ ...a, Enabled: false }]);
  });

  it('refuses writes whose expectation no longer holds, and writes nothing', async () => {
    writeFileSync(file, JSON.stringify([a, b]));
    const store = new FileSessionAdminStore(file);
    const text = readFileSync(file, 'utf8');
    await expect(store.putIf({ item: a, expected: { kind: 'absent' } })).rejects.toBeInstanceOf(ConcurrentChangeError);
    await expect(store.putIf({ item: a, expected: { kind: 'unchanged', current: { item: { ...a, HttpPort: 1 } } } })).rejects.toThrow(
      "session 'a' in sessions file",
    );
    await expect(store.deleteIf({ item: { ...b, HttpPort: 9443 } })).rejects.toBeInstanceOf(ConcurrentChangeError);
    // All or nothing: the second put fails, so the first is not written either.
    const c = { SessionId: 'c', DcvServerEndpoint: 'h' };
    await expect(store.putManyIf([{ item: c, expected: { kind: 'absent' } }, { item: b, expected: { kind: 'absent' } }])).rejects.toBeInstanceOf(
      ConcurrentChangeError,
    );
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('deletes an item still as read; enable/disable of a missing id is SessionNotFoundError', async () => {
    writeFileSync(file, JSON.stringify([a, b]));
    const store = new FileSessionAdminStore(file);
    await store.deleteIf({ item: { ...b } });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([a]);
    await expect(store.updateIf('b', { Enabled: true })).rejects.toBeInstanceOf(SessionNotFoundError);
  });

  it.each([
    ['missing file', undefined, /cannot read it \(ENOENT\)/],
    ['invalid JSON', '[{', /not valid JSON/],
    ['duplicate ids', JSON.stringify([a, a]), /SessionId 'a' appears more than once/],
    ['not an array', '{}', /expected a JSON array/],
  ])('%s: StoreError naming the file', async (_name, content, message) => {
    if (content !== undefined) writeFileSync(file, content);
    const error = await new FileSessionAdminStore(file).list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/^sessions file '.*sessions\.json'/);
    expect((error as Error).message).toMatch(message);
  });
});

describe('writeFileAtomic', () => {
  it('abandons the write when the file changed since it was read, and removes its temp file', () => {
    writeFileSync(file, 'old\n');
    const read = statSync(file);
    writeFileSync(file, 'someone else, longer\n');
    expect(() => writeFileAtomic(file, 'mine\n', { unchangedSince: read })).toThrow(ConcurrentChangeError);
    expect(readFileSync(file, 'utf8')).toBe('someone else, longer\n');
    expect(readdirSync(dir)).toEqual(['sessions.json']);
  });

  it("'absent' refuses to replace a file that appeared", () => {
    writeFileSync(file, 'x');
    expect(() => writeFileAtomic(file, 'y', { unchangedSince: 'absent' })).toThrow(ConcurrentChangeError);
  });

  it('a directory that cannot be written is a StoreError', () => {
    expect(() => writeFileAtomic(join(dir, 'no', 'such', 'f.json'), 'y')).toThrow(StoreError);
  });
});

describe('unchangedCondition (table)', () => {
  it('compares every attribute, list elements, and that no known attribute appeared', () => {
    const condition = unchangedCondition(toAttributes({ SessionId: 'a', HttpPort: 8443, Enabled: true, AllowedClientCidrs: ['10.0.0.0/8'], Gone: null }));
    expect(condition.ConditionExpression).toBe(
      [
        '#a0 = :v0',
        '#a1 = :v1',
        '#a2 = :v2',
        'size(#a3) = :v3',
        '#a3[0] = :v4',
        'attribute_type(#a4, :v5)',
        // Every other attribute of the record must still be absent, the portal's included: a session that
        // gained an AllowedUsers or a Pool since the read has changed.
        ...[
          'DcvServerEndpoint',
          'QuicPort',
          'WebUrlPath',
          'TargetSessionId',
          'ExpiresAt',
          'Source',
          'InstanceId',
          'InstanceState',
          'UpdatedAt',
          'DiscoveredHash',
          'AllowedUsers',
          'AllowedGroups',
          'Pool',
          'LeaseUser',
          'DcvUser',
        ].map(
          (_, i) => `attribute_not_exists(#a${5 + i})`,
        ),
      ].join(' AND '),
    );
    expect(condition.ExpressionAttributeValues).toMatchObject({ ':v0': { S: 'a' }, ':v1': { N: '8443' }, ':v2': { BOOL: true }, ':v3': { N: '1' }, ':v4': { S: '10.0.0.0/8' } });
    expect(condition.ExpressionAttributeNames).toMatchObject({ '#a15': 'AllowedUsers', '#a16': 'AllowedGroups', '#a17': 'Pool', '#a18': 'LeaseUser', '#a19': 'DcvUser' });
  });

  it('string sets compare by size and membership; a huge item falls back to scalars and sizes', () => {
    expect(unchangedCondition({ SessionId: { S: 'a' }, AllowedClientCidrs: { SS: ['x', 'y'] } }).ConditionExpression).toMatch(
      /^#a0 = :v0 AND size\(#a1\) = :v1 AND contains\(#a1, :v2\) AND contains\(#a1, :v3\) AND /,
    );
    const cidrs = Array.from({ length: 400 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const condition = unchangedCondition(toAttributes({ SessionId: 'a', AllowedClientCidrs: cidrs }));
    expect(condition.ConditionExpression.length).toBeLessThan(3500);
    expect(condition.ConditionExpression).toMatch(/^#a0 = :v0 AND size\(#a1\) = :v1 AND attribute_not_exists/);
  });

  it('the marshaller refuses what the record cannot hold', () => {
    expect(() => toAttributes({ a: { nested: 1 } })).toThrow(TypeError);
    expect(toAttributes({ s: 'x', n: 1.5, b: false, z: null, l: ['a'] })).toEqual({ s: { S: 'x' }, n: { N: '1.5' }, b: { BOOL: false }, z: { NULL: true }, l: { L: [{ S: 'a' }] } });
  });
});

describe('slowProgress', () => {
  function fakeStream(tty: boolean) {
    const writes: string[] = [];
    return { writes, stream: { isTTY: tty, write: (t: string) => writes.push(t) } as unknown as NodeJS.WriteStream };
  }

  it('stays silent for a fast operation', () => {
    let t = 0;
    const { writes, stream } = fakeStream(false);
    const p = slowProgress(stream, () => t);
    t = 900;
    p.update('read 10 items');
    p.end();
    expect(writes).toEqual([]);
  });

  it('after a second, prints at most a line a second and the final count', () => {
    let t = 0;
    const { writes, stream } = fakeStream(false);
    const p = slowProgress(stream, () => t);
    for (t = 0; t <= 2500; t += 100) p.update(`read ${t} items`);
    p.end();
    expect(writes).toEqual([
      'dcv-resolver sessions: read 1000 items\n',
      'dcv-resolver sessions: read 2000 items\n',
      'dcv-resolver sessions: read 2500 items\n',
    ]);
  });
});

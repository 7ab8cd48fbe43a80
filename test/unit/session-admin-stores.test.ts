import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSessionAdminStore, writeFileAtomic } from '../../lambda/adapters/session-admin-file';
import type { DynamoApi } from '../../lambda/adapters/dynamodb-api';
import { TableSessionAdminStore, toAttributes } from '../../lambda/adapters/session-admin-table';
import { ConcurrentChangeError, StoreError } from '../../lambda/core/session-admin';
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
    await new FileSessionAdminStore(file).updateIf({ item: a }, { Enabled: false });
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

  it('deletes an item still as read; enable/disable of an item changed or removed since it was read is refused', async () => {
    writeFileSync(file, JSON.stringify([a, b]));
    const store = new FileSessionAdminStore(file);
    await store.deleteIf({ item: { ...b } });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([a]);
    await expect(store.updateIf({ item: b }, { Enabled: true })).rejects.toBeInstanceOf(ConcurrentChangeError);
    await expect(store.updateIf({ item: { ...a, HttpPort: 9443 } }, { Enabled: false })).rejects.toThrow("session 'a' in sessions file");
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([a]);
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

/** A scripted DynamoApi: records each request, answers from the script (default: an empty answer). */
function scripted(answer: (operation: string, input: Record<string, unknown>) => unknown = () => ({})) {
  const calls: { operation: string; input: Record<string, unknown> }[] = [];
  const api = {
    async call(operation: string, input: Record<string, unknown>) {
      calls.push({ operation, input });
      return answer(operation, input);
    },
  } as unknown as DynamoApi;
  return { calls, store: new TableSessionAdminStore(api, 'T') };
}

describe('TableSessionAdminStore: the guarded writes (table)', () => {
  const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const item = (n: number) => ({ SessionId: 'a', DcvServerEndpoint: 'h', AllowedUsers: cidrs(n).map((c) => `u${c}`), AllowedClientCidrs: cidrs(3 * n), Source: 'manual' });

  it('a replacement is one UpdateItem comparing whole values (lists too), the same expression for 300 CIDRs as for 3', async () => {
    const small = scripted();
    const big = scripted();
    await small.store.putIf({ item: { ...item(1), Enabled: false }, expected: { kind: 'unchanged', current: { item: item(1) } } });
    await big.store.putIf({ item: { ...item(100), Enabled: false }, expected: { kind: 'unchanged', current: { item: item(100) } } });
    expect(big.calls.map((c) => c.operation)).toEqual(['UpdateItem']);
    const request = big.calls[0]!.input as { ConditionExpression: string; ExpressionAttributeNames: Record<string, string>; ExpressionAttributeValues: Record<string, unknown>; UpdateExpression: string; ReturnValues: string };
    expect(request.ConditionExpression).toBe((small.calls[0]!.input as { ConditionExpression: string }).ConditionExpression);
    const cidrName = Object.entries(request.ExpressionAttributeNames).find(([, n]) => n === 'AllowedClientCidrs')![0];
    const compared = new RegExp(`${cidrName} = (:v\\d+)`).exec(request.ConditionExpression)![1]!;
    expect(request.ExpressionAttributeValues[compared]).toEqual(toAttributes(item(100)).AllowedClientCidrs);
    expect(request.ConditionExpression).not.toMatch(/size\(|\[\d+\]/);
    expect(request.ReturnValues).toBe('ALL_NEW');
  });

  it('an item with too many attribute names for an exact condition is refused with no request made (no weaker fallback)', async () => {
    const { calls, store } = scripted();
    const wide = { ...item(1), ...Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`X${i}`, 'x'])) };
    await expect(store.putIf({ item: item(1), expected: { kind: 'unchanged', current: { item: wide } } })).rejects.toThrow(
      /^session 'a' in table 'T' has too many attributes to check within DynamoDB's expression limits that it is unchanged; nothing written$/,
    );
    await expect(store.deleteIf({ item: wide })).rejects.toBeInstanceOf(StoreError);
    await expect(store.updateIf({ item: wide }, { Enabled: false })).rejects.toBeInstanceOf(StoreError);
    expect(calls).toEqual([]);
  });

  it('an attribute added under an unknown name: the replacement is undone and the command told which attribute', async () => {
    const { calls, store } = scripted((operation, input) =>
      operation === 'UpdateItem' && input.ReturnValues === 'ALL_NEW' ? { Attributes: { ...toAttributes({ ...item(1), Enabled: false }), Notes: { S: 'n' } } } : {},
    );
    await expect(store.updateIf({ item: item(1) }, { Enabled: false })).rejects.toThrow(
      "session 'a' in table 'T' changed since it was read (attribute Notes added); this command undid its write, nothing changed, run it again",
    );
    expect(calls.map((c) => c.operation)).toEqual(['UpdateItem', 'UpdateItem']);
    expect(calls[1]!.input.UpdateExpression).toMatch(/REMOVE #n\d+$/); // Enabled was absent when read: removed again
    expect(calls[1]!.input.UpdateExpression).not.toContain('Notes');
  });

  it('a removal that took an added attribute with it and cannot put it back is a StoreError carrying the removed item', async () => {
    const removed = { ...toAttributes(item(1)), Notes: { S: 'keep me' } };
    const { store } = scripted((operation) => {
      if (operation === 'DeleteItem') return { Attributes: removed };
      throw Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });
    });
    const error = await store.deleteIf({ item: item(1) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain("table 'T': removed a, which had gained Notes since it was read, and could not put it back");
    expect((error as Error).message).toContain(JSON.stringify(removed));
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

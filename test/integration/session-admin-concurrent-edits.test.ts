import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { TableSessionAdminStore, toAttributes } from '../../lambda/adapters/session-admin-table';
import { ConcurrentChangeError } from '../../lambda/core/session-admin';
import { Attr, type RawItem } from '../../lambda/core/session-record';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { runCli } from '../helpers/run-cli';
import { applyEdit, editArb, getItem, sameItem, shortName, sortKeys, type Edit, type Raw } from '../helpers/console-edits';

/**
 * "An edit made in the console between the `sessions` command's read and its write is reported, not
 * overwritten", for any edit (an attribute changed, removed, or added under any name; a list element
 * replaced without changing the list's length) on an item of any size: the write either lands on the item
 * exactly as read, or is refused with "changed since it was read" (exit 1) and the item stays exactly as the
 * operator left it.
 */

vi.setConfig({ testTimeout: 240_000 });

const TABLE = 'admin-edits';
let dynamo: LocalDynamo;
let db: DynamoDBClient;

beforeAll(async () => {
  dynamo = await startDynalite();
  db = dynamo.client();
  await dynamo.createSessionTable(TABLE);
});
afterAll(async () => {
  await proxy?.close();
  await dynamo?.stop();
});

const key = (sessionId: string) => ({ [Attr.SessionId]: { S: sessionId } });
const get = (sessionId: string) => getItem(db, TABLE, sessionId);

// ---------------------------------------------------------------------------------------------------------
// The real CLI, through a loopback proxy in front of dynalite that applies the operator's edits right after
// the command's read (its GetItem) and before the answer reaches the command: exactly "between read and write".

interface EditingProxy {
  readonly endpoint: string;
  /** Edits to apply after the next GetItem; cleared once applied. */
  arm(sessionId: string, edits: readonly Edit[]): void;
  /** The DynamoDB operations the proxy forwarded since the last arm(). */
  readonly operations: string[];
  close(): Promise<void>;
}

let proxy: EditingProxy | undefined;

async function startEditingProxy(target: string): Promise<EditingProxy> {
  let pending: { sessionId: string; edits: readonly Edit[] } | undefined;
  const operations: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
      operations.push(operation);
      const upstream = request(`${target}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (answer: IncomingMessage) => {
        const body: Buffer[] = [];
        answer.on('data', (c: Buffer) => body.push(c));
        answer.on('end', () => {
          const edit = operation === 'GetItem' ? pending : undefined;
          if (edit) pending = undefined;
          void (async () => {
            if (edit) for (const e of edit.edits) await applyEdit(db, TABLE, edit.sessionId, e);
            res.writeHead(answer.statusCode ?? 500, answer.headers);
            res.end(Buffer.concat(body));
          })().catch((error: unknown) => {
            res.writeHead(500);
            res.end(String(error));
          });
        });
      });
      upstream.on('error', (error) => {
        res.writeHead(502);
        res.end(String(error));
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arm(sessionId, edits) {
      pending = { sessionId, edits };
      operations.length = 0;
    },
    operations,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The real CLI against the table, through the proxy. */
function sessions(...args: string[]) {
  return runCli(['sessions', ...args, '--table', TABLE], { AWS_ENDPOINT_URL_DYNAMODB: proxy!.endpoint, AWS_MAX_ATTEMPTS: '1' });
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** A hand-made session shared by 100 users and 100 groups (the size at which the old condition compared only lengths). */
const BIG: RawItem = {
  SessionId: 'big',
  DcvServerEndpoint: '10.0.0.7',
  HttpPort: 8443,
  WebUrlPath: '/',
  Enabled: true,
  AllowedUsers: names('user', 100),
  AllowedGroups: names('group', 100),
  Source: 'manual',
  UpdatedAt: '2025-01-01T00:00:00.000Z',
};

const EDITS: readonly (readonly [string, Edit])[] = [
  ['one of 100 AllowedUsers replaced (same length)', { kind: 'element', list: 'AllowedUsers', pick: 37, value: 'mallory' }],
  ['an attribute added under a name of its own (Notes)', { kind: 'set', name: 'Notes', value: { S: 'desk 4, ask Ana' } }],
];

/** Each command, and what it says when the edit was an attribute added under a name of its own (its write undone). */
const COMMANDS: readonly (readonly [string, string[], string])[] = [
  ['put (replacing the item)', ['put', 'big', '--endpoint', '10.0.0.8', '--allowed-users', names('user', 100).join(',')], 'this command undid its write, nothing changed'],
  ['disable', ['disable', 'big'], 'this command undid its write, nothing changed'],
  ['rm', ['rm', 'big'], 'this command put the item back, nothing removed'],
];

describe('sessions --table: an edit made between the command’s read and its write is refused, never lost', () => {
  beforeAll(async () => {
    proxy = await startEditingProxy(dynamo.endpoint);
  });

  for (const [command, args, undone] of COMMANDS) {
    for (const [what, edit] of EDITS) {
      const detail = edit.kind === 'set' ? `(attribute Notes added); ${undone}, run it again` : '(another writer); nothing written, run it again';
      it(`${command}: ${what} → exit 1, "changed since it was read", the item exactly as the operator left it`, async () => {
        await db.send(new PutItemCommand({ TableName: TABLE, Item: toAttributes(BIG) }));
        proxy!.arm('big', [edit]);
        const run = await sessions(...args);
        const edited = await get('big');
        expect(edited).toBeDefined();
        expect(sameItem(edited, toAttributes(BIG))).toBe(false); // the edit happened
        expect(proxy!.operations[0]).toBe('GetItem');
        expect({ code: run.code, stderr: run.stderr.split('\n').filter((l) => l.startsWith('dcv-resolver')) }).toEqual({
          code: 1,
          stderr: [`dcv-resolver sessions: session 'big' in table '${TABLE}' (region us-east-1) changed since it was read ${detail}`],
        });
        expect(run.stdout).toBe('');
        expect(sortKeys(await get('big'))).toEqual(sortKeys(edited));
      });
    }
  }

  it('with no edit in between, the same commands land (the proxy itself changes nothing)', async () => {
    await db.send(new PutItemCommand({ TableName: TABLE, Item: toAttributes(BIG) }));
    proxy!.arm('big', []);
    expect((await sessions('disable', 'big')).code).toBe(0);
    expect((await get('big'))?.[Attr.Enabled]).toEqual({ BOOL: false });
    const put = await sessions(...COMMANDS[0]![1]);
    expect(put.code).toBe(0);
    expect((await get('big'))?.[Attr.DcvServerEndpoint]).toEqual({ S: '10.0.0.8' });
    expect((await sessions('rm', 'big')).code).toBe(0);
    expect(await get('big')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------
// The property, on the store the command uses: random items, a random write (replace, enable/disable,
// remove), random console edits between its read and its write.

const nameList = fc.oneof(fc.constant(undefined), fc.array(shortName, { minLength: 1, maxLength: 3 }), fc.array(shortName, { minLength: 90, maxLength: 100 }));
const cidrList = fc.oneof(
  fc.constant(undefined),
  fc.subarray(['10.0.0.0/8', '192.168.1.0/24', '2001:db8::/32'], { minLength: 1 }),
  fc.integer({ min: 90, max: 300 }).map((n) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`)),
);

const itemArb = (sessionId: string): fc.Arbitrary<RawItem> =>
  fc
    .record({
      endpoint: fc.constantFrom('10.0.0.1', 'dcv-2.internal'),
      port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
      enabled: fc.option(fc.boolean(), { nil: undefined }),
      users: nameList,
      groups: nameList,
      cidrs: cidrList,
      pool: fc.option(fc.constantFrom('gpu', 'cad'), { nil: undefined }),
      notes: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
    })
    .map((r) => {
      const item: RawItem = { SessionId: sessionId, DcvServerEndpoint: r.endpoint, Source: 'manual', UpdatedAt: '2025-01-01T00:00:00.000Z' };
      if (r.port !== undefined) item.HttpPort = r.port;
      if (r.enabled !== undefined) item.Enabled = r.enabled;
      if (r.users) item.AllowedUsers = r.users;
      if (r.groups) item.AllowedGroups = r.groups;
      if (r.cidrs) item.AllowedClientCidrs = r.cidrs;
      if (r.pool) item.Pool = r.pool;
      if (r.notes !== undefined) item.Notes = r.notes; // an attribute of the operator's, there when the command reads
      return item;
    });

type Write = { readonly kind: 'put'; readonly item: RawItem } | { readonly kind: 'toggle' } | { readonly kind: 'rm' };
const writeArb: fc.Arbitrary<Write> = fc.oneof(
  itemArb('p').map((item) => ({ kind: 'put' as const, item: { ...item, UpdatedAt: '2025-06-01T12:00:00.000Z' } })),
  fc.constant({ kind: 'toggle' as const }),
  fc.constant({ kind: 'rm' as const }),
);

/** What the command writes, as the item it expects to find afterwards (undefined: removed). */
function expectedAfter(write: Write, read: RawItem): RawItem | undefined {
  if (write.kind === 'rm') return undefined;
  if (write.kind === 'put') return { ...write.item, SessionId: read.SessionId };
  return { ...read, Enabled: read.Enabled === false, UpdatedAt: '2025-06-01T12:00:00.000Z' };
}

async function perform(store: TableSessionAdminStore, write: Write, sessionId: string): Promise<void> {
  const current = (await store.get(sessionId))!;
  await editsBetween(sessionId);
  if (write.kind === 'put') {
    await store.putIf({ item: { ...write.item, SessionId: sessionId }, expected: { kind: 'unchanged', current } });
  } else if (write.kind === 'toggle') {
    await store.updateIf(current, { Enabled: current.item.Enabled === false, UpdatedAt: '2025-06-01T12:00:00.000Z' });
  } else {
    await store.deleteIf(current);
  }
}

let editsBetween: (sessionId: string) => Promise<void> = async () => {};

describe('property: the sessions store never loses an edit made between its read and its write', () => {
  it('random items (up to 100 users and groups, 300 CIDRs), random writes, random console edits in between', async () => {
    const store = new TableSessionAdminStore(sdkDynamoApi(db), TABLE, { region: 'us-east-1' });
    let run = 0;
    // Which paths the runs took, so the property cannot pass by never reaching one.
    const seen = { written: 0, refused: 0, addedUnknown: 0 };
    await fc.assert(
      fc.asyncProperty(itemArb('x'), writeArb, fc.array(editArb(['AllowedUsers', 'AllowedGroups', 'AllowedClientCidrs']), { maxLength: 3 }), async (item, write, edits) => {
        const sessionId = `prop-${run++}`;
        const seeded = { ...item, SessionId: sessionId };
        await db.send(new PutItemCommand({ TableName: TABLE, Item: toAttributes(seeded) }));
        const read = (await get(sessionId))!;
        let edited: Raw | undefined;
        editsBetween = async (id) => {
          for (const edit of edits) await applyEdit(db, TABLE, id, edit);
          edited = await get(id);
        };
        const outcome = await perform(store, write, sessionId).then(
          () => 'written' as const,
          (error: unknown) => error,
        );
        const after = await get(sessionId);
        if (!sameItem(edited, read)) {
          // Edited: refused, with the conflict error, and the item exactly as the operator left it.
          expect(outcome).toBeInstanceOf(ConcurrentChangeError);
          expect((outcome as Error).message).toMatch(new RegExp(`^session '${sessionId}' in table '${TABLE}' \\(region us-east-1\\) changed since it was read`));
          expect(sortKeys(after)).toEqual(sortKeys(edited));
          seen.refused++;
          if (/\(attribute .+ added\)/.test((outcome as Error).message)) seen.addedUnknown++;
        } else {
          expect(outcome).toBe('written');
          seen.written++;
          const wanted = expectedAfter(write, seeded);
          expect(sortKeys(after)).toEqual(wanted === undefined ? undefined : sortKeys(toAttributes(wanted)));
        }
        await db.send(new DeleteItemCommand({ TableName: TABLE, Key: key(sessionId) }));
      }),
      { numRuns: 100 },
    );
    expect(seen.written).toBeGreaterThan(0);
    expect(seen.refused).toBeGreaterThan(0);
    expect(seen.addedUnknown).toBeGreaterThan(0);
  });
});

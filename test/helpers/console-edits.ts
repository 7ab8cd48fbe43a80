import { GetItemCommand, PutItemCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { Attr } from '../../lambda/core/session-record';

/**
 * An operator's edits in the DynamoDB console, as random values and as the requests the console sends: what
 * the concurrent-edit tests (discovery, the `sessions` command) apply between a writer's read and its write.
 */

export type Raw = Record<string, AttributeValue>;

export type EditableList = 'AllowedUsers' | 'AllowedGroups' | 'AllowedClientCidrs';

export type Edit =
  | { readonly kind: 'set'; readonly name: string; readonly value: AttributeValue }
  | { readonly kind: 'remove'; readonly pick: number }
  /** One list element replaced (the list keeps its length), or one appended when `pick` lands one past the end. */
  | { readonly kind: 'element'; readonly list: EditableList; readonly pick: number; readonly value: string }
  /** The console's "save": the whole item put back with one attribute added. */
  | { readonly kind: 'console'; readonly name: string; readonly value: AttributeValue };

export const shortName = fc.stringMatching(/^[a-z][a-z0-9]{0,4}$/);

export const attributeValue: fc.Arbitrary<AttributeValue> = fc.oneof(
  fc.string({ maxLength: 12 }).map((S) => ({ S: `edit-${S}` })),
  fc.integer({ min: 0, max: 70000 }).map((n) => ({ N: String(n) })),
  fc.boolean().map((BOOL) => ({ BOOL })),
  fc.constant({ NULL: true } as AttributeValue),
  fc.array(shortName, { maxLength: 3 }).map((l) => ({ L: l.map((S) => ({ S })) })),
  fc.record({ by: shortName }).map((m) => ({ M: { by: { S: m.by } } })),
);

// Every attribute of the record (but the key), and names no writer has heard of.
const editableNames = [...Object.values(Attr).filter((a) => a !== Attr.SessionId), 'Notes', 'Owner', 'ticket_1', 'zz'];

/** Any one edit: set any attribute to any type, remove one, replace or append one element of `lists`, a console save. */
export function editArb(lists: readonly EditableList[]): fc.Arbitrary<Edit> {
  return fc.oneof(
    fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom(...editableNames), value: attributeValue }),
    fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('element' as const), list: fc.constantFrom(...lists), pick: fc.nat(), value: shortName }),
    fc.record({ kind: fc.constant('console' as const), name: fc.constantFrom('Notes', 'Owner', 'ticket_1'), value: attributeValue }),
  );
}

export async function getItem(db: DynamoDBClient, table: string, sessionId: string): Promise<Raw | undefined> {
  return (await db.send(new GetItemCommand({ TableName: table, Key: { [Attr.SessionId]: { S: sessionId } }, ConsistentRead: true }))).Item;
}

/** One edit, as the console sends it. DynamoDB refuses an InstanceId that is not a string where it is an index's key: that edit never happened. */
export async function applyEdit(db: DynamoDBClient, table: string, sessionId: string, edit: Edit): Promise<void> {
  try {
    await sendEdit(db, table, sessionId, edit);
  } catch (error) {
    if (!/Type mismatch for Index Key/.test((error as Error).message)) throw error;
  }
}

async function sendEdit(db: DynamoDBClient, TableName: string, sessionId: string, edit: Edit): Promise<void> {
  const Key = { [Attr.SessionId]: { S: sessionId } };
  const current = await getItem(db, TableName, sessionId);
  if (!current) return;
  if (edit.kind === 'set') {
    await db.send(new UpdateItemCommand({ TableName, Key, UpdateExpression: 'SET #a = :v', ExpressionAttributeNames: { '#a': edit.name }, ExpressionAttributeValues: { ':v': edit.value } }));
  } else if (edit.kind === 'remove') {
    const present = Object.keys(current).filter((name) => name !== Attr.SessionId).sort();
    if (present.length === 0) return;
    await db.send(new UpdateItemCommand({ TableName, Key, UpdateExpression: 'REMOVE #a', ExpressionAttributeNames: { '#a': present[edit.pick % present.length]! } }));
  } else if (edit.kind === 'element') {
    const list = current[edit.list]?.L;
    if (!list || list.length === 0) return;
    const index = edit.pick % (list.length + 1); // one past the end appends
    await db.send(
      new UpdateItemCommand({
        TableName,
        Key,
        UpdateExpression: index === list.length ? 'SET #a = list_append(#a, :one)' : `SET #a[${index}] = :v`,
        ExpressionAttributeNames: { '#a': edit.list },
        ExpressionAttributeValues: index === list.length ? { ':one': { L: [{ S: edit.value }] } } : { ':v': { S: edit.value } },
      }),
    );
  } else {
    await db.send(new PutItemCommand({ TableName, Item: { ...current, [edit.name]: edit.value } }));
  }
}

/** Keys sorted at every level, for comparing items whatever order DynamoDB returned their attributes in. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  return value;
}

export function sameItem(a: Raw | undefined, b: Raw | undefined): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

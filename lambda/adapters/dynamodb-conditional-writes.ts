import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { Attr } from '../core/session-record.js';
import type { DynamoApi } from './dynamodb-api.js';

/**
 * "Write only if the item is still exactly as read", for everything that edits the session table after
 * reading it (discovery, the `sessions` command). A condition can compare any attribute it names, as a whole
 * value (lists and maps included: DynamoDB compares them by value, in order), and require named attributes
 * to be absent; it cannot say "no other attributes exist". So:
 *  - every attribute read is compared whole, and every attribute of the record (and any about to be
 *    written) must still be absent if it was: a changed, removed or known-name added attribute refuses the
 *    write atomically, whatever the item's size (the expression grows with the number of names only);
 *  - an attribute added under a name nobody knows (`Notes`) is caught from the write's atomic answer: a
 *    replacement is an UpdateItem naming only attributes read or written (so it never touches such an
 *    attribute) that returns ALL_NEW, and is undone if one is there; a removal is a DeleteItem returning
 *    ALL_OLD, put back at once if one was there;
 *  - a condition that would pass DynamoDB's expression limits refuses the write; there is no weaker fallback.
 */

export type RawItemMap = Record<string, AttributeValue>;

// DynamoDB's expression limits (developer guide, "Constraints"): 4 KB for any expression string, 300
// operators or functions in one expression. Values (ExpressionAttributeValues) may total 2 MB, so a whole
// list compared as one value costs the expression a few bytes however long the list is.
const MAX_EXPRESSION_BYTES = 4096;
const MAX_CONDITION_OPERATORS = 300;

export interface Condition {
  readonly ConditionExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues?: Record<string, AttributeValue>;
}

/** Placeholders shared by the expressions of one request (`#n0` for names, `:v0` for values). */
export class Placeholders {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, AttributeValue> = {};
  private readonly nameOf = new Map<string, string>();
  private valueCount = 0;

  name(attribute: string): string {
    let placeholder = this.nameOf.get(attribute);
    if (!placeholder) {
      placeholder = `#n${this.nameOf.size}`;
      this.nameOf.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  value(v: AttributeValue): string {
    const placeholder = `:v${this.valueCount++}`;
    this.values[placeholder] = v;
    return placeholder;
  }
}

function fits(expression: string): boolean {
  return Buffer.byteLength(expression) <= MAX_EXPRESSION_BYTES;
}

/** A condition from `holdsExactly`: one comparator or function per part, plus the ANDs between them. */
function conditionFits(expression: string): boolean {
  const parts = expression.split(' AND ').length;
  return fits(expression) && 2 * parts - 1 <= MAX_CONDITION_OPERATORS;
}

/**
 * "Each attribute in `expected` still holds exactly that value, and each name in `absent` is still absent":
 * one whole-value comparison per attribute, so the expression's length depends on the number of
 * attributes, never on their size.
 */
function holdsExactly(expected: RawItemMap, absent: Iterable<string>, p: Placeholders): string {
  const parts: string[] = [];
  for (const [attribute, v] of Object.entries(expected)) {
    parts.push(v.NULL ? `attribute_type(${p.name(attribute)}, ${p.value({ S: 'NULL' })})` : `${p.name(attribute)} = ${p.value(v)}`);
  }
  for (const attribute of new Set(absent)) if (!(attribute in expected)) parts.push(`attribute_not_exists(${p.name(attribute)})`);
  return parts.join(' AND ');
}

/**
 * "The item is as read": every attribute read still holds its read value, and no attribute of the record
 * (or in `alsoAbsent`) has appeared. Undefined when the expression would pass DynamoDB's limits (an item
 * with well over a hundred attribute names): the write is then refused, never made under a weaker condition.
 */
export function unchangedSince(read: RawItemMap, alsoAbsent: Iterable<string> = [], p = new Placeholders()): Condition | undefined {
  const expression = holdsExactly(read, [...Object.values(Attr), ...alsoAbsent], p);
  if (!conditionFits(expression)) return undefined;
  return { ConditionExpression: expression, ExpressionAttributeNames: p.names, ExpressionAttributeValues: p.values };
}

/** The UpdateItem expression that turns `from` into `to` (the key stays); names in neither are left as they are. */
function rewriteExpression(from: RawItemMap, to: RawItemMap, p: Placeholders): string {
  const set = Object.entries(to)
    .filter(([attribute]) => attribute !== Attr.SessionId)
    .map(([attribute, v]) => `${p.name(attribute)} = ${p.value(v)}`);
  const remove = Object.keys(from)
    .filter((attribute) => attribute !== Attr.SessionId && !(attribute in to))
    .map((attribute) => p.name(attribute));
  return [set.length > 0 ? `SET ${set.join(', ')}` : '', remove.length > 0 ? `REMOVE ${remove.join(', ')}` : ''].filter(Boolean).join(' ');
}

/** Attribute names in `item` that `known` does not have, sorted. */
function namesBeyond(item: RawItemMap | undefined, known: RawItemMap): string[] {
  return Object.keys(item ?? {})
    .filter((attribute) => !(attribute in known))
    .sort();
}

function isConditionFailure(error: unknown): boolean {
  return (error as Error)?.name === 'ConditionalCheckFailedException';
}

function keyOf(sessionId: string): RawItemMap {
  return { [Attr.SessionId]: { S: sessionId } };
}

/**
 * What a guarded write did:
 *  - applied: written on the item exactly as read (`item`: the item as written, for a replacement);
 *  - edited: the item no longer held what was read (changed, removed, known name added): nothing written;
 *  - uncheckable: the condition would pass DynamoDB's limits: no request made, nothing written;
 *  - added: an attribute appeared under a name no condition knew (`names`); the write was undone (a
 *    replacement: `undone` false when the item was edited again before the undo, and is left as it is) or
 *    the removed item put back.
 */
export type GuardedWriteOutcome =
  | { readonly status: 'applied'; readonly item?: RawItemMap }
  | { readonly status: 'edited' }
  | { readonly status: 'uncheckable' }
  | { readonly status: 'added'; readonly names: readonly string[]; readonly undone: boolean };

/**
 * A removal that took an unknown-name edit with it and could not put the item back: the message carries the
 * item. Named plain `Error` (discovery logs `Error: removed …` as before); tell it apart with instanceof.
 */
export class PutBackError extends Error {
  constructor(
    readonly sessionId: string,
    readonly added: readonly string[],
    readonly removed: RawItemMap,
    cause: Error,
  ) {
    super(
      `removed ${sessionId}, which had gained ${added.join(', ')} since it was read, and could not put it back ` +
        `(${cause.name}: ${cause.message}); the removed item: ${JSON.stringify(removed)}`,
    );
  }
}

/** Replaces the item `read` with `next` (same key) only if it is still exactly `read`. */
export async function replaceIfUnchanged(api: DynamoApi, tableName: string, sessionId: string, read: RawItemMap, next: RawItemMap): Promise<GuardedWriteOutcome> {
  const p = new Placeholders();
  const condition = holdsExactly(read, [...Object.values(Attr), ...Object.keys(next)], p);
  const update = rewriteExpression(read, next, p);
  if (!conditionFits(condition) || !fits(update)) return { status: 'uncheckable' };
  let answer: { Attributes?: RawItemMap };
  try {
    answer = await api.call('UpdateItem', {
      TableName: tableName,
      Key: keyOf(sessionId),
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: p.names,
      ExpressionAttributeValues: p.values,
      ReturnValues: 'ALL_NEW',
    });
  } catch (error) {
    if (isConditionFailure(error)) return { status: 'edited' };
    throw error;
  }
  const added = namesBeyond(answer.Attributes, next);
  if (added.length === 0) return { status: 'applied', ...(answer.Attributes ? { item: answer.Attributes } : {}) };
  // Back to what was read, only if what was written is still there; the added attributes stay untouched.
  const q = new Placeholders();
  try {
    await api.call('UpdateItem', {
      TableName: tableName,
      Key: keyOf(sessionId),
      UpdateExpression: rewriteExpression(next, read, q),
      ConditionExpression: holdsExactly(next, Object.keys(read), q),
      ExpressionAttributeNames: q.names,
      ExpressionAttributeValues: q.values,
    });
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    return { status: 'added', names: added, undone: false };
  }
  return { status: 'added', names: added, undone: true };
}

/**
 * Deletes the item only if it is still exactly `read`. If the deleted item carried an attribute under a
 * name the condition could not know, it is put back at once (`added`); if that fails (another writer took
 * the key within the round trip), PutBackError, carrying the whole removed item.
 */
export async function removeIfUnchanged(api: DynamoApi, tableName: string, sessionId: string, read: RawItemMap): Promise<GuardedWriteOutcome> {
  const condition = unchangedSince(read);
  if (!condition) return { status: 'uncheckable' };
  let answer: { Attributes?: RawItemMap };
  try {
    answer = await api.call('DeleteItem', { TableName: tableName, Key: keyOf(sessionId), ...condition, ReturnValues: 'ALL_OLD' });
  } catch (error) {
    if (isConditionFailure(error)) return { status: 'edited' };
    throw error;
  }
  const added = namesBeyond(answer.Attributes, read);
  if (added.length === 0) return { status: 'applied' };
  try {
    await api.call('PutItem', {
      TableName: tableName,
      Item: answer.Attributes,
      ConditionExpression: 'attribute_not_exists(#k)',
      ExpressionAttributeNames: { '#k': Attr.SessionId },
    });
  } catch (error) {
    throw new PutBackError(sessionId, added, answer.Attributes!, error as Error);
  }
  return { status: 'added', names: added, undone: true };
}

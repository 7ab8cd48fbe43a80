import { createRequire } from 'node:module';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

/**
 * DynamoDB compares lists and maps by value in conditions: `#Users = :list` holds when the stored list has the
 * same elements in the same order (the API reference: "EQ is supported for all data types, including lists and
 * maps"). dynalite 4 compares their elements by reference, so `=` on an L or M is always false there and `<>`
 * always true. Discovery's write conditions compare whole lists, so every test DynamoDB gets this fix: a
 * conditional write's condition is evaluated as dynalite does, except `=` and `<>` with a list or map operand,
 * which compare by value (N by number, sets as sets). Applied once per process, before dynalite serves.
 */

type Node = { type: string; name?: string; args: unknown[] };
interface DynaliteDb {
  checkConditional(data: { _condition?: { expression: Node } }, existing: Record<string, AttributeValue> | undefined): Error | null | undefined;
  compare(comp: string, value: unknown, compareWith: unknown[]): boolean;
  mapPath(path: unknown[], item: Record<string, AttributeValue>): AttributeValue | undefined;
  documentEquality?: true;
}

export function sameAttributeValue(a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (!a || !b) return false;
  const [typeA] = Object.keys(a);
  const [typeB] = Object.keys(b);
  if (typeA !== typeB) return false;
  if (a.L && b.L) return a.L.length === b.L.length && a.L.every((entry, i) => sameAttributeValue(entry, b.L![i]));
  if (a.M && b.M) {
    const keys = Object.keys(a.M);
    return keys.length === Object.keys(b.M).length && keys.every((k) => k in b.M! && sameAttributeValue(a.M![k], b.M![k]));
  }
  if (a.N !== undefined && b.N !== undefined) return Number(a.N) === Number(b.N);
  const setA = a.SS ?? a.NS ?? a.BS;
  const setB = b.SS ?? b.NS ?? b.BS;
  if (setA && setB) return setA.length === setB.length && setA.every((entry) => (setB as unknown[]).includes(entry));
  return JSON.stringify(Object.values(a)[0]) === JSON.stringify(Object.values(b)[0]);
}

function conditionalError(): Error {
  const error = new Error('The conditional request failed') as Error & { statusCode: number; body: unknown };
  error.statusCode = 400;
  error.body = { __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException', message: error.message };
  return error;
}

export function fixDynaliteDocumentEquality(): void {
  const db = createRequire(import.meta.url)('dynalite/db/index.js') as DynaliteDb;
  if (db.documentEquality) return;
  const isDocument = (v: unknown) => typeof v === 'object' && v !== null && ('L' in v || 'M' in v);
  const resolve = (arg: unknown, item: Record<string, AttributeValue>): unknown => {
    if (Array.isArray(arg)) return db.mapPath(arg, item);
    const node = arg as Node;
    if (node?.type === 'function' && node.name === 'size') {
      const v = resolve(node.args[0], item) as AttributeValue | undefined;
      if (!v) return null;
      const size =
        v.S !== undefined ? v.S.length : v.B !== undefined ? Buffer.from(v.B as unknown as string, 'base64').length : (v.SS ?? v.NS ?? v.BS ?? v.L)?.length ?? (v.M ? Object.keys(v.M).length : undefined);
      return size === undefined ? null : { N: String(size) };
    }
    return arg;
  };
  const evaluate = (item: Record<string, AttributeValue>, node: Node): boolean => {
    if (node.type === 'and') return evaluate(item, node.args[0] as Node) && evaluate(item, node.args[1] as Node);
    if (node.type === 'or') return evaluate(item, node.args[0] as Node) || evaluate(item, node.args[1] as Node);
    if (node.type === 'not') return !evaluate(item, node.args[0] as Node);
    const args = node.args.map((arg) => resolve(arg, item));
    if ((node.type === '=' || node.type === '<>') && (isDocument(args[0]) || isDocument(args[1]))) {
      const equal = sameAttributeValue(args[0] as AttributeValue, args[1] as AttributeValue);
      return node.type === '=' ? equal : !equal;
    }
    return db.compare(node.type === 'function' ? node.name! : node.type, args[0], args.slice(1));
  };
  const original = db.checkConditional;
  db.checkConditional = (data, existing) => {
    if (!data._condition) return original(data, existing);
    return evaluate(existing ?? {}, data._condition.expression) ? null : conditionalError();
  };
  db.documentEquality = true;
}

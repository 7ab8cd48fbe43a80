import { isDiscovered, itemProblem, sameItem, type ConditionalPut, type Problem, type StoredItem } from './session-admin.js';
import { Attr, type RawItem } from './session-record.js';

/**
 * `sessions import`: every record is checked before anything is written, and the plan says, per record,
 * whether it adds, replaces or leaves an item unchanged. A discovered item (`Source = ec2`) that would
 * change is refused unless forced, and a refusal, like an invalid record, stops the whole import.
 */

export interface InvalidRecord extends Problem {
  /** Position in the file's array, from 0. */
  readonly index: number;
  readonly sessionId?: string;
}

export type ImportValidation =
  | { readonly ok: true; readonly records: readonly RawItem[] }
  | { readonly ok: false; readonly invalid: readonly InvalidRecord[] };

function idOf(record: unknown): string | undefined {
  const id = (record as RawItem | null)?.[Attr.SessionId];
  return typeof record === 'object' && record !== null && typeof id === 'string' ? id : undefined;
}

/** A sessions file's content (already JSON-parsed): every problem of every record, or the records. */
export function validateImportRecords(data: unknown): ImportValidation {
  if (!Array.isArray(data)) {
    return { ok: false, invalid: [{ index: -1, field: 'file', rule: 'must be a JSON array of session items' }] };
  }
  const invalid: InvalidRecord[] = [];
  const firstIndexOf = new Map<string, number>();
  data.forEach((record: unknown, index) => {
    const sessionId = idOf(record);
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      invalid.push({ index, field: 'record', rule: 'must be a JSON object' });
      return;
    }
    const problem = itemProblem(record as RawItem);
    if (problem) {
      invalid.push({ index, ...(sessionId === undefined ? {} : { sessionId }), ...problem });
      return;
    }
    const first = firstIndexOf.get(sessionId!);
    if (first !== undefined) {
      invalid.push({ index, sessionId, field: Attr.SessionId, rule: `appears more than once (first at record ${first})` });
      return;
    }
    firstIndexOf.set(sessionId!, index);
  });
  return invalid.length > 0 ? { ok: false, invalid } : { ok: true, records: data as RawItem[] };
}

export function invalidRecordText(r: InvalidRecord): string {
  if (r.index < 0) return `${r.field} ${r.rule}`;
  return `record ${r.index}${r.sessionId === undefined ? '' : ` (SessionId '${r.sessionId}')`}: ${r.field} ${r.rule}`;
}

export interface ImportPlan {
  readonly puts: readonly ConditionalPut[];
  readonly added: readonly string[];
  readonly replaced: readonly string[];
  readonly unchanged: readonly string[];
  /** Discovered items the import would change, refused without `force`. */
  readonly refused: readonly { readonly sessionId: string; readonly instanceId?: string }[];
}

/** Records (validated) against what the store holds now, by SessionId. */
export function planImport(records: readonly RawItem[], existing: ReadonlyMap<string, StoredItem>, force: boolean): ImportPlan {
  const puts: ConditionalPut[] = [];
  const added: string[] = [];
  const replaced: string[] = [];
  const unchanged: string[] = [];
  const refused: { sessionId: string; instanceId?: string }[] = [];
  for (const item of records) {
    const sessionId = item[Attr.SessionId] as string;
    const current = existing.get(sessionId);
    if (!current) {
      added.push(sessionId);
      puts.push({ item, expected: { kind: 'absent' } });
    } else if (sameItem(current.item, item)) {
      unchanged.push(sessionId);
    } else if (isDiscovered(current.item) && !force) {
      const instanceId = current.item[Attr.InstanceId];
      refused.push({ sessionId, ...(typeof instanceId === 'string' ? { instanceId } : {}) });
    } else {
      replaced.push(sessionId);
      puts.push({ item, expected: { kind: 'unchanged', current } });
    }
  }
  return { puts, added, replaced, unchanged, refused };
}

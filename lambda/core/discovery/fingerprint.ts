import { createHash } from 'node:crypto';
import { Attr, POWER_RUNTIME_ATTRIBUTES, type RawItem } from '../session-record.js';

/**
 * The fingerprint discovery stores in `DiscoveredHash` on every item it writes: sha256 (hex) of the item's
 * attributes except `UpdatedAt`, `DiscoveredHash` itself and the power runtime attributes, as canonical JSON (object keys sorted, list
 * order kept). The next run recomputes it from the item as read: a mismatch, or no hash at all, means the
 * item was written or edited by hand, and discovery leaves it alone.
 *
 * Values are compared as the planner sees them, so what the tag parser builds and what the adapter reads
 * back (N → number, L or SS → array of strings, BOOL → boolean, NULL → null, M → object) fingerprint the
 * same. The type is part of the value: a port retyped as a string, a cleared (NULL) attribute, an extra
 * attribute, or a reordered list are all edits.
 */
// The power runtime attributes (LastVerifiedAt, IdleSince, …) are bookkeeping other writers keep on the
// item; none existed in 0.1.0, so leaving them out changes no stored hash (discovery-fingerprint-vectors).
const NOT_FINGERPRINTED = new Set<string>([Attr.UpdatedAt, Attr.DiscoveredHash, ...POWER_RUNTIME_ATTRIBUTES]);

function canonical(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    // JSON has no NaN/Infinity; keep them distinct from null and from each other.
    return Number.isFinite(value) ? value : { $number: String(value) };
  }
  if (Array.isArray(value)) return value.map((entry) => (entry === undefined ? null : canonical(entry)));
  if (value instanceof Uint8Array) return { $binary: Buffer.from(value).toString('base64') };
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const entry = (value as Record<string, unknown>)[key];
      if (entry !== undefined) out[key] = canonical(entry);
    }
    return out;
  }
  // undefined, bigint, functions, symbols: never in an item; give them a stable, distinct form anyway.
  return { $other: `${typeof value}:${String(value)}` };
}

/** sha256 hex of the item's canonical JSON, without `UpdatedAt` and `DiscoveredHash`. */
export function fingerprint(item: RawItem): string {
  const content: RawItem = {};
  for (const key of Object.keys(item)) {
    if (!NOT_FINGERPRINTED.has(key) && item[key] !== undefined) content[key] = item[key];
  }
  return createHash('sha256').update(JSON.stringify(canonical(content))).digest('hex');
}

/** True when the item carries a `DiscoveredHash` that matches its content: nobody changed it since discovery wrote it. */
export function isUntouchedSinceDiscovery(item: RawItem): boolean {
  const stored = item[Attr.DiscoveredHash];
  return typeof stored === 'string' && stored === fingerprint(item);
}

/** The item as discovery writes it: its content plus the fingerprint of that content. */
export function withFingerprint(item: RawItem): RawItem {
  // Copied key by key: a spread of an object built with computed keys stays in V8's dictionary mode,
  // about 2.5 times the memory; a full reconcile holds one of these per discovered session.
  const out: RawItem = {};
  for (const key of Object.keys(item)) out[key] = item[key];
  out[Attr.DiscoveredHash] = fingerprint(item);
  return out;
}

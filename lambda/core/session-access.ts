import type { SessionRecord } from './session-record.js';

/**
 * Who may open a session through the portal (and, defence in depth, use a token for it).
 * A person is known by several names (the ID token's subject, email, user name) and their groups.
 */
export interface Principal {
  /** Every name the person is known by; any one of them may appear in `AllowedUsers`. */
  readonly names: readonly string[];
  readonly groups: readonly string[];
}

/** True when the record names any access rule; a record with neither list is shown to nobody. */
export function hasAccessRules(record: Pick<SessionRecord, 'allowedUsers' | 'allowedGroups'>): boolean {
  return record.allowedUsers !== undefined || record.allowedGroups !== undefined;
}

/**
 * The name by which the principal is allowed on the record (user match first, then the first matching
 * group as `group:<name>`), or undefined when not allowed. Names compare exactly, except e-mail-like
 * names, which compare case-insensitively (identity providers differ in the case they return).
 */
export function allowedAs(record: Pick<SessionRecord, 'allowedUsers' | 'allowedGroups'>, principal: Principal): string | undefined {
  const names = new Set(principal.names.map(normalName));
  const user = record.allowedUsers?.find((allowed) => names.has(normalName(allowed)));
  if (user !== undefined) return user;
  const groups = new Set(principal.groups);
  const group = record.allowedGroups?.find((allowed) => groups.has(allowed));
  return group === undefined ? undefined : `group:${group}`;
}

export function mayOpen(record: Pick<SessionRecord, 'allowedUsers' | 'allowedGroups'>, principal: Principal): boolean {
  return allowedAs(record, principal) !== undefined;
}

function normalName(name: string): string {
  return name.includes('@') ? name.toLowerCase() : name;
}

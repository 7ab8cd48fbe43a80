import { describe, expect, it } from 'vitest';
import { allowedAs, hasAccessRules, mayOpen, type Principal } from '../../lambda/core/session-access';
import { parseSessionRecord, type RawItem, type SessionRecord } from '../../lambda/core/session-record';

function record(extra: RawItem): SessionRecord {
  const parsed = parseSessionRecord({ SessionId: 'desk', DcvServerEndpoint: '10.0.0.1', ...extra });
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.record;
}

const alice: Principal = { names: ['sub-123', 'Alice@Example.COM', 'alice'], groups: ['ops', 'gpu-users'] };
const bob: Principal = { names: ['sub-456', 'bob@example.com'], groups: [] };

describe('hasAccessRules', () => {
  it('is true when either list is present, false with neither', () => {
    expect(hasAccessRules(record({}))).toBe(false);
    expect(hasAccessRules(record({ AllowedUsers: ['alice'] }))).toBe(true);
    expect(hasAccessRules(record({ AllowedGroups: ['ops'] }))).toBe(true);
  });
});

describe('allowedAs / mayOpen', () => {
  it('a session with neither list is open to nobody, whatever their names and groups', () => {
    const open = record({});
    for (const p of [alice, bob, { names: [], groups: [] }]) {
      expect(allowedAs(open, p)).toBeUndefined();
      expect(mayOpen(open, p)).toBe(false);
    }
  });

  it('matches any of the principal’s names against AllowedUsers', () => {
    expect(allowedAs(record({ AllowedUsers: ['sub-123'] }), alice)).toBe('sub-123');
    expect(allowedAs(record({ AllowedUsers: ['carol', 'alice'] }), alice)).toBe('alice');
    expect(mayOpen(record({ AllowedUsers: ['carol'] }), alice)).toBe(false);
  });

  it('compares e-mail-like names case-insensitively, other names exactly', () => {
    expect(allowedAs(record({ AllowedUsers: ['alice@example.com'] }), alice)).toBe('alice@example.com');
    expect(mayOpen(record({ AllowedUsers: ['BOB@EXAMPLE.com'] }), bob)).toBe(true);
    // A user name without '@' is case-sensitive: 'Alice' is not 'alice'.
    expect(mayOpen(record({ AllowedUsers: ['Alice'] }), { names: ['alice'], groups: [] })).toBe(false);
    expect(mayOpen(record({ AllowedUsers: ['SUB-123'] }), alice)).toBe(false);
  });

  it('matches groups exactly (case-sensitive), answering group:<name>', () => {
    expect(allowedAs(record({ AllowedGroups: ['gpu-users'] }), alice)).toBe('group:gpu-users');
    expect(mayOpen(record({ AllowedGroups: ['Ops'] }), alice)).toBe(false);
    expect(mayOpen(record({ AllowedGroups: ['ops'] }), bob)).toBe(false);
  });

  it('a group name does not match a user name, nor a user name a group', () => {
    expect(mayOpen(record({ AllowedUsers: ['ops'] }), alice)).toBe(false);
    expect(mayOpen(record({ AllowedGroups: ['alice'] }), alice)).toBe(false);
  });

  it('prefers a user match over a group match', () => {
    const both = record({ AllowedUsers: ['alice'], AllowedGroups: ['ops'] });
    expect(allowedAs(both, alice)).toBe('alice');
    expect(allowedAs(both, { names: ['dave'], groups: ['ops'] })).toBe('group:ops');
    expect(allowedAs(both, bob)).toBeUndefined();
  });

  it('with only a group list, users are matched by group only', () => {
    const groupsOnly = record({ AllowedGroups: ['ops'] });
    expect(mayOpen(groupsOnly, alice)).toBe(true);
    expect(mayOpen(groupsOnly, { names: ['ops'], groups: [] })).toBe(false);
  });
});

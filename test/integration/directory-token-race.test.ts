import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirectoryTokenStore } from '../../lambda/adapters/directory-token-store';
import { SessionResolver } from '../../lambda/core/resolve';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { hashToken, mintToken } from '../../lambda/core/tokens/token';
import type { TokenGrant, TokenState } from '../../lambda/core/tokens/token-grant';
import type { ConsumeOutcome } from '../../lambda/core/tokens/token-store';
import { TokenVerifier } from '../../lambda/core/tokens/verify-token';
import { RecordingLog } from '../helpers/recording-log';

/**
 * Revoke racing a verification on a tokens directory. The property (what "a revoked token must not verify
 * once revoke has returned" means for a store whose operations overlap in time), for one token:
 *
 *   every consume that answers ok took its use before the revoke returned, i.e. its use is counted by
 *   any get() that starts after the revoke returned; every consume that answers no took nothing (at
 *   rest, uses taken = ok answers); and a consume that starts after the revoke returned answers revoked.
 *
 * So each history is linearizable: an ok consume can be placed before the revoke. The bug broke the first
 * clause: consume read "not revoked", the revoke then wrote its marker and returned, and consume then took
 * a use and answered ok — a use that no read after the revoke had seen.
 */
const EXPIRES_AT = 2_000_000_000;
const NOW = EXPIRES_AT - 100;
const tempDirs: string[] = [];

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tokensDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'token-race-'));
  tempDirs.push(dir);
  return dir;
}

function grant(maxUses: number): TokenGrant & { token: string } {
  const token = mintToken();
  return { token, hash: hashToken(token), sessionId: 'agent1', user: 'alice', expiresAt: EXPIRES_AT, maxUses, createdAt: '2033-05-18T03:31:00.000Z' };
}

/**
 * A directory store whose `get` can stop once, after it has read: the n-th call from now waits at a
 * gate, so a test can run a revoke (from another store on the same folder, as another process would)
 * between consume's read and the rest of consume. No timing involved.
 */
class GatedStore extends DirectoryTokenStore {
  private armed?: { calls: number; reached: () => void; gate: Promise<void> };

  /** Resolves `reached` when the n-th get from now has read; that get returns once `open` is called. */
  arm(nthCall: number): { reached: Promise<void>; open: () => void } {
    let open!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    this.armed = { calls: nthCall, reached, gate };
    return { reached: reachedPromise, open };
  }

  override async get(hash: string): Promise<TokenState | undefined> {
    const state = await super.get(hash);
    if (this.armed && --this.armed.calls === 0) {
      const { reached, gate } = this.armed;
      this.armed = undefined;
      reached();
      await gate;
    }
    return state;
  }
}

describe('DirectoryTokenStore: revoke racing consume', () => {
  it('a revoke that returns between consume’s read and its use: consume answers revoked and takes nothing', async () => {
    const dir = tokensDir();
    const consumer = new GatedStore(dir);
    const revoker = new DirectoryTokenStore(dir);
    const g = grant(3);
    await revoker.put(g);

    const { reached, open } = consumer.arm(1);
    const pending = consumer.consume(g.hash, NOW);
    await reached;
    expect(await revoker.revoke(g.hash, new Date(NOW * 1000))).toBe(true);
    // Read after the revoke returned: revoked, nothing used.
    expect(await revoker.get(g.hash)).toMatchObject({ revokedAt: new Date(NOW * 1000).toISOString(), usesLeft: 3 });
    open();
    expect(await pending).toEqual({ ok: false, reason: 'revoked' });
    expect(await revoker.get(g.hash)).toMatchObject({ usesLeft: 3 });
    expect(readdirSync(join(dir, g.hash)).sort()).toEqual(['grant.json', 'revoked']);
  });

  it('the verifier: a revoke that returns while a verification is under way (after its checks) makes it answer no', async () => {
    const dir = tokensDir();
    const tokens = new GatedStore(dir);
    const revoker = new DirectoryTokenStore(dir);
    const log = new RecordingLog();
    const sessions = new SessionResolver({
      store: new MemorySessionStore([{ SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' }]),
      log,
    });
    const verifier = new TokenVerifier({ tokens, sessions, log, now: () => NOW * 1000 });
    const g = grant(1);
    await revoker.put(g);

    // The verifier reads the grant (get 1), checks the session, then consume reads again (get 2): stop there.
    const { reached, open } = tokens.arm(2);
    const pending = verifier.verify({ serverSessionId: 'console', token: g.token, server: '10.0.1.15' });
    await reached;
    expect(await revoker.revoke(g.hash, new Date(NOW * 1000))).toBe(true);
    open();
    expect(await pending).toMatchObject({ result: 'no', reason: 'revoked' });
    expect(await revoker.get(g.hash)).toMatchObject({ usesLeft: 1 });
  });

  it('many rounds of concurrent consumes and a revoke, from separate store instances: the property holds every time', async () => {
    const ROUNDS = 40;
    const CONSUMERS = 8;
    const dir = tokensDir();
    const stores = Array.from({ length: CONSUMERS + 1 }, () => new DirectoryTokenStore(dir));
    const revoker = stores[CONSUMERS]!;
    for (let round = 0; round < ROUNDS; round++) {
      const g = grant(100);
      await revoker.put(g);
      const consumes: Promise<ConsumeOutcome>[] = [];
      // The revoke starts after a varying number of consumes, so it lands at different points of theirs.
      const revokeAfter = round % (CONSUMERS + 1);
      let afterRevoke: TokenState | undefined;
      let revoke: Promise<void> = Promise.resolve();
      for (let i = 0; i < CONSUMERS; i++) {
        if (i === revokeAfter) revoke = revokeAndRead();
        consumes.push(stores[i]!.consume(g.hash, NOW));
      }
      if (revokeAfter === CONSUMERS) revoke = revokeAndRead();
      await revoke;
      // Started after the revoke returned: refused.
      expect(await stores[0]!.consume(g.hash, NOW), `round ${round}`).toEqual({ ok: false, reason: 'revoked' });
      const outcomes = await Promise.all(consumes);
      const ok = outcomes.filter((o) => o.ok).length;
      for (const o of outcomes) if (!o.ok) expect(o.reason, `round ${round}`).toBe('revoked');
      // Every ok took its use before the revoke returned: the read made right after it counted that use.
      expect(ok, `round ${round}: ok answers vs uses seen right after the revoke`).toBeLessThanOrEqual(100 - afterRevoke!.usesLeft);
      // At rest: exactly the ok answers took a use.
      expect((await revoker.get(g.hash))!.usesLeft, `round ${round}`).toBe(100 - ok);

      async function revokeAndRead(): Promise<void> {
        expect(await revoker.revoke(g.hash, new Date(NOW * 1000))).toBe(true);
        afterRevoke = await revoker.get(g.hash);
      }
    }
  });
});

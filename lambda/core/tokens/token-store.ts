import type { TokenGrant, TokenState } from './token-grant.js';

/** Why a use could not be taken. */
export type ConsumeRefusal = 'unknown' | 'expired' | 'used-up' | 'revoked';

export type ConsumeOutcome = { readonly ok: true; readonly usesLeft: number } | { readonly ok: false; readonly reason: ConsumeRefusal };

/**
 * Where token grants live. Adapters: DynamoDB (conditional update), a directory on disk (exclusive file
 * creation), memory (tests, benchmarks). `consume` is the one operation that must be atomic: when a token
 * with one use left is consumed by many callers at once, exactly one gets `ok`. A store throws (any error)
 * when it cannot answer; the verifier then refuses or answers 503, never yes.
 */
export interface TokenStore {
  get(hash: string): Promise<TokenState | undefined>;
  /** Takes one use if the token exists, is not revoked, not expired at `nowSeconds`, and has a use left. */
  consume(hash: string, nowSeconds: number): Promise<ConsumeOutcome>;
  /** Stores a new grant with all its uses left; throws if the hash exists. */
  put(grant: TokenGrant): Promise<void>;
  /** Marks a grant revoked; false when there is no such grant. */
  revoke(hash: string, at: Date): Promise<boolean>;
  list(): AsyncIterable<TokenState>;
  close?(): Promise<void> | void;
}

/** Refusal of a state as read (the store's atomic consume decides races; this gives the message). */
export function stateRefusal(state: TokenState | undefined, nowSeconds: number): ConsumeRefusal | undefined {
  if (!state) return 'unknown';
  if (state.revokedAt !== undefined) return 'revoked';
  if (nowSeconds >= state.expiresAt) return 'expired';
  if (state.usesLeft <= 0) return 'used-up';
  return undefined;
}

/** In memory: for tests and benchmarks. JavaScript's single thread makes consume atomic. */
export class MemoryTokenStore implements TokenStore {
  private readonly states = new Map<string, TokenState>();

  async get(hash: string): Promise<TokenState | undefined> {
    return this.states.get(hash);
  }

  async consume(hash: string, nowSeconds: number): Promise<ConsumeOutcome> {
    const state = this.states.get(hash);
    const refusal = stateRefusal(state, nowSeconds);
    if (refusal) return { ok: false, reason: refusal };
    const usesLeft = state!.usesLeft - 1;
    this.states.set(hash, { ...state!, usesLeft });
    return { ok: true, usesLeft };
  }

  async put(grant: TokenGrant): Promise<void> {
    if (this.states.has(grant.hash)) throw new Error('a token with this hash already exists');
    this.states.set(grant.hash, { ...grant, usesLeft: grant.maxUses });
  }

  async revoke(hash: string, at: Date): Promise<boolean> {
    const state = this.states.get(hash);
    if (!state) return false;
    if (state.revokedAt === undefined) this.states.set(hash, { ...state, revokedAt: at.toISOString() });
    return true;
  }

  async *list(): AsyncIterable<TokenState> {
    yield* this.states.values();
  }
}

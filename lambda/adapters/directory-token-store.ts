import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../core/config-errors.js';
import type { Log } from '../core/log.js';
import { isTokenHash } from '../core/tokens/token.js';
import { parseTokenState, type TokenGrant, type TokenState } from '../core/tokens/token-grant.js';
import { stateRefusal, type ConsumeOutcome, type TokenStore } from '../core/tokens/token-store.js';

const GRANT_FILE = 'grant.json';
const REVOKED_FILE = 'revoked';
const USE_FILE = /^use-(\d+)$/;

/**
 * Tokens in a directory, for hosts without AWS: one folder per token hash holding `grant.json` (the grant as JSON, groups included), one
 * empty `use-N` file per use taken, and `revoked` once revoked. A use is taken by creating the next
 * `use-N` with O_CREAT|O_EXCL, which the operating system makes atomic: however many processes
 * (`serve`, a second `serve`, a restarted one) race for the last use, exactly one creates the file.
 * A grant appears by renaming a complete temporary folder into place, so a reader never sees half of one.
 * Taking a use costs two small reads, one file creation and one existence check, whatever the number of
 * uses already taken.
 *
 * Revoking creates `revoked` (O_EXCL too) and then returns; consume checks for it again after creating its
 * use file, and if it is there removes that file and answers revoked. Either the check sees the marker, or
 * the marker came after the check, so after the use file: a consume that answers ok took its use before
 * the revoke returned (a read after the revoke counts it), and none that starts later can.
 */
export class DirectoryTokenStore implements TokenStore {
  /** `create: false` (listing, revoking) refuses a folder that does not exist rather than making it. */
  constructor(
    readonly dir: string,
    private readonly log?: Log,
    options: { readonly create?: boolean } = {},
  ) {
    try {
      if (options.create ?? true) mkdirSync(dir, { recursive: true, mode: 0o700 });
      else if (!statSync(dir).isDirectory()) throw Object.assign(new Error(), { code: 'ENOTDIR' });
    } catch (error) {
      throw new ConfigError(`tokens directory '${dir}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }

  async get(hash: string): Promise<TokenState | undefined> {
    if (!isTokenHash(hash)) return undefined;
    const folder = join(this.dir, hash);
    let text: string;
    try {
      text = await readFile(join(folder, GRANT_FILE), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.log?.warn('malformed token grant skipped', { tokenDir: hash.slice(0, 12), reason: 'not valid JSON' });
      return undefined;
    }
    const entries = await readdir(folder);
    const used = entries.filter((name) => USE_FILE.test(name)).length;
    const revokedAt = entries.includes(REVOKED_FILE) ? await readRevoked(join(folder, REVOKED_FILE)) : undefined;
    const grant = raw as Record<string, unknown>;
    const maxUses = typeof grant.maxUses === 'number' ? grant.maxUses : 0;
    const parsed = parseTokenState({ ...grant, hash, usesLeft: Math.max(0, maxUses - used), revokedAt });
    if (!parsed.ok) {
      this.log?.warn('malformed token grant skipped', { tokenDir: hash.slice(0, 12), reason: parsed.reason });
      return undefined;
    }
    return parsed.state;
  }

  async consume(hash: string, nowSeconds: number): Promise<ConsumeOutcome> {
    const state = await this.get(hash);
    const refusal = stateRefusal(state, nowSeconds);
    if (refusal) return { ok: false, reason: refusal };
    // Use files always form a prefix use-1…use-k (each taker creates the lowest free number at or above
    // what it saw), so start after the count just read; a racer that got there first only moves us up.
    // (A use given back below can leave a gap, but only in a revoked token, which takes no use again.)
    for (let n = state!.maxUses - state!.usesLeft + 1; n <= state!.maxUses; n++) {
      const useFile = join(this.dir, hash, `use-${n}`);
      try {
        const handle = await open(useFile, 'wx', 0o600);
        await handle.close();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
        // The folder vanished under us (pruned or deleted by hand): the token is gone.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, reason: 'unknown' };
        throw error;
      }
      // Revoked since the read above (a revoke that returned meanwhile): give the use back and refuse.
      if (await exists(join(this.dir, hash, REVOKED_FILE))) {
        await rm(useFile, { force: true }).catch((error: Error) =>
          // Left behind, it only lowers the count of a token that can never verify again.
          this.log?.warn('could not give back a use of a revoked token', { tokenDir: hash.slice(0, 12), cause: error.message }),
        );
        return { ok: false, reason: 'revoked' };
      }
      return { ok: true, usesLeft: state!.maxUses - n };
    }
    return { ok: false, reason: 'used-up' };
  }

  async put(grant: TokenGrant): Promise<void> {
    const temp = join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    await mkdir(temp, { mode: 0o700 });
    try {
      const { hash: _hash, ...content } = grant;
      await writeFile(join(temp, GRANT_FILE), `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      // rename(2) onto an existing non-empty folder fails: a hash is never overwritten.
      await rename(temp, join(this.dir, grant.hash));
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
  }

  async revoke(hash: string, at: Date): Promise<boolean> {
    if (!(await this.get(hash))) return false;
    try {
      await writeFile(join(this.dir, hash, REVOKED_FILE), at.toISOString(), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    return true;
  }

  async *list(): AsyncIterable<TokenState> {
    for (const name of (await readdir(this.dir)).sort()) {
      if (!isTokenHash(name)) continue;
      const state = await this.get(name);
      if (state) yield state;
    }
  }

  /** Removes grants that expired more than `graceSeconds` ago; returns how many. */
  async prune(nowSeconds: number, graceSeconds = 86400): Promise<number> {
    let removed = 0;
    for await (const state of this.list()) {
      if (state.expiresAt + graceSeconds <= nowSeconds) {
        await rm(join(this.dir, state.hash), { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function readRevoked(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim() || new Date(0).toISOString();
  } catch {
    return new Date(0).toISOString();
  }
}

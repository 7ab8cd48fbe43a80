import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../core/config-errors.js';
import {
  ConcurrentChangeError,
  StoreError,
  sameItem,
  type ConditionalPut,
  type Expectation,
  type PutManyResult,
  type SessionAdminStore,
  type StoredItem,
} from '../core/session-admin.js';
import { Attr, type RawItem } from '../core/session-record.js';
import { parseSessionsFile } from './file-session-store.js';

/**
 * A sessions file (the `serve --sessions` format) as the `sessions` command edits it. Every write replaces
 * the whole file atomically (temp file in the same directory, fsync, rename, fsync of the directory), so a
 * `serve` polling the file sees the old content or the new, never half of either. The file's order is
 * kept, new items go at the end, and the text is 2-space JSON.
 *
 * A change made by someone else between this command's read and its rename is detected (the file's
 * identity, size and mtime are compared just before the rename) and the write is abandoned.
 */

interface Snapshot {
  readonly items: RawItem[];
  /** undefined: the file does not exist yet. */
  readonly stats: Stats | undefined;
}

export class FileSessionAdminStore implements SessionAdminStore {
  readonly description: string;
  private readonly path: string;

  /** `missingIsEmpty`: a file that does not exist yet reads as empty (put and import create it). */
  constructor(
    file: string,
    private readonly options: { readonly missingIsEmpty?: boolean } = {},
  ) {
    this.description = `sessions file '${file}'`;
    // Write through a symlink to its target, so the link stays a link.
    let path = file;
    try {
      path = realpathSync(file);
    } catch {
      // not there yet: created by the first write
    }
    this.path = path;
  }

  private read(): Snapshot {
    let stats: Stats | undefined;
    let text: string;
    try {
      stats = statSync(this.path);
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && this.options.missingIsEmpty) return { items: [], stats: undefined };
      throw new StoreError(`${this.description}: cannot read it (${code ?? (error as Error).message})`);
    }
    try {
      return { items: [...parseSessionsFile(text, this.path).values()], stats };
    } catch (error) {
      if (error instanceof ConfigError) throw new StoreError(`${this.description}: ${error.message.replace(`${this.path}: `, '')}`);
      throw error;
    }
  }

  async list(onProgress?: (p: { items: number; pages: number }) => void): Promise<StoredItem[]> {
    const { items } = this.read();
    onProgress?.({ items: items.length, pages: 1 });
    return items.map((item) => ({ item }));
  }

  async get(sessionId: string): Promise<StoredItem | undefined> {
    const item = this.read().items.find((i) => i[Attr.SessionId] === sessionId);
    return item ? { item } : undefined;
  }

  async putIf(put: ConditionalPut): Promise<void> {
    await this.putManyIf([put]);
  }

  async putManyIf(puts: readonly ConditionalPut[], onProgress?: (done: number) => void): Promise<PutManyResult> {
    if (puts.length === 0) return { written: 0, failed: [] };
    const snapshot = this.read();
    const items = [...snapshot.items];
    const indexOf = new Map(items.map((item, index) => [item[Attr.SessionId] as string, index]));
    for (const { item, expected } of puts) {
      const sessionId = item[Attr.SessionId] as string;
      const index = indexOf.get(sessionId);
      if (!holds(expected, index === undefined ? undefined : items[index])) {
        throw new ConcurrentChangeError(sessionId, this.description);
      }
      if (index === undefined) {
        indexOf.set(sessionId, items.length);
        items.push(item);
      } else {
        items[index] = item;
      }
    }
    this.write(items, snapshot.stats);
    onProgress?.(puts.length);
    return { written: puts.length, failed: [] };
  }

  async updateIf(expected: StoredItem, set: RawItem): Promise<RawItem> {
    const sessionId = expected.item[Attr.SessionId] as string;
    const snapshot = this.read();
    const index = snapshot.items.findIndex((i) => i[Attr.SessionId] === sessionId);
    if (index < 0 || !sameItem(snapshot.items[index]!, expected.item)) throw new ConcurrentChangeError(sessionId, this.description);
    const items = [...snapshot.items];
    const updated = { ...items[index]!, ...set };
    items[index] = updated;
    this.write(items, snapshot.stats);
    return updated;
  }

  async deleteIf(expected: StoredItem): Promise<void> {
    const sessionId = expected.item[Attr.SessionId] as string;
    const snapshot = this.read();
    const index = snapshot.items.findIndex((i) => i[Attr.SessionId] === sessionId);
    if (index < 0 || !sameItem(snapshot.items[index]!, expected.item)) throw new ConcurrentChangeError(sessionId, this.description);
    this.write(snapshot.items.filter((_, i) => i !== index), snapshot.stats);
  }

  close(): void {}

  private write(items: readonly RawItem[], readStats: Stats | undefined): void {
    writeFileAtomic(this.path, `${JSON.stringify(items, null, 2)}\n`, {
      mode: readStats ? readStats.mode & 0o7777 : undefined,
      unchangedSince: readStats ?? 'absent',
      description: this.description,
    });
  }
}

function holds(expected: Expectation, current: RawItem | undefined): boolean {
  if (expected.kind === 'absent') return current === undefined;
  return current !== undefined && sameItem(current, expected.current.item);
}

function sameFile(a: Stats | undefined, b: Stats): boolean {
  return a !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

export interface AtomicWriteOptions {
  /** Permission bits for the new file (default: 0o644 less the umask). */
  readonly mode?: number;
  /** Refuse (ConcurrentChangeError) unless the file is still as stat'ed here ('absent': still missing). */
  readonly unchangedSince?: Stats | 'absent';
  readonly description?: string;
}

/** Writes `text` to `path` so readers see the old file or the new one, never a mix. */
export function writeFileAtomic(path: string, text: string, options: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const where = options.description ?? `'${path}'`;
  let fd: number;
  try {
    fd = openSync(temp, 'wx', options.mode ?? 0o644);
  } catch (error) {
    throw new StoreError(`${where}: cannot write in ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    try {
      if (options.mode !== undefined) fchmodSync(fd, options.mode);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const expected = options.unchangedSince;
    if (expected !== undefined) {
      const now = statSync(path, { throwIfNoEntry: false });
      if (expected === 'absent' ? now !== undefined : !sameFile(now, expected)) throw new ConcurrentChangeError(undefined, where);
    }
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // already renamed or gone
    }
    if (error instanceof ConcurrentChangeError) throw error;
    throw new StoreError(`${where}: cannot write it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  syncDirectory(dir);
}

/** Makes the rename itself durable; some platforms cannot fsync a directory, which is not worth failing for. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

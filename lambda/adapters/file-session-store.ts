import { readFileSync, statSync, type Stats } from 'node:fs';
import { ConfigError } from '../core/config-errors.js';
import type { Log } from '../core/log.js';
import type { RawItem } from '../core/session-record.js';
import type { SessionCatalog } from '../core/portal/session-catalog.js';
import type { SessionStore } from '../core/session-store.js';

/**
 * Parses a sessions file: a JSON array of items with the same attribute names as the table.
 * Throws a ConfigError that names the file and the problem. Items are validated per lookup by the
 * resolver, like table items; here only the shape needed to index them is checked.
 */
export function parseSessionsFile(text: string, file: string): Map<string, RawItem> {
  let data: unknown;
  try {
    // Windows editors often save UTF-8 with a byte-order mark, which JSON.parse rejects.
    data = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(data)) throw new ConfigError(`${file}: expected a JSON array of session items`);
  const items = new Map<string, RawItem>();
  data.forEach((item: unknown, index) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new ConfigError(`${file}: item ${index} is not an object`);
    }
    const id = (item as RawItem).SessionId;
    if (typeof id !== 'string' || id === '') {
      throw new ConfigError(`${file}: item ${index} has no SessionId string`);
    }
    if (items.has(id)) throw new ConfigError(`${file}: SessionId '${id}' appears more than once`);
    items.set(id, item as RawItem);
  });
  return items;
}

function readSessionsFile(file: string): Map<string, RawItem> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read sessions file (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  return parseSessionsFile(text, file);
}

export interface FileSessionStoreOptions {
  readonly log: Log;
  /** How often the file's mtime/size is checked, in ms. */
  readonly pollIntervalMs?: number;
}

/**
 * Sessions from a JSON file, for gateway hosts that want no AWS at all. The file is polled and
 * reloaded when it changes; a broken edit keeps the last good content (and says so in the log), so a
 * half-saved file never takes sessions away.
 */
export class FileSessionStore implements SessionStore, SessionCatalog {
  private items: Map<string, RawItem>;
  /** Stats of the file as last loaded (undefined: it did not exist). */
  private loaded: Stats | undefined;
  private readonly timer: NodeJS.Timeout;

  /** Loads the file now; throws a ConfigError if it is missing or malformed. */
  constructor(
    readonly file: string,
    private readonly options: FileSessionStoreOptions,
  ) {
    // Stat before reading and compare every poll with what was loaded (not with the previous poll, as
    // fs.watchFile does): fs.watchFile takes its first stat asynchronously, so an edit saved right after
    // start-up became its baseline and was never loaded.
    this.loaded = statOrUndefined(file);
    this.items = readSessionsFile(file);
    this.timer = setInterval(() => this.poll(), options.pollIntervalMs ?? 500);
    this.timer.unref();
  }

  private poll(): void {
    const current = statOrUndefined(this.file);
    if (sameFile(current, this.loaded)) return;
    this.loaded = current;
    this.reload();
  }

  get size(): number {
    return this.items.size;
  }

  reload(): boolean {
    try {
      this.items = readSessionsFile(this.file);
      this.options.log.info('sessions file reloaded', { file: this.file, sessions: this.items.size });
      return true;
    } catch (error) {
      this.options.log.warn('sessions file not reloaded; keeping the previous sessions', {
        file: this.file,
        reason: (error as Error).message,
      });
      return false;
    }
  }

  async get(sessionId: string): Promise<RawItem | undefined> {
    return this.items.get(sessionId);
  }

  /** Every item of the file as last loaded (the portal's list; see LeasedSessionStore for leases). */
  async list(): Promise<RawItem[]> {
    return [...this.items.values()];
  }

  close(): void {
    clearInterval(this.timer);
  }
}

function statOrUndefined(file: string): Stats | undefined {
  try {
    return statSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function sameFile(a: Stats | undefined, b: Stats | undefined): boolean {
  if (!a || !b) return a === b;
  return a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;
}

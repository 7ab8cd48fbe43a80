import type { Log } from '../core/log.js';

/**
 * A lean structured logger for the long-running local commands (serve, proxy): one JSON object per
 * line with the same top-level keys as Powertools' Logger (level, message, timestamp, service, then the
 * extra keys), at a small fraction of its cost per line. At tens of thousands of requests a second,
 * Powertools' per-line work (context merging, formatter classes, level lookups) cost more than the
 * answer itself. (The Lambda entry has its own lean logger with the invocation's fields: lambda-log.ts.)
 */
const LEVELS = { TRACE: 6, DEBUG: 8, INFO: 12, WARN: 16, ERROR: 20, CRITICAL: 24, SILENT: 28 } as const;
type LevelName = keyof typeof LEVELS;

export interface JsonLineLogOptions {
  readonly service: string;
  /** DEBUG, INFO, WARN, ERROR or SILENT; default from POWERTOOLS_LOG_LEVEL or LOG_LEVEL, else INFO. */
  readonly level?: string;
  /** Where each line goes (with its newline). Default: process.stdout. */
  readonly write?: (text: string) => void;
}

export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.POWERTOOLS_LOG_LEVEL ?? env.LOG_LEVEL;
}

function threshold(level: string | undefined): number {
  const name = (level ?? 'INFO').toUpperCase();
  return name in LEVELS ? LEVELS[name as LevelName] : LEVELS.INFO;
}

export class JsonLineLog implements Log {
  private readonly minimum: number;
  private readonly service: string;
  private readonly write: (text: string) => void;

  constructor(options: JsonLineLogOptions) {
    this.minimum = threshold(options.level ?? levelFromEnv());
    this.service = options.service;
    this.write = options.write ?? ((text) => process.stdout.write(text));
  }

  debug(message: string, ...extra: Record<string, unknown>[]): void {
    if (this.minimum <= LEVELS.DEBUG) this.emit('DEBUG', message, extra);
  }

  info(message: string, ...extra: Record<string, unknown>[]): void {
    if (this.minimum <= LEVELS.INFO) this.emit('INFO', message, extra);
  }

  warn(message: string, ...extra: Record<string, unknown>[]): void {
    if (this.minimum <= LEVELS.WARN) this.emit('WARN', message, extra);
  }

  error(message: string, ...extra: Record<string, unknown>[]): void {
    if (this.minimum <= LEVELS.ERROR) this.emit('ERROR', message, extra);
  }

  private emit(level: string, message: string, extra: Record<string, unknown>[]): void {
    const record: Record<string, unknown> = {
      level,
      message,
      timestamp: new Date().toISOString(),
      service: this.service,
    };
    for (const fields of extra) Object.assign(record, fields);
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      // A cyclic or BigInt field must not take the request down with it.
      line = JSON.stringify({ level, message, timestamp: record.timestamp, service: this.service, logError: 'unserializable fields' });
    }
    this.write(`${line}\n`);
  }
}

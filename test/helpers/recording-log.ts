import type { Log } from '../../lambda/core/log';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEntry {
  readonly level: LogLevel;
  readonly message: string;
  /** The extra objects of the call, merged (the way Powertools' Logger merges them). */
  readonly fields: Record<string, unknown>;
}

/** A Log that remembers every call, so tests can assert on exactly what was logged. */
export class RecordingLog implements Log {
  readonly entries: LogEntry[] = [];

  debug(message: string, ...extra: Record<string, unknown>[]): void {
    this.record('debug', message, extra);
  }

  info(message: string, ...extra: Record<string, unknown>[]): void {
    this.record('info', message, extra);
  }

  warn(message: string, ...extra: Record<string, unknown>[]): void {
    this.record('warn', message, extra);
  }

  error(message: string, ...extra: Record<string, unknown>[]): void {
    this.record('error', message, extra);
  }

  /** Entries with this message (and level, when given). */
  find(message: string, level?: LogLevel): LogEntry[] {
    return this.entries.filter((e) => e.message === message && (level === undefined || e.level === level));
  }

  atLevel(level: LogLevel): LogEntry[] {
    return this.entries.filter((e) => e.level === level);
  }

  clear(): void {
    this.entries.length = 0;
  }

  private record(level: LogLevel, message: string, extra: Record<string, unknown>[]): void {
    this.entries.push({ level, message, fields: Object.assign({}, ...extra) });
  }
}

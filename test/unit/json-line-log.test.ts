import { describe, expect, it } from 'vitest';
import { JsonLineLog, levelFromEnv } from '../../lambda/adapters/json-line-log';

function capture(level?: string) {
  const lines: string[] = [];
  const log = new JsonLineLog({ service: 'svc', level, write: (text) => lines.push(text) });
  return { log, lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('JsonLineLog', () => {
  it('writes one JSON object per line with the Powertools top-level keys, then the extra fields', () => {
    // GIVEN a log at INFO
    const { log, lines, records } = capture('INFO');
    // WHEN a request line is logged
    log.info('request', { requestId: 'r-1', status: 200 }, { ms: 1.5 });
    // THEN it is one newline-terminated JSON object, keys in Powertools' order, extras merged
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    expect(lines[0]!.slice(0, -1)).not.toContain('\n');
    const [record] = records();
    expect(Object.keys(record!)).toEqual(['level', 'message', 'timestamp', 'service', 'requestId', 'status', 'ms']);
    expect(record).toMatchObject({ level: 'INFO', message: 'request', service: 'svc', requestId: 'r-1', status: 200, ms: 1.5 });
    expect(new Date(record!.timestamp as string).toISOString()).toBe(record!.timestamp);
  });

  it.each([
    ['DEBUG', ['DEBUG', 'INFO', 'WARN', 'ERROR']],
    ['INFO', ['INFO', 'WARN', 'ERROR']],
    ['warn', ['WARN', 'ERROR']],
    ['ERROR', ['ERROR']],
    ['SILENT', []],
    ['nonsense', ['INFO', 'WARN', 'ERROR']],
  ])('at level %s writes %j', (level, expected) => {
    const { log, records } = capture(level);
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(records().map((r) => r.level)).toEqual(expected);
  });

  it('never throws on fields JSON cannot serialise; the line still says what happened', () => {
    const { log, records } = capture('INFO');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => log.info('request', { cyclic, big: 1n })).not.toThrow();
    expect(records()).toEqual([expect.objectContaining({ level: 'INFO', message: 'request', logError: 'unserializable fields' })]);
  });

  it('takes its default level from POWERTOOLS_LOG_LEVEL, then LOG_LEVEL', () => {
    expect(levelFromEnv({ POWERTOOLS_LOG_LEVEL: 'WARN', LOG_LEVEL: 'DEBUG' })).toBe('WARN');
    expect(levelFromEnv({ LOG_LEVEL: 'DEBUG' })).toBe('DEBUG');
    expect(levelFromEnv({})).toBeUndefined();
  });
});

import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileSessionStore, parseSessionsFile } from '../../lambda/adapters/file-session-store';
import { ConfigError } from '../../lambda/core/config-errors';
import { parseResolveQuery, SessionResolver } from '../../lambda/core/resolve';
import { RecordingLog } from '../helpers/recording-log';

const POLL_MS = 20;
const WAIT = { timeout: 5000, interval: 10 };

let dir: string;
const stores: FileSessionStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dcv-file-store-'));
});

afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

function writeJson(file: string, items: unknown): void {
  writeFileSync(file, JSON.stringify(items, null, 2));
}

function open(file: string, log = new RecordingLog()): { store: FileSessionStore; log: RecordingLog } {
  const store = new FileSessionStore(file, { log, pollIntervalMs: POLL_MS });
  stores.push(store);
  return { store, log };
}

const CONSOLE = { SessionId: 'console', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443, QuicPort: 8443, WebUrlPath: '/' };
const DESKTOP = { SessionId: 'desktop', DcvServerEndpoint: '10.0.1.16' };

describe('parseSessionsFile', () => {
  it('indexes a JSON array of items by SessionId, items kept as written', () => {
    const items = parseSessionsFile(JSON.stringify([CONSOLE, DESKTOP, { SessionId: 'odd', HttpPort: 'not validated here' }]), 'f.json');
    expect([...items.keys()]).toEqual(['console', 'desktop', 'odd']);
    expect(items.get('console')).toEqual(CONSOLE);
    expect(items.get('odd')).toEqual({ SessionId: 'odd', HttpPort: 'not validated here' });
  });

  it('accepts a file saved with a UTF-8 byte-order mark (Windows editors)', () => {
    const items = parseSessionsFile(`\ufeff${JSON.stringify([CONSOLE])}`, 'f.json');
    expect(items.get('console')).toEqual(CONSOLE);
  });

  it('accepts an empty array', () => {
    expect(parseSessionsFile('[]', 'f.json').size).toBe(0);
  });

  it.each([
    ['not JSON', '{ "SessionId": ', /^sessions\.json: not valid JSON \(.+\)$/],
    ['an empty file', '', /^sessions\.json: not valid JSON \(.+\)$/],
    ['a trailing comma', '[{"SessionId":"a"},]', /^sessions\.json: not valid JSON \(.+\)$/],
    ['an object instead of an array', JSON.stringify(CONSOLE), 'sessions.json: expected a JSON array of session items'],
    ['a string', '"console"', 'sessions.json: expected a JSON array of session items'],
    ['null', 'null', 'sessions.json: expected a JSON array of session items'],
    ['a number item', '[1]', 'sessions.json: item 0 is not an object'],
    ['a null item', `[${JSON.stringify(CONSOLE)}, null]`, 'sessions.json: item 1 is not an object'],
    ['an array item', '[[]]', 'sessions.json: item 0 is not an object'],
    ['an item without SessionId', '[{"DcvServerEndpoint":"10.0.0.1"}]', 'sessions.json: item 0 has no SessionId string'],
    ['an empty SessionId', '[{"SessionId":""}]', 'sessions.json: item 0 has no SessionId string'],
    ['a numeric SessionId', '[{"SessionId":42}]', 'sessions.json: item 0 has no SessionId string'],
    ['a duplicate SessionId', JSON.stringify([CONSOLE, DESKTOP, CONSOLE]), "sessions.json: SessionId 'console' appears more than once"],
  ])('%s -> ConfigError', (_name, text, message) => {
    let error: unknown;
    try {
      parseSessionsFile(text, 'sessions.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    if (typeof message === 'string') expect((error as Error).message).toBe(message);
    else expect((error as Error).message).toMatch(message);
  });
});

describe('FileSessionStore: loading', () => {
  it('serves the items of the file', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE, DESKTOP]);
    const { store } = open(file);
    expect(store.size).toBe(2);
    expect(await store.get('console')).toEqual(CONSOLE);
    expect(await store.get('desktop')).toEqual(DESKTOP);
    expect(await store.get('Console')).toBeUndefined();
    expect(await store.get('ghost')).toBeUndefined();
  });

  it.each([
    ['a missing file', (d: string) => join(d, 'missing.json'), /missing\.json: cannot read sessions file \(ENOENT\)$/],
    ['a directory', (d: string) => {
      mkdirSync(join(d, 'adir'));
      return join(d, 'adir');
    }, /adir: cannot read sessions file \(EISDIR\)$/],
    ['invalid JSON', (d: string) => {
      writeFileSync(join(d, 'bad.json'), '[{');
      return join(d, 'bad.json');
    }, /bad\.json: not valid JSON/],
    ['a duplicate SessionId', (d: string) => {
      writeJson(join(d, 'dup.json'), [DESKTOP, DESKTOP]);
      return join(d, 'dup.json');
    }, /dup\.json: SessionId 'desktop' appears more than once$/],
  ])('refuses %s with a ConfigError naming the file', (_name, make, message) => {
    const file = make(dir);
    let error: unknown;
    try {
      open(file);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message.startsWith(file)).toBe(true);
  });

  it('the shipped sessions.example.json loads and every item validates', async () => {
    const file = new URL('../../sessions.example.json', import.meta.url).pathname;
    const log = new RecordingLog();
    const { store } = open(file, log);
    expect(store.size).toBe(2);
    const resolver = new SessionResolver({ store, log });
    const ask = (q: string) => resolver.resolve(parseResolveQuery(new URLSearchParams(q)));
    await expect(ask('sessionId=console&transport=HTTP')).resolves.toEqual({
      SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.150.248.180', Port: 8443, WebUrlPath: '/',
    });
    await expect(ask('sessionId=desktop&transport=HTTP')).resolves.toMatchObject({ SessionId: 'desktop', Port: 8443 });
    await expect(ask('sessionId=desktop&transport=QUIC')).rejects.toThrow("session 'desktop' does not offer QUIC");
    expect(log.atLevel('warn')).toEqual([]);
  });

  it('leaves item validation to the resolver: a malformed item is absent (and logged), the rest serve', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE, { SessionId: 'broken', DcvServerEndpoint: '10.0.0.9', WebUrlPath: 'dcv' }]);
    const { store, log } = open(file);
    const resolver = new SessionResolver({ store, log });
    await expect(resolver.resolve({ sessionId: 'broken', transport: 'HTTP' })).rejects.toThrow("no session 'broken'");
    await expect(resolver.resolve({ sessionId: 'console', transport: 'HTTP' })).resolves.toMatchObject({ Port: 8443 });
    expect(log.find('malformed session item skipped').map((e) => e.fields)).toEqual([
      { sessionId: 'broken', reason: "WebUrlPath must start with '/'" },
    ]);
  });
});

describe('FileSessionStore: reload when the file changes', () => {
  it('picks up an edit saved right after start-up (regression: fs.watchFile took it as its baseline)', async () => {
    const files = [1, 2, 3, 4, 5].map((n) => join(dir, `s${n}.json`));
    for (const file of files) writeJson(file, [CONSOLE]);
    const opened = files.map((file) => {
      const { store } = open(file);
      writeJson(file, [CONSOLE, DESKTOP]);
      return store;
    });
    for (const store of opened) await vi.waitFor(async () => expect(await store.get('desktop')).toEqual(DESKTOP), WAIT);
  });

  it('picks up an edit in place', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE]);
    const { store, log } = open(file);
    expect(await store.get('desktop')).toBeUndefined();

    writeJson(file, [CONSOLE, DESKTOP]);
    await vi.waitFor(async () => expect(await store.get('desktop')).toEqual(DESKTOP), WAIT);
    expect(store.size).toBe(2);
    expect(log.find('sessions file reloaded', 'info').at(-1)?.fields).toEqual({ file, sessions: 2 });
  });

  it('picks up a removal and a changed attribute', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE, DESKTOP]);
    const { store } = open(file);
    writeJson(file, [{ ...CONSOLE, DcvServerEndpoint: '10.0.1.99' }]);
    await vi.waitFor(async () => expect(await store.get('desktop')).toBeUndefined(), WAIT);
    expect(await store.get('console')).toMatchObject({ DcvServerEndpoint: '10.0.1.99' });
  });

  it('picks up an editor-style atomic replace (write a temp file, rename over)', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE]);
    const { store } = open(file);
    const temp = join(dir, '.sessions.json.swp');
    writeJson(temp, [DESKTOP]);
    renameSync(temp, file);
    await vi.waitFor(async () => expect(await store.get('desktop')).toEqual(DESKTOP), WAIT);
    expect(await store.get('console')).toBeUndefined();
  });

  it.each([
    ['invalid JSON (a half-saved file)', '[{"SessionId":"desktop","DcvServer', /not valid JSON/],
    ['an object instead of an array', JSON.stringify(DESKTOP), /expected a JSON array of session items$/],
    ['a duplicate SessionId', JSON.stringify([DESKTOP, DESKTOP]), /SessionId 'desktop' appears more than once$/],
    ['an empty file', '', /not valid JSON/],
  ])('a broken edit (%s) keeps the previous sessions and says so', async (_name, text, reason) => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE]);
    const { store, log } = open(file);

    writeFileSync(file, text);
    // A poll may also catch the file truncated mid-write; wait for the warning about this content.
    const warnings = () => log.find('sessions file not reloaded; keeping the previous sessions', 'warn');
    await vi.waitFor(() => expect(warnings().some((w) => reason.test(String(w.fields.reason)))).toBe(true), WAIT);
    expect(warnings().every((w) => w.fields.file === file)).toBe(true);
    expect(log.find('sessions file reloaded')).toEqual([]);
    expect(await store.get('console')).toEqual(CONSOLE);
    expect(store.size).toBe(1);

    // Fixing the file brings the new content in.
    writeJson(file, [CONSOLE, DESKTOP]);
    await vi.waitFor(async () => expect(await store.get('desktop')).toEqual(DESKTOP), WAIT);
  });

  it('a deleted file keeps the previous sessions; recreating it reloads', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE]);
    const { store, log } = open(file);
    unlinkSync(file);
    await vi.waitFor(() => expect(log.find('sessions file not reloaded; keeping the previous sessions')).toHaveLength(1), WAIT);
    expect(log.find('sessions file not reloaded; keeping the previous sessions')[0]!.fields.reason).toMatch(/ENOENT/);
    expect(await store.get('console')).toEqual(CONSOLE);

    writeJson(file, [DESKTOP]);
    await vi.waitFor(async () => expect(await store.get('desktop')).toEqual(DESKTOP), WAIT);
  });

  it('reload() reports whether the new content was taken', () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE]);
    const { store } = open(file);
    writeFileSync(file, 'nope');
    expect(store.reload()).toBe(false);
    expect(store.size).toBe(1);
    writeJson(file, [CONSOLE, DESKTOP]);
    expect(store.reload()).toBe(true);
    expect(store.size).toBe(2);
  });

  it('stops watching after close()', async () => {
    const file = join(dir, 'sessions.json');
    writeJson(file, [CONSOLE]);
    const { store, log } = open(file);
    store.close();
    writeJson(file, [CONSOLE, DESKTOP]);
    // Many poll intervals pass with no reload: the watcher is gone.
    await new Promise((resolve) => setTimeout(resolve, POLL_MS * 15));
    expect(log.find('sessions file reloaded')).toEqual([]);
    expect(await store.get('desktop')).toBeUndefined();
  });
});

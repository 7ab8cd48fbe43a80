import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { hostActivity, parseDcvTimestamp, parseSignals } from '../../lambda/core/power/signals';
import { described, listed, writeFakeDcvHost, type FakeDcvHost } from '../helpers/fake-dcv-host';

const SCRIPT = fileURLToPath(new URL('../../host-scripts/dcv-idle-signals.sh', import.meta.url));
const DASH = '/usr/bin/dash';
const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'dcv-signals-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const NOW = Date.parse('2026-03-02T12:00:00Z');
const STARTED = Date.parse('2026-03-02T08:00:00Z');

let hosts = 0;
/** Runs the shipped script with dash, fake `dcv` and `nvidia-smi` first on PATH (printing fixture files). */
async function signalsOf(host: FakeDcvHost): Promise<string> {
  const { bin } = writeFakeDcvHost(join(root, `host-${++hosts}`), host);
  const { stdout, stderr } = await run(DASH, [SCRIPT], { env: { PATH: `${bin}:/usr/bin:/bin` } });
  expect(stderr).toBe('');
  return stdout;
}

const activity = (text: string, extra: { lastVerifiedAt?: number } = {}) =>
  hostActivity({ output: { ok: true, text }, instanceStartedAt: STARTED, now: NOW, ...extra });

const one = (connections: number, lastDisconnection: string, created = '2026-03-02T08:01:00.000001Z'): FakeDcvHost => ({
  list: { out: listed(['console']) },
  describe: { console: { out: described('console', connections, created, lastDisconnection) } },
});

describe('the shipped script, run by dash against fake dcv and nvidia-smi', () => {
  it('is POSIX sh: dash parses it', async () => {
    await expect(run(DASH, ['-n', SCRIPT])).resolves.toMatchObject({ stderr: '' });
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('host-scripts/');
  });

  it('idle: nobody connected, never disconnected → idle since the session was created or the instance started, whichever is later', async () => {
    const out = await signalsOf(one(0, ''));
    expect(out).toBe(
      '{"v":1,"sessions":[{"id":"console","num-of-connections":0,"creation-time":"2026-03-02T08:01:00.000001Z","last-disconnection-time":""}],"gpu":null,"errors":[]}\n',
    );
    expect(activity(out)).toEqual({
      state: 'idle',
      since: Date.parse('2026-03-02T08:01:00Z'),
      idleMs: NOW - Date.parse('2026-03-02T08:01:00Z'),
      reason: "idle since 2026-03-02T08:01:00.000Z (session 'console' created)",
    });
  });

  it('connected: a client on any session → in use', async () => {
    const host: FakeDcvHost = {
      list: { out: listed(['console', 'render']) },
      describe: {
        console: { out: described('console', 0, '2026-03-02T08:01:00Z', '2026-03-02T09:00:00.5Z') },
        render: { out: described('render', 2, '2026-03-02T08:02:00Z', '') },
      },
    };
    expect(activity(await signalsOf(host))).toEqual({ state: 'in-use', reason: "2 client(s) on session 'render'" });
  });

  it('recently disconnected: idle counts from the last disconnection (microseconds read)', async () => {
    const out = await signalsOf(one(0, '2026-03-02T11:58:00.250000Z'));
    expect(activity(out)).toMatchObject({ state: 'idle', since: Date.parse('2026-03-02T11:58:00.250Z'), idleMs: 119_750 });
  });

  it('a token verified later than anything else restarts the count (a connection is starting)', async () => {
    const out = await signalsOf(one(0, '2026-03-02T10:00:00Z'));
    expect(activity(out, { lastVerifiedAt: NOW - 30_000 })).toMatchObject({ state: 'idle', idleMs: 30_000, reason: expect.stringContaining('token verified') });
  });

  it('no session at all: idle since the instance started', async () => {
    const out = await signalsOf({ list: { out: '[ ]\n' }, gpu: { out: '0\n' } });
    expect(out).toBe('{"v":1,"sessions":[],"gpu":[0],"errors":[]}\n');
    expect(activity(out)).toMatchObject({ state: 'idle', since: STARTED, reason: expect.stringContaining('instance started') });
  });

  it('GPU busy: one GPU at or over 10% keeps a host without clients in use; a quiet GPU does not', async () => {
    const busy = await signalsOf({ ...one(0, ''), gpu: { out: '0\n 85\n' } });
    expect(busy).toContain('"gpu":[0,85]');
    expect(activity(busy)).toEqual({ state: 'in-use', reason: 'GPU 1 at 85%' });
    expect(activity(await signalsOf({ ...one(0, ''), gpu: { out: '9\n' } }))).toMatchObject({ state: 'idle' });
  });

  it.each<[string, FakeDcvHost, string]>([
    ['dcv missing', {}, 'the host reported: dcv-missing'],
    ['dcv failing (dcvserver down)', { list: { out: 'Could not connect to the server\n', exit: 1 } }, 'the host reported: list-sessions-failed:exit-1'],
    ['garbage from list-sessions', { list: { out: 'Error: something else\n' } }, 'the host reported: list-sessions-unreadable'],
    ['an id that cannot be read (a quote in it)', { list: { out: '[ { "id" : "a\\"b", "owner" : "u" } ]' } }, 'the host reported: list-sessions-unreadable'],
    ['a session object without an id', { list: { out: '[ { "session" : "a" } ]' } }, 'the host reported: list-sessions-unreadable'],
    ['an id with a space', { list: { out: listed(['my desk']) } }, 'the host reported: session-id-unsupported'],
    ['describe-session failing', { list: { out: listed(['console']) }, describe: { console: { out: '', exit: 3 } } }, 'the host reported: describe-session-failed:console:exit-3'],
    ['garbage from describe-session', { list: { out: listed(['console']) }, describe: { console: { out: 'Segmentation fault\n' } } }, 'the host reported: describe-session-unreadable:console:num-of-connections'],
    [
      'a describe-session without last-disconnection-time',
      { list: { out: listed(['console']) }, describe: { console: { out: described('console', 0, '2026-03-02T08:00:00Z', '').replace(/ {2}"last-disconnection-time".*\n/, '') } } },
      'the host reported: describe-session-unreadable:console:last-disconnection-time',
    ],
    ['nvidia-smi failing', { ...one(0, ''), gpu: { out: 'NVIDIA-SMI has failed\n', exit: 9 } }, 'the host reported: nvidia-smi-failed:exit-9'],
    ['nvidia-smi without a reading', { ...one(0, ''), gpu: { out: '[N/A]\n' } }, 'the host reported: nvidia-smi-unreadable'],
  ])('%s → unknown, never stopped', async (_name, host, reason) => {
    const out = await signalsOf(host);
    expect(parseSignals(out).ok).toBe(true); // the line itself is always well-formed
    expect(activity(out)).toEqual({ state: 'unknown', reason });
  });

  it('a timestamp the script passes on but that is not a real time makes the line unreadable → unknown', async () => {
    const out = await signalsOf(one(0, '2026-02-30T10:00:00Z'));
    expect(activity(out)).toEqual({
      state: 'unknown',
      reason: "unreadable signals: sessions[0].last-disconnection-time '2026-02-30T10:00:00Z' is not a real date and time",
    });
  });
});

describe('parseSignals: strict', () => {
  const good = { v: 1, sessions: [{ id: 'c', 'num-of-connections': 0, 'creation-time': '2026-03-02T08:00:00Z', 'last-disconnection-time': '' }], gpu: null, errors: [] };
  const line = (value: unknown) => `${JSON.stringify(value)}\n`;

  it('reads the documented line', () => {
    expect(parseSignals(line(good))).toEqual({ ok: true, signals: { sessions: [{ id: 'c', connections: 0, createdAt: Date.parse('2026-03-02T08:00:00Z') }], errors: [] } });
  });

  it.each<[string, string, string]>([
    ['empty', '', 'no output'],
    ['two lines', `${JSON.stringify(good)}\n${JSON.stringify(good)}\n`, 'more than one line of output'],
    ['not JSON', 'Permission denied\n', "not JSON: 'Permission denied'"],
    ['a list', '[]\n', 'not a JSON object'],
    ['another version', line({ ...good, v: 2 }), 'version 2, expected 1'],
    ['an extra key', line({ ...good, extra: 1 }), 'the line has keys'],
    ['a missing key', line({ v: 1, sessions: [], errors: [] }), 'the line has keys'],
    ['connections as a string', line({ ...good, sessions: [{ ...good.sessions[0], 'num-of-connections': '0' }] }), 'sessions[0].num-of-connections is not a whole number ≥ 0'],
    ['negative connections', line({ ...good, sessions: [{ ...good.sessions[0], 'num-of-connections': -1 }] }), 'is not a whole number ≥ 0'],
    ['a local time', line({ ...good, sessions: [{ ...good.sessions[0], 'creation-time': '2026-03-02T08:00:00' }] }), 'is not a UTC timestamp'],
    ['an offset time', line({ ...good, sessions: [{ ...good.sessions[0], 'creation-time': '2026-03-02T08:00:00+01:00' }] }), 'is not a UTC timestamp'],
    ['a duplicate session', line({ ...good, sessions: [good.sessions[0], good.sessions[0]] }), 'a session id appears twice'],
    ['a GPU over 100%', line({ ...good, gpu: [101] }), 'gpu[0] is not a percentage 0–100'],
    ['an empty GPU list', line({ ...good, gpu: [] }), 'gpu is neither a non-empty list nor null'],
    ['errors not strings', line({ ...good, errors: [1] }), 'errors is not a list of strings'],
    ['too long', `${'x'.repeat(24_001)}`, 'at most 24000'],
  ])('%s → refused', (_name, text, reason) => {
    const parsed = parseSignals(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
    expect(hostActivity({ output: { ok: true, text }, instanceStartedAt: STARTED, now: NOW }).state).toBe('unknown');
  });

  it('parseDcvTimestamp keeps milliseconds of a microsecond time', () => {
    expect(parseDcvTimestamp('2026-03-02T16:12:58.262224Z', 't')).toBe(Date.parse('2026-03-02T16:12:58.262Z'));
    expect(parseDcvTimestamp('2026-03-02T16:12:58Z', 't')).toBe(Date.parse('2026-03-02T16:12:58Z'));
  });

  it('an SSM failure is unknown; no session and no known start is unknown; a host clock ahead counts as just now', () => {
    expect(hostActivity({ output: { ok: false, reason: 'InvalidInstanceId: not a managed node' }, now: NOW })).toEqual({
      state: 'unknown',
      reason: 'no signals: InvalidInstanceId: not a managed node',
    });
    expect(hostActivity({ output: { ok: true, text: line({ ...good, sessions: [] }) }, now: NOW }).state).toBe('unknown');
    const ahead = line({ ...good, sessions: [{ ...good.sessions[0], 'creation-time': '2026-03-02T12:05:00Z' }] });
    expect(hostActivity({ output: { ok: true, text: ahead }, now: NOW })).toMatchObject({ state: 'idle', idleMs: 0 });
  });
});

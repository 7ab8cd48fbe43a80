import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningServer } from '../../lambda/adapters/local-server';
import { parseServeArgs, startServe } from '../../lambda/cli/serve-command';

const PREFIX = 'Pr3fix-0f-the-w33k';
const TOKEN = 'tok-5ecret-XYZ';

let workDir: string;
let server: RunningServer;
let lines: string[];

async function post(path: string): Promise<number> {
  const res = await fetch(`${server.url}${path}`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  await res.text();
  return res.status;
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'dcv-serve-log-'));
  const sessions = join(workDir, 'sessions.json');
  writeFileSync(sessions, JSON.stringify([{ SessionId: 'console', DcvServerEndpoint: '10.0.1.15' }]));
  lines = [];
  // Powertools writes INFO to stdout and WARN/ERROR to stderr: capture both.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(...String(chunk).split('\n').filter((l) => l.length > 0));
      return true;
    });
  }
  server = await startServe(
    parseServeArgs(['--sessions', sessions, '--port', '0', '--path-prefix', PREFIX, '--log-level', 'DEBUG']),
  );
  const query = `sessionId=console&transport=HTTP&authToken=${TOKEN}`;
  const statuses = [
    await post(`/${PREFIX}/resolveSession?${query}`),
    await post(`/${PREFIX}/resolveSession?sessionId=ghost&transport=QUIC&authToken=${TOKEN}`),
    await post(`/resolveSession?${query}`),
    await post(`/wrong/${PREFIX}/resolveSession?${query}`),
    await post(`/${PREFIX}x/resolveSession?${query}`),
    await post(`/${PREFIX}/resolveSession?sessionId=a&sessionId=b&transport=HTTP&authToken=${TOKEN}`),
  ];
  expect(statuses).toEqual([200, 404, 404, 404, 404, 400]);
  await server.close();
  vi.restoreAllMocks();
});

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('local server logs', () => {
  it('are one JSON object per line', () => {
    expect(lines.length).toBeGreaterThanOrEqual(7);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  });

  it('never contain the path prefix, a token or a full query string', () => {
    const all = lines.join('\n');
    expect(all).not.toContain(PREFIX);
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain('authToken');
    expect(all).not.toContain('transport=HTTP');
  });

  it('tag every request line with its own request id and invent no Lambda context', () => {
    const requests = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === 'request');
    expect(requests).toHaveLength(6);
    const ids = requests.map((r) => r.requestId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(6);
    for (const r of requests) {
      expect(r).not.toHaveProperty('function_arn');
      expect(r).not.toHaveProperty('function_name');
      expect(r).not.toHaveProperty('function_request_id');
      expect(r).toHaveProperty('route');
      expect(r).not.toHaveProperty('path');
    }
    expect(requests.map((r) => r.status)).toEqual([200, 404, 404, 404, 404, 400]);
  });
});

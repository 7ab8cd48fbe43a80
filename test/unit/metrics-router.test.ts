import { describe, expect, it } from 'vitest';
import { EmfMetrics } from '../../lambda/adapters/emf-metrics';
import type { HttpRequest } from '../../lambda/core/http-router';
import { CidrSet } from '../../lambda/core/ip';
import { METRICS_NAMESPACE, MetricService } from '../../lambda/core/metrics';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore, type SessionStore } from '../../lambda/core/session-store';
import { issueToken } from '../../lambda/core/tokens/issue-token';
import { MemoryTokenStore, type TokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverRouter } from '../../lambda/handlers/resolver-handler';
import { RecordingLog } from '../helpers/recording-log';
import { dimensionNames, emfLines, type EmfLine } from '../helpers/emf';

const NOW = Date.parse('2026-11-26T12:00:00Z');
const ITEMS: RawItem[] = [
  { SessionId: 'console', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443 },
  { SessionId: 'off', DcvServerEndpoint: '10.0.1.16', Enabled: false },
  { SessionId: 'old', DcvServerEndpoint: '10.0.1.17', ExpiresAt: NOW / 1000 - 60 },
  { SessionId: 'fenced', DcvServerEndpoint: '10.0.1.18', AllowedClientCidrs: ['203.0.113.0/24'] },
  { SessionId: 'asleep', DcvServerEndpoint: '10.0.1.19', Source: 'ec2', InstanceId: 'i-0abc', InstanceState: 'stopped' },
  // A pool lease whose member item is gone (its instance was terminated).
  { SessionId: 'lease:gone', DcvServerEndpoint: '10.0.1.20', Source: 'lease', Pool: 'cad', LeaseUser: 'alice', AllowedUsers: ['alice'] },
];

/** The resolver's router with metrics written to an array, as the Lambda entry and `serve --metrics` build it. */
function setup(options: { store?: SessionStore; tokens?: TokenStore; allowedSources?: CidrSet } = {}) {
  const written: string[] = [];
  const metrics = new EmfMetrics({ service: MetricService.resolver, write: (text) => written.push(text), now: () => NOW });
  const store = options.store ?? new MemorySessionStore(ITEMS);
  const route = createResolverRouter({ store, logger: new RecordingLog(), metrics, tokens: options.tokens, allowedSources: options.allowedSources, now: () => NOW });
  const flushed = (): EmfLine[] => {
    metrics.flush();
    return emfLines(written.splice(0).join(''));
  };
  return { route, flushed };
}

const resolve = (query: string, sourceIp = '198.51.100.7'): HttpRequest => ({ method: 'POST', path: '/resolveSession', rawQueryString: query, sourceIp });

/** The one line whose `Outcome` dimension is `outcome`. */
function outcomeLine(lines: EmfLine[], metric: string, outcome: string): EmfLine {
  const found = lines.filter((l) => l.Outcome === outcome && metric in l);
  expect(found, `${metric} ${outcome}`).toHaveLength(1);
  return found[0]!;
}

describe('resolutions by outcome, as EMF', () => {
  it.each([
    ['hit', 'sessionId=console&transport=HTTP', 200],
    ['not-found', 'sessionId=ghost&transport=HTTP', 404],
    ['disabled', 'sessionId=off&transport=HTTP', 404],
    ['expired', 'sessionId=old&transport=HTTP', 404],
    ['host-stopped', 'sessionId=asleep&transport=HTTP', 404],
    ['lease-member-gone', 'sessionId=lease:gone&transport=HTTP', 404],
    ['client-refused', 'sessionId=fenced&transport=HTTP&clientIpAddress=198.51.100.1', 404],
    ['client-refused', 'sessionId=fenced&transport=HTTP', 404],
    ['transport-refused', 'sessionId=console&transport=QUIC', 404],
    ['bad-request', 'sessionId=console&transport=quic', 400],
  ])('%s (%s)', async (outcome, query, status) => {
    // GIVEN the router with an EMF writer
    const { route, flushed } = setup();
    // WHEN one resolution is answered and the metrics are flushed
    const response = await route(resolve(query));
    const lines = flushed();
    // THEN the status is the usual one, and one line counts it under its outcome with the EMF directive
    expect(response.statusCode).toBe(status);
    const line = outcomeLine(lines, 'Resolutions', outcome);
    expect(line.Resolutions).toBe(1);
    expect(line.service).toBe('resolver');
    expect(line._aws.CloudWatchMetrics).toEqual([
      { Namespace: METRICS_NAMESPACE, Dimensions: [['service', 'Outcome']], Metrics: [{ Name: 'Resolutions', Unit: 'Count' }] },
    ]);
    expect(line._aws.Timestamp).toBe(NOW);
    // and the latency line has only the service dimension
    const timing = lines.find((l) => 'ResolveLatency' in l)!;
    expect(timing._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service']]);
    expect(typeof timing.ResolveLatency).toBe('number');
    expect(timing.StoreLatency === undefined).toBe(outcome === 'bad-request'); // a bad request never reaches the store
  });

  it('source-refused: the caller is outside the allow-list (before any route is chosen)', async () => {
    const { route, flushed } = setup({ allowedSources: CidrSet.parse(['10.0.0.0/8']) });
    const response = await route(resolve('sessionId=console&transport=HTTP', '198.51.100.7'));
    expect(response.statusCode).toBe(403);
    expect(outcomeLine(flushed(), 'Resolutions', 'source-refused').Resolutions).toBe(1);
  });

  it('store-error: a failing store is a 503, counted with ServerErrors', async () => {
    const failing: SessionStore = { get: async () => Promise.reject(new Error('throttled')) };
    const { route, flushed } = setup({ store: failing });
    const response = await route(resolve('sessionId=console&transport=HTTP'));
    expect(response.statusCode).toBe(503);
    const lines = flushed();
    expect(outcomeLine(lines, 'Resolutions', 'store-error').Resolutions).toBe(1);
    const base = lines.find((l) => l.Outcome === undefined)!;
    expect(base.ServerErrors).toBe(1);
    expect(typeof base.StoreLatency).toBe('number');
  });

  it('aggregates many requests into one line per outcome, latencies as value arrays', async () => {
    const { route, flushed } = setup();
    for (let i = 0; i < 5; i++) await route(resolve('sessionId=console&transport=HTTP'));
    for (let i = 0; i < 3; i++) await route(resolve(`sessionId=ghost-${i}&transport=HTTP`));
    const lines = flushed();
    expect(lines).toHaveLength(3); // hit, not-found, and the service-only line
    expect(outcomeLine(lines, 'Resolutions', 'hit').Resolutions).toBe(5);
    expect(outcomeLine(lines, 'Resolutions', 'not-found').Resolutions).toBe(3);
    const base = lines.find((l) => l.Outcome === undefined)!;
    expect(base.ResolveLatency).toHaveLength(8);
    expect(base.StoreLatency).toHaveLength(8);
  });

  it('never carries a session id, in a dimension or anywhere else', async () => {
    const { route, flushed } = setup();
    await route(resolve('sessionId=secret-desk-42&transport=HTTP'));
    await route(resolve('sessionId=console&transport=HTTP'));
    const lines = flushed();
    const text = JSON.stringify(lines);
    expect(text).not.toContain('secret-desk-42');
    expect(text).not.toContain('console');
    expect([...dimensionNames(lines)].sort()).toEqual(['Outcome', 'service']);
  });

  it('health checks and unknown paths are not resolutions', async () => {
    const { route, flushed } = setup();
    await route({ method: 'GET', path: '/health', rawQueryString: '' });
    await route({ method: 'POST', path: '/nothing', rawQueryString: '' });
    expect(flushed()).toEqual([]);
  });
});

describe('token verifications by outcome, as EMF', () => {
  async function verifierSetup() {
    const tokens = new MemoryTokenStore();
    const { route, flushed } = setup({ tokens });
    const { SessionResolver } = await import('../../lambda/core/resolve');
    const sessions = new SessionResolver({ store: new MemorySessionStore(ITEMS), log: new RecordingLog(), now: () => NOW });
    const issue = (maxUses = 3) => issueToken({ tokens, sessions, now: () => NOW }, { sessionId: 'console', user: 'alice', maxUses });
    const verify = (token: string, serverSessionId = 'console', server = '10.0.1.15'): HttpRequest => ({
      method: 'POST',
      path: `/verifyToken/${server}`,
      rawQueryString: '',
      sourceIp: '10.0.1.15',
      contentType: 'application/x-www-form-urlencoded',
      body: new URLSearchParams({ sessionId: serverSessionId, authenticationToken: token }).toString(),
    });
    return { tokens, route, flushed, issue, verify };
  }

  it('yes, then each refusal reason, then bad requests, each under its own Outcome', async () => {
    const { route, flushed, issue, verify } = await verifierSetup();
    const once = await issue(1);
    expect((await route(verify(once.token))).body).toContain('result="yes"');
    await route(verify(once.token)); // used-up
    const other = await issue();
    await route(verify(other.token, 'other')); // wrong-session
    await route(verify(other.token, 'console', '10.9.9.9')); // wrong-server
    await route(verify('not-a-token')); // malformed
    await route({ ...verify(other.token), method: 'GET' }); // 405: bad-request
    const lines = flushed();
    for (const outcome of ['yes', 'used-up', 'wrong-session', 'wrong-server', 'malformed', 'bad-request']) {
      const line = outcomeLine(lines, 'TokenVerifications', outcome);
      expect(line.TokenVerifications).toBe(1);
      expect(line._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'Outcome']]);
    }
    expect(JSON.stringify(lines)).not.toContain(other.token);
    expect(lines.some((l) => 'Resolutions' in l)).toBe(false);
  });

  it('store-error when the token store fails (503, ServerErrors)', async () => {
    const { tokens, route, flushed, issue, verify } = await verifierSetup();
    const issued = await issue();
    tokens.get = async () => Promise.reject(new Error('unreachable'));
    const response = await route(verify(issued.token));
    expect(response.statusCode).toBe(503);
    const lines = flushed();
    expect(outcomeLine(lines, 'TokenVerifications', 'store-error').TokenVerifications).toBe(1);
    expect(lines.find((l) => l.Outcome === undefined)!.ServerErrors).toBe(1);
  });

  it('not-enabled: a verify request to a resolver without a token store', async () => {
    const { route, flushed } = setup();
    const response = await route({ method: 'POST', path: '/verifyToken', rawQueryString: '', body: 'sessionId=console&authenticationToken=x' });
    expect(response.statusCode).toBe(404);
    expect(outcomeLine(flushed(), 'TokenVerifications', 'not-enabled').TokenVerifications).toBe(1);
  });
});

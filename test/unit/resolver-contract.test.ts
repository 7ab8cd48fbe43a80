import { describe, expect, it } from 'vitest';
import { checkResolverAnswer, gatewayRequestUrl, type ContractRule, type GatewayQuery } from '../../lambda/core/resolver-contract';

const HTTP: GatewayQuery = { sessionId: 'console', transport: 'HTTP' };
const GOOD = { SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: 8443, WebUrlPath: '/' };
const JSON_TYPE = { 'content-type': 'application/json' };

function ok200(body: unknown, headers: Record<string, string> = JSON_TYPE) {
  return { status: 200, headers, body: typeof body === 'string' ? body : JSON.stringify(body) };
}

describe('gatewayRequestUrl: what the gateway asks for [resolver] url', () => {
  it.each([
    ['a bare origin', 'http://127.0.0.1:9000', HTTP, 'http://127.0.0.1:9000/resolveSession?sessionId=console&transport=HTTP'],
    ['a path prefix', 'https://x.lambda-url.eu-west-1.on.aws/3f9c', HTTP, 'https://x.lambda-url.eu-west-1.on.aws/3f9c/resolveSession?sessionId=console&transport=HTTP'],
    ['a trailing slash is kept (the gateway appends blindly)', 'http://h:9000/', HTTP, 'http://h:9000//resolveSession?sessionId=console&transport=HTTP'],
    ['the client address when known', 'http://h', { ...HTTP, transport: 'QUIC', clientIpAddress: '2001:db8::1' }, 'http://h/resolveSession?sessionId=console&transport=QUIC&clientIpAddress=2001%3Adb8%3A%3A1'],
    ['an id that needs encoding', 'http://h', { sessionId: 'a b&c', transport: 'HTTP' }, 'http://h/resolveSession?sessionId=a%20b%26c&transport=HTTP'],
  ] as const)('%s', (_name, url, query, expected) => {
    expect(gatewayRequestUrl(url, query)).toBe(expected);
  });
});

describe('checkResolverAnswer: answers that honour the contract', () => {
  it.each([
    ['the documented 200', HTTP, ok200(GOOD)],
    ['a 200 with a charset', HTTP, ok200(GOOD, { 'content-type': 'application/json; charset=utf-8' })],
    ['a QUIC answer echoing QUIC', { ...HTTP, transport: 'QUIC' }, ok200({ ...GOOD, TransportProtocol: 'QUIC', Port: 8443 })],
    ['an alias answered with the server session id', { sessionId: 'agent1', transport: 'HTTP' }, ok200(GOOD)],
    ['a 404 with any body', HTTP, { status: 404, headers: {}, body: 'no such session' }],
    ['a 400 with a JSON error', HTTP, { status: 400, headers: JSON_TYPE, body: '{"error":"BadRequestError"}' }],
  ] as const)('%s', (_name, query, answer) => {
    expect(checkResolverAnswer(query, answer).violations).toEqual([]);
  });
});

describe('checkResolverAnswer: each violation is named', () => {
  const { Port: _port, ...withoutPort } = GOOD;
  it.each<[string, { status: number; headers: Record<string, string>; body: string }, ContractRule, RegExp]>([
    ['a 500', { status: 500, headers: {}, body: '' }, 'status', /answered 500, not 200, 400 or 404: the resolver failed/],
    ['a 403 from an allow-list', { status: 403, headers: {}, body: '' }, 'status', /403.*access layer/],
    ['a 201', { status: 201, headers: JSON_TYPE, body: JSON.stringify(GOOD) }, 'status', /answered 201/],
    ['a redirect', { status: 302, headers: { location: 'https://elsewhere/resolveSession' }, body: '' }, 'redirect', /302 redirect to https:\/\/elsewhere.*does not follow redirects/],
    ['text/html', ok200(GOOD, { 'content-type': 'text/html' }), 'content-type', /Content-Type is 'text\/html', not application\/json/],
    ['no Content-Type', ok200(GOOD, {}), 'content-type', /Content-Type is missing/],
    ['a non-JSON body', ok200('SessionId=console', JSON_TYPE), 'json', /the body is not JSON: "SessionId=console"/],
    ['a JSON array', ok200([GOOD]), 'json', /an array, not a JSON object/],
    ['the Flask report’s Host/HttpPort names', ok200({ SessionId: 'console', TransportProtocol: 'HTTP', Host: '10.0.1.15', HttpPort: 8443, WebUrlPath: '/' }), 'missing-field', /no DcvServerEndpoint field/],
    ['lower-case names', ok200({ ...withoutPort, port: 8443 }), 'missing-field', /no Port field \(there is 'port': names are case-sensitive\)/],
    ['an extra field', ok200({ ...GOOD, Username: 'alice' }), 'extra-field', /extra field 'Username'/],
    ['Port as a string', ok200({ ...GOOD, Port: '8443' }), 'port', /Port must be a JSON integer 1–65535, got the string "8443"/],
    ['Port as a fraction', ok200({ ...GOOD, Port: 8443.5 }), 'port', /got the number 8443.5/],
    ['Port 0', ok200({ ...GOOD, Port: 0 }), 'port', /got the number 0/],
    ['Port 65536', ok200({ ...GOOD, Port: 65536 }), 'port', /got the number 65536/],
    ['an empty endpoint', ok200({ ...GOOD, DcvServerEndpoint: '' }), 'field-type', /DcvServerEndpoint must be a non-empty string/],
    ['a numeric SessionId', ok200({ ...GOOD, SessionId: 7 }), 'field-type', /SessionId must be a non-empty string, got the number 7/],
    ['lower-case transport', ok200({ ...GOOD, TransportProtocol: 'http' }), 'transport-echo', /must echo the request's 'HTTP', got the string "http"/],
    ['QUIC granted for HTTP', ok200({ ...GOOD, TransportProtocol: 'QUIC' }), 'transport-echo', /must echo the request's 'HTTP'/],
    ['WebUrlPath without a slash', ok200({ ...GOOD, WebUrlPath: 'dcv' }), 'web-url-path', /WebUrlPath must start with '\/', got "dcv"/],
    ['WebUrlPath null', ok200({ ...GOOD, WebUrlPath: null }), 'field-type', /WebUrlPath must be a string, got null/],
  ])('%s', (_name, answer, rule, message) => {
    const { violations } = checkResolverAnswer(HTTP, answer);
    expect(violations.map((v) => v.rule)).toContain(rule);
    expect(violations.find((v) => v.rule === rule)!.message).toMatch(message);
  });

  it('reports every problem of one answer, not just the first', () => {
    const { violations } = checkResolverAnswer(HTTP, ok200({ SessionId: 'console', TransportProtocol: 'QUIC', DcvServerEndpoint: 'h', Port: '1', WebUrlPath: 'x', Extra: 1 }, { 'content-type': 'text/plain' }));
    expect(violations.map((v) => v.rule).sort()).toEqual(['content-type', 'extra-field', 'port', 'transport-echo', 'web-url-path']);
  });
});

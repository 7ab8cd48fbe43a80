import { describe, expect, it } from 'vitest';
import { isRestApiEvent, requestFromRestEvent, restApiResult } from '../../lambda/handlers/rest-api-event';
import { functionUrlEvent } from '../helpers/function-url-event';
import { restApiEvent } from '../helpers/rest-api-event';

/** The REST API (payload 1.0) adapter alone; the fuzz suite and test/shipped compare it with the Function URL path. */
describe('REST API proxy events (accessMode private)', () => {
  it('tells a REST API event from a Function URL event', () => {
    expect(isRestApiEvent(restApiEvent())).toBe(true);
    expect(isRestApiEvent(functionUrlEvent())).toBe(false);
    expect(isRestApiEvent(undefined)).toBe(false);
    expect(isRestApiEvent({ httpMethod: 'GET', version: '2.0' })).toBe(false);
  });

  it('reads the stage-less path, the caller, the request id and a base64 body', () => {
    const request = requestFromRestEvent(
      restApiEvent({ path: '/s3cret/verifyToken/10.0.0.21', sourceIp: '10.20.0.5', body: Buffer.from('a=1').toString('base64'), isBase64Encoded: true, requestId: 'r-1' }),
    );
    expect(request).toMatchObject({ method: 'POST', path: '/s3cret/verifyToken/10.0.0.21', sourceIp: '10.20.0.5', body: 'a=1', requestId: 'r-1', scheme: 'https' });
  });

  it('keeps every repetition of a query parameter, so the route still refuses a repeated one', () => {
    const request = requestFromRestEvent(restApiEvent({ rawQueryString: 'sessionId=a&sessionId=b&transport=HTTP' }));
    expect(new URLSearchParams(request.rawQueryString).getAll('sessionId')).toEqual(['a', 'b']);
  });

  it('lower-cases header names and joins repeats (cookies with "; ")', () => {
    const request = requestFromRestEvent(restApiEvent({ headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: ['a=1', 'b=2'], 'X-Two': ['p', 'q'] } }));
    expect(request.headers).toMatchObject({ 'content-type': 'application/x-www-form-urlencoded', cookie: 'a=1; b=2', 'x-two': 'p, q' });
    expect(request.contentType).toBe('application/x-www-form-urlencoded');
  });

  it('takes header and parameter names that are Object.prototype names as plain names (found by the fuzz suite)', () => {
    const request = requestFromRestEvent(
      restApiEvent({ headers: Object.fromEntries([['constructor', 'c'], ['__proto__', 'p'], ['toString', 't']]), rawQueryString: 'constructor=1&__proto__=2&sessionId=x' }),
    );
    expect(request.headers?.constructor).toBe('c');
    expect(Object.hasOwn(request.headers!, '__proto__')).toBe(true);
    expect(request.headers?.['tostring']).toBe('t');
    expect(new URLSearchParams(request.rawQueryString).get('constructor')).toBe('1');
    expect(new URLSearchParams(request.rawQueryString).get('sessionId')).toBe('x');
  });

  it('reads a malformed event defensively: no crash, a request the router can refuse', () => {
    expect(requestFromRestEvent({ httpMethod: 'POST' } as never)).toMatchObject({ method: 'POST', path: '/', rawQueryString: '', sourceIp: undefined });
    expect(requestFromRestEvent({ httpMethod: 'GET', headers: 'x', multiValueHeaders: { a: 'not a list' }, requestContext: null } as never)).toMatchObject({ headers: {} });
  });

  it('returns Set-Cookie values in multiValueHeaders', () => {
    expect(restApiResult({ statusCode: 303, headers: { Location: '/portal' }, body: '', cookies: ['a=1', 'b=2'] })).toEqual({
      statusCode: 303,
      headers: { Location: '/portal' },
      body: '',
      multiValueHeaders: { 'Set-Cookie': ['a=1', 'b=2'] },
    });
  });
});

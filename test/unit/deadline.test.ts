import { describe, expect, it } from 'vitest';
import { callSignal, outOfTime, OutOfTimeError, remainingMs } from '../../lambda/core/deadline';
import type { HttpResponse } from '../../lambda/core/http-router';
import { deferredPortal, type PortalHandler } from '../../lambda/core/portal/portal-app';
import { DEADLINE_MARGIN_MS, invocationDeadline, requestFromEvent } from '../../lambda/handlers/resolver-handler';
import { functionUrlEvent } from '../helpers/function-url-event';
import { RecordingLog } from '../helpers/recording-log';

describe('deadline helpers', () => {
  it('a call is not started once nothing is left: OutOfTimeError naming it, 0 ms allowed', () => {
    expect(remainingMs(1000, 1500)).toBe(0);
    expect(() => callSignal(Date.now() - 1, 5000, 'token endpoint')).toThrow(new OutOfTimeError('token endpoint', 0));
    const { signal, allowedMs } = callSignal(Date.now() + 60_000, 5000, 'UserInfo');
    // The call's own cap when the deadline is further off.
    expect(allowedMs).toBe(5000);
    expect(signal.aborted).toBe(false);
  });

  it('finds an OutOfTimeError a library wrapped as a cause, and nothing else', () => {
    const late = new OutOfTimeError('keys (JWKS)', 800);
    expect(outOfTime(new Error('something went wrong', { cause: new Error('x', { cause: late }) }))).toBe(late);
    expect(outOfTime(new Error('refused', { cause: new Error('x') }))).toBeUndefined();
    expect(outOfTime('text')).toBeUndefined();
  });

  it('the Lambda deadline is the remaining time less the margin, and rides on the request', () => {
    expect(invocationDeadline({ getRemainingTimeInMillis: () => 4000 }, 1_000_000)).toBe(1_000_000 + 4000 - DEADLINE_MARGIN_MS);
    expect(requestFromEvent(functionUrlEvent({ method: 'GET', path: '/portal' }), 123).deadline).toBe(123);
    expect(requestFromEvent(functionUrlEvent({ method: 'GET', path: '/portal' }))).not.toHaveProperty('deadline');
  });
});

describe('deferredPortal and deadlines', () => {
  const ok: HttpResponse = { statusCode: 200, headers: {}, body: 'portal' };
  const input = (deadline: number, requestId: string) => ({
    request: { method: 'GET', path: '/portal', rawQueryString: '', requestId, deadline },
    basePath: '',
    path: '/portal',
    fields: {},
  });

  it('the build gets the deadline of the request that starts it; its OutOfTimeError is a 503 page naming the call', async () => {
    const log = new RecordingLog();
    const deadlines: number[] = [];
    const portal = deferredPortal(async (deadline) => {
      deadlines.push(deadline);
      throw new OutOfTimeError('Secrets Manager GetSecretValue', 1500);
    }, log);
    const deadline = Date.now() + 60_000;
    const answer = await portal(input(deadline, 'r1'));
    expect(deadlines).toEqual([deadline]);
    expect(answer.statusCode).toBe(503);
    expect(answer.body).toContain('did not answer in time');
    expect(log.find('portal out of time', 'error')).toMatchObject([{ fields: { requestId: 'r1', call: 'Secrets Manager GetSecretValue' } }]);
    expect(log.find('portal unavailable')).toEqual([]);
  });

  it('a request that finds a build under way waits only until its own deadline; the build goes on for the next', async () => {
    const log = new RecordingLog();
    let finish!: (handler: PortalHandler) => void;
    const portal = deferredPortal(() => new Promise<PortalHandler>((resolve) => (finish = resolve)), log);
    const first = portal(input(Date.now() + 60_000, 'starter'));
    const joined = await portal(input(Date.now() + 50, 'joiner'));
    expect(joined.statusCode).toBe(503);
    expect(log.find('portal out of time', 'error')).toMatchObject([{ fields: { requestId: 'joiner', call: 'portal start-up' } }]);
    finish(async () => ok);
    await expect(first).resolves.toBe(ok);
    await expect(portal(input(Date.now() + 50, 'later'))).resolves.toBe(ok);
  });
});

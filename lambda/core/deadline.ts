/**
 * A request's time budget. A deadline is an epoch time in milliseconds (Date.now()'s clock) by which the
 * answer must be ready: on Lambda the invocation's end less a margin, in `serve` a fixed budget. Each
 * outbound call gets what is left (or its own cap, if smaller), so a slow dependency ends as our own
 * answer instead of the platform's timeout.
 */

/** A call was given up: the request's time, or the call's own cap, ran out. */
export class OutOfTimeError extends Error {
  override readonly name = 'OutOfTimeError';
  /**
   * @param call what was being waited for, e.g. 'token endpoint' (logged, so an operator knows which)
   * @param allowedMs how long that call was given
   */
  constructor(
    readonly call: string,
    readonly allowedMs: number,
  ) {
    super(`${call} did not answer within ${allowedMs} ms`);
  }
}

/** Milliseconds left before `deadline`, never below 0. */
export function remainingMs(deadline: number, now: number = Date.now()): number {
  return Math.max(0, Math.floor(deadline - now));
}

/**
 * A signal for one call: it aborts when the deadline passes or after `capMs`, whichever is first. Throws
 * OutOfTimeError at once when nothing is left, so a call is never started without time to finish.
 */
export function callSignal(deadline: number, capMs: number, call: string): { signal: AbortSignal; allowedMs: number } {
  const allowedMs = Math.min(capMs, remainingMs(deadline));
  if (allowedMs <= 0) throw new OutOfTimeError(call, 0);
  return { signal: AbortSignal.timeout(allowedMs), allowedMs };
}

/**
 * `work`'s result, or OutOfTimeError(call) once the deadline passes. For waits that cannot be aborted (a
 * result shared with other requests): the work goes on, this request stops waiting for it.
 */
export async function beforeDeadline<T>(work: Promise<T>, deadline: number, call: string): Promise<T> {
  const allowedMs = remainingMs(deadline);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OutOfTimeError(call, allowedMs)), allowedMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The OutOfTimeError in `error` or its chain of causes (libraries wrap what a fetch throws), if any. */
export function outOfTime(error: unknown): OutOfTimeError | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof OutOfTimeError) return e;
  }
  return undefined;
}

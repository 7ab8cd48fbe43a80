/**
 * Typed errors that carry their HTTP status. The HTTP adapters turn any of these into a small JSON body;
 * anything else becomes a generic 500 so internals never leak.
 */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly headers: Record<string, string>;

  constructor(statusCode: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = new.target.name;
    this.statusCode = statusCode;
    this.headers = headers;
  }

  toJSON(): { error: string; message: string } {
    return { error: this.name, message: this.message };
  }
}

export class BadRequestError extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}

export class ForbiddenError extends HttpError {
  constructor(message: string) {
    super(403, message);
  }
}

export class NotFoundError extends HttpError {
  /** Which kind of "not found" (metrics' outcome: disabled, expired, client-refused, …); never sent. */
  readonly code?: string;

  constructor(message: string, code?: string) {
    super(404, message);
    this.code = code;
  }
}

export class MethodNotAllowedError extends HttpError {
  constructor(allowed: readonly string[]) {
    super(405, `method not allowed; use ${allowed.join(' or ')}`, { Allow: allowed.join(', ') });
  }
}

/** The request is valid but the current state refuses it (e.g. every host of a pool is leased). */
export class ConflictError extends HttpError {
  constructor(message: string) {
    super(409, message);
  }
}

export class PayloadTooLargeError extends HttpError {
  constructor(message: string) {
    super(413, message);
  }
}

/** The session store could not answer (throttled, timed out, unreachable). */
export class ServiceUnavailableError extends HttpError {
  constructor(message = 'session store unavailable; try again') {
    super(503, message, { 'Retry-After': '1' });
  }
}

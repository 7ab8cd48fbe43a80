import { BadRequestError, HttpError, MethodNotAllowedError, NotFoundError, PayloadTooLargeError } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../http-router.js';
import { hasControlChars, MAX_SESSION_ID_LENGTH } from '../session-record.js';
import { authNoXml, authYesXml } from './auth-xml.js';
import type { VerifyRequest, TokenVerifier } from './verify-token.js';

export const VERIFY_METHODS = ['POST'] as const;

/** The DCV server's form is three short fields; anything much bigger is not from a DCV server. */
export const MAX_VERIFY_BODY_BYTES = 8 * 1024;
const MAX_TOKEN_LENGTH = 512;
const MAX_ADDRESS_LENGTH = 128;
const FORM_TYPE = 'application/x-www-form-urlencoded';

const XML_HEADERS = { 'Content-Type': 'text/xml; charset=utf-8', 'Cache-Control': 'no-store' } as const;

function xmlResponse(statusCode: number, body: string, headers: Record<string, string> = {}): HttpResponse {
  return { statusCode, headers: { ...XML_HEADERS, ...headers }, body };
}

/**
 * POST …/verifyToken[/<server>] (contract section 2). A decision is always 200 text/xml; a request that
 * is not the DCV server's form is a 4xx with a `result="no"` body, and a failing token store a 503 with
 * one: nothing but a verified token ever gets `yes`.
 */
export async function handleVerifyToken(
  verifier: TokenVerifier | undefined,
  request: HttpRequest,
  serverSegment: string | undefined,
  fields: Record<string, unknown>,
): Promise<HttpResponse> {
  try {
    if (request.method !== 'POST') throw new MethodNotAllowedError(VERIFY_METHODS);
    if (!verifier) throw new NotFoundError('token verification is not enabled on this resolver (serve: --tokens-dir or --tokens-table)');
    const verifyRequest = parseVerifyRequest(request, serverSegment);
    fields.sessionId = verifyRequest.serverSessionId.slice(0, 64);
    if (verifyRequest.server !== undefined) fields.server = verifyRequest.server.slice(0, 64);
    const result = await verifier.verify(verifyRequest, { requestId: request.requestId });
    fields.result = result.result;
    if (result.tokenId) fields.tokenId = result.tokenId;
    if (result.result === 'yes') {
      // The person (token's user) and the name DCV was given (DcvUser, or the same user) side by side.
      fields.user = result.user;
      fields.dcvUser = result.dcvUser;
      fields.usesLeft = result.usesLeft;
      return xmlResponse(200, authYesXml(result.dcvUser));
    }
    fields.reason = result.reason;
    fields.detail = result.message;
    return xmlResponse(200, authNoXml(result.message));
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    fields.result = 'no';
    fields.reason = error.message;
    return xmlResponse(error.statusCode, authNoXml(error.message), error.headers);
  }
}

/** Reads the DCV server's form strictly: one of each field, bounded, no control characters. */
export function parseVerifyRequest(request: HttpRequest, serverSegment: string | undefined): VerifyRequest {
  const body = request.body ?? '';
  if (request.bodyTooLarge || Buffer.byteLength(body) > MAX_VERIFY_BODY_BYTES) {
    throw new PayloadTooLargeError(`verification request body must be at most ${MAX_VERIFY_BODY_BYTES} bytes`);
  }
  const type = request.contentType?.split(';')[0]!.trim().toLowerCase();
  if (type !== undefined && type !== '' && type !== FORM_TYPE) {
    throw new HttpError(415, `verification requests must be ${FORM_TYPE}, not ${type.slice(0, 64)}`);
  }
  if (body.includes('\uFFFD')) throw new BadRequestError('verification request body is not valid UTF-8');
  // URLSearchParams keeps a broken escape such as %ZZ literally; a DCV server never sends one.
  if (/%(?![0-9A-Fa-f]{2})/.test(body)) throw new BadRequestError('verification request body is not valid percent-encoding');
  const form = new URLSearchParams(body);
  const serverSessionId = field(form, 'sessionId', MAX_SESSION_ID_LENGTH);
  const token = field(form, 'authenticationToken', MAX_TOKEN_LENGTH);
  const clientAddress = optionalField(form, 'clientAddress', MAX_ADDRESS_LENGTH);
  let server: string | undefined;
  if (serverSegment !== undefined) {
    try {
      server = decodeURIComponent(serverSegment);
    } catch {
      throw new BadRequestError('the server segment of the verifier URL is not valid percent-encoding');
    }
    if (server === '' || server.length > 255 || hasControlChars(server)) {
      throw new BadRequestError('the server segment of the verifier URL must be a host name or an IP address');
    }
  }
  return { serverSessionId, token, ...(clientAddress === undefined ? {} : { clientAddress }), ...(server === undefined ? {} : { server }) };
}

function optionalField(form: URLSearchParams, name: string, max: number): string | undefined {
  const values = form.getAll(name);
  if (values.length > 1) throw new BadRequestError(`${name} must be given once, not ${values.length} times`);
  const value = values[0];
  if (value === undefined || value === '') return undefined;
  if (value.length > max) throw new BadRequestError(`${name} must be at most ${max} characters`);
  if (hasControlChars(value) || value.includes('\uFFFD')) throw new BadRequestError(`${name} must not contain control characters or invalid encoding`);
  return value;
}

function field(form: URLSearchParams, name: string, max: number): string {
  const value = optionalField(form, name, max);
  if (value === undefined) throw new BadRequestError(`${name} is required`);
  return value;
}

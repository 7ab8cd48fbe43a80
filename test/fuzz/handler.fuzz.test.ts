import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CidrSet } from '../../lambda/core/ip';
import { createResolverHandler, type ResolverHandler } from '../../lambda/handlers/resolver-handler';
import {
  ALLOWED_CIDRS,
  method,
  PREFIX,
  rawPath,
  rawQuery,
  SESSION_IDS,
  sourceAllowedOracle,
  sourceIp,
  SpyStore,
  table,
  wellFormedItem,
} from '../helpers/fuzz-arbitraries';
import { restApiEvent } from '../helpers/rest-api-event';

/**
 * Hostile input against the real handler (router, resolver, record validation, middy for the Lambda
 * path): random methods, paths, queries, bodies, headers and source addresses over random tables with
 * malformed items. Invariants: never throws, never 5xx, every 4xx is a JSON error, a 200 is exactly what
 * a well-formed item says, and a refused source never reaches the store.
 */
const RUNS = { hostile: 3000, wellFormed: 600, restApi: 1500 } as const;
let generated = 0;

afterAll(() => {
  // The number of generated cases per run, for the closing report.
  process.stdout.write(`handler fuzz: ${generated} generated cases\n`);
});

const logger = new Logger({ serviceName: 'fuzz', logLevel: 'SILENT' });
const context = {
  awsRequestId: '8b1e6c0e-1111-4111-8111-111111111111',
  functionName: 'fuzz',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:fuzz',
  memoryLimitInMB: '256',
  getRemainingTimeInMillis: () => 5000,
} as unknown as Context;

interface Setup {
  readonly handler: ResolverHandler;
  readonly store: SpyStore;
  readonly allowList: boolean;
}

function makeSetup(allowList: boolean, prefix: boolean): Setup {
  const store = new SpyStore();
  const handler = createResolverHandler({
    store,
    logger,
    allowedSources: allowList ? CidrSet.parse(ALLOWED_CIDRS) : undefined,
    pathPrefix: prefix ? PREFIX : undefined,
  });
  return { handler, store, allowList };
}

// Handlers are built once per configuration (as at cold start) and reused across cases.
const setups = [makeSetup(false, false), makeSetup(true, false), makeSetup(false, true), makeSetup(true, true)];

const headers = fc.dictionary(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
  fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('198.51.100.7', '203.0.113.5, 10.0.0.1')),
  { maxKeys: 5 },
);
const body = fc.option(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.base64String({ maxLength: 100 })), { nil: undefined });

function event(m: string, path: string, query: string, source: string | undefined, hdrs: Record<string, string>, b: string | undefined, b64: boolean): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: query,
    headers: hdrs,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'fuzz',
      domainName: 'fuzz.lambda-url.us-east-1.on.aws',
      domainPrefix: 'fuzz',
      http: { method: m, path, protocol: 'HTTP/1.1', sourceIp: source as string, userAgent: 'fuzz' },
      requestId: 'fuzz-request',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2026:00:00:00 +0000',
      timeEpoch: 0,
    },
    body: b,
    isBase64Encoded: b64,
  };
}

/** The invariants every answer must keep; `items` is the table the store served from. */
function checkAnswer(
  result: Awaited<ReturnType<ResolverHandler>>,
  setup: Setup,
  callsBefore: number,
  source: string | undefined,
  query: string,
): void {
  const status = result.statusCode!;
  expect(status, result.body).toBeGreaterThanOrEqual(200);
  expect(status, result.body).toBeLessThan(500);
  expect([200, 400, 403, 404, 405]).toContain(status);
  const parsed = JSON.parse(result.body!) as Record<string, unknown>;
  if (status >= 400) {
    expect(typeof parsed.error).toBe('string');
    expect(typeof parsed.message).toBe('string');
  }
  const reachedStore = setup.store.calls > callsBefore;
  if (setup.allowList && !sourceAllowedOracle(source)) {
    expect(status).toBe(403);
    expect(reachedStore).toBe(false);
  }
  if (status === 200 && 'SessionId' in parsed) {
    // Only well-formed items are served, and exactly as the item says.
    const params = new URLSearchParams(query);
    const generatedItem = setup.store.items.get(params.get('sessionId')!);
    expect(generatedItem?.kind).toBe('ok');
    if (generatedItem?.kind !== 'ok') return;
    expect(parsed).toEqual(generatedItem.answer(params.get('transport') as 'HTTP' | 'QUIC', Date.now()));
    expect(Object.keys(parsed)).toEqual(['SessionId', 'TransportProtocol', 'DcvServerEndpoint', 'Port', 'WebUrlPath']);
  }
}

describe('the Function URL handler under hostile input', () => {
  it(`keeps every invariant (${RUNS.hostile} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: setups.length - 1 }),
        table,
        method,
        rawPath,
        rawQuery,
        sourceIp,
        headers,
        body,
        fc.boolean(),
        fc.boolean(),
        async (which, items, m, path, query, source, hdrs, b, b64, viaLambda) => {
          generated += 1;
          const setup = setups[which]!;
          setup.store.items = items;
          const before = setup.store.calls;
          const e = event(m, path, query, source, hdrs, b, b64);
          // Both entry shapes: the Lambda one (middy + context) and the local server's (no context).
          const result = await (viaLambda ? setup.handler(e, context) : setup.handler(e));
          checkAnswer(result, setup, before, source, query);
        },
      ),
      { numRuns: RUNS.hostile },
    );
  });

  it(`serves a well-formed, enabled, unexpired item with exactly its fields (${RUNS.wellFormed} cases)`, async () => {
    const setup = setups[3]!;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SESSION_IDS).chain((id) => fc.tuple(fc.constant(id), wellFormedItem(id))),
        fc.constantFrom<'HTTP' | 'QUIC'>('HTTP', 'QUIC'),
        fc.integer({ min: 0, max: 255 }),
        async ([id, item], transport, octet) => {
          generated += 1;
          setup.store.items = new Map([[id, item]]);
          const query = new URLSearchParams({ sessionId: id, transport }).toString();
          const result = await setup.handler(event('POST', `/${PREFIX}/resolveSession`, query, `203.0.113.${octet}`, {}, undefined, false));
          const expected = item.answer(transport, Date.now());
          expect(result.statusCode).toBe(expected ? 200 : 404);
          if (expected) expect(JSON.parse(result.body!)).toEqual(expected);
          checkAnswer(result, setup, 0, `203.0.113.${octet}`, query);
        },
      ),
      { numRuns: RUNS.wellFormed },
    );
  });

  it(`answers a private REST API's proxy event exactly as the same Function URL request (${RUNS.restApi} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: setups.length - 1 }),
        table,
        method,
        rawPath.filter((p) => p.startsWith('/')),
        rawQuery,
        sourceIp,
        headers,
        body,
        fc.boolean(),
        fc.boolean(),
        async (which, items, m, path, query, source, hdrs, b, b64, upperCase) => {
          generated += 1;
          const setup = setups[which]!;
          setup.store.items = items;
          const before = setup.store.calls;
          // REST APIs keep the caller's header case; the adapter must not depend on it.
          const restHeaders = Object.fromEntries(
            Object.entries(hdrs).map(([k, v]) => [upperCase ? k.replace(/(^|-)[a-z]/g, (c) => c.toUpperCase()) : k, v]),
          );
          const rest = await setup.handler(
            restApiEvent({ method: m, path, rawQueryString: query, sourceIp: source, headers: restHeaders, body: b, isBase64Encoded: b64 }),
            context,
          );
          checkAnswer(rest, setup, before, source, query);
          const url = await setup.handler(event(m, path, query, source, hdrs, b, b64), context);
          expect({ status: rest.statusCode, body: rest.body, headers: rest.headers }).toEqual({
            status: url.statusCode,
            body: url.body,
            headers: url.headers,
          });
        },
      ),
      { numRuns: RUNS.restApi },
    );
  });

  it('counted every generated case', () => {
    expect(generated).toBe(RUNS.hostile + RUNS.wellFormed + RUNS.restApi);
  });
});

import { NodeHttpHandler } from '@smithy/node-http-handler';

/**
 * The HTTP handler every AWS SDK client of ours uses: explicit connection and request timeouts that
 * actually fail the attempt. Without throwOnRequestTimeout, smithy only logs a warning when
 * requestTimeout passes and the request keeps hanging.
 */
export function boundedHttpHandler(timeouts: { connectionTimeoutMs: number; requestTimeoutMs: number }): NodeHttpHandler {
  return new NodeHttpHandler({
    connectionTimeout: timeouts.connectionTimeoutMs,
    requestTimeout: timeouts.requestTimeoutMs,
    throwOnRequestTimeout: true,
  });
}

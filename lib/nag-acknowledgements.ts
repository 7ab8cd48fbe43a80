import { NagSuppressions } from 'cdk-nag';
import type { DcvFunction } from './dcv-function';

/**
 * cdk-nag findings on the resolver that are deliberate, each with the reason it does not apply.
 * Everything else must pass (test/infra/nag.test.ts).
 */
export function acknowledgeResolverFindings(resolver: DcvFunction): void {
  NagSuppressions.addResourceSuppressions(resolver, [
    {
      id: 'Serverless-LambdaDLQ',
      reason:
        'The resolver is only invoked synchronously through its Function URL; a dead-letter queue only ' +
        'receives failed asynchronous invocations, so it would never get a message. Failures are 503s the ' +
        'gateway sees, and every request is logged.',
    },
    {
      id: 'Serverless-LambdaTracing',
      reason:
        'Each request does one DynamoDB GetItem and writes one structured log line with its outcome and ' +
        'latency; X-Ray would add a wildcard-resource permission and per-request cost without showing more.',
    },
  ]);
}

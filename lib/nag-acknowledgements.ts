import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import type { DcvFunction } from './dcv-function.js';

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

/**
 * cdk-nag findings on the portal (lib/resolver-portal.ts) that are deliberate. Added on the portal's own
 * construct, so nothing else in the stack is covered by them.
 */
export function acknowledgePortalFindings(portal: Construct): void {
  NagSuppressions.addResourceSuppressions(
    portal,
    [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          "The secret holds the portal cookie signing key, generated at deploy and read by the portal's function only; " +
          'rotating it would sign every user out and needs a rotation function for no gain. Rotate it by hand ' +
          '(put a new random cookieKey) if it is ever exposed.',
      },
      {
        id: 'Serverless-LambdaDLQ',
        reason:
          "The portal's function is only invoked synchronously through its Function URL by users' browsers; a " +
          'dead-letter queue only receives failed asynchronous invocations, so it would never get a message.',
      },
      {
        id: 'Serverless-LambdaTracing',
        reason:
          'Each portal request writes one structured log line with its outcome and latency; X-Ray would add a ' +
          'wildcard-resource permission and per-request cost without showing more.',
      },
      {
        id: 'AwsSolutions-COG2',
        reason:
          'MFA is OPTIONAL with TOTP (no SMS): users can and should enrol an authenticator, but requiring it ' +
          'would lock out users of a pool federated to a company identity provider that already enforces MFA.',
      },
      {
        id: 'AwsSolutions-COG8',
        reason:
          'The Plus feature plan is a per-user cost this product does not impose; operators who want threat ' +
          'protection can raise the plan on the retained pool. Self sign-up is off and MFA (TOTP) is available.',
      },
    ],
    true,
  );
}

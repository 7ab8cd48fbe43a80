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
        'The resolver is only invoked synchronously (its Function URL, or the private API); a dead-letter queue only ' +
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

/**
 * cdk-nag findings on the private REST API (lib/private-api.ts, `accessMode: 'private'`) that are deliberate.
 * Added on the API's own construct, so nothing else in the stack is covered by them.
 */
export function acknowledgePrivateApiFindings(api: Construct): void {
  NagSuppressions.addResourceSuppressions(
    api,
    [
      {
        id: 'AwsSolutions-APIG2',
        reason:
          'The resolver validates every request itself (query, body, size, path) and answers 400/404/405 in the ' +
          "gateway's and DCV server's formats; an API Gateway request validator would answer in its own format.",
      },
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'The API is PRIVATE: its resource policy admits only the given execute-api VPC endpoints (and, when set, ' +
          'the allow-listed VPC addresses); the stage is throttled from the reserved concurrency. A WAF web ACL ' +
          'adds a monthly cost with nothing public to protect.',
      },
      {
        id: 'AwsSolutions-APIG4',
        reason:
          'The callers are the DCV Connection Gateway and the DCV servers, which cannot sign requests or send ' +
          'credentials; access is decided by the resource policy (aws:SourceVpce, aws:VpcSourceIp), and the ' +
          'verifier authenticates each connection by its one-time token.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason:
          'No Cognito user pool authorizer: the callers are the gateway and DCV servers, not signed-in users; ' +
          'the resource policy limits the API to the VPC endpoints, and tokens authenticate connections.',
      },
      {
        id: 'AwsSolutions-IAM4',
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs'],
        reason:
          "The account-level role API Gateway uses to write access logs: AWS's own managed policy for exactly this " +
          'purpose, kept current by AWS; a hand-written copy would drift from what the service needs.',
      },
      {
        id: 'Serverless-APIGWXrayEnabled',
        reason:
          'Each request is one Lambda invocation doing one DynamoDB call, logged with its latency by the function ' +
          'and in the stage access log; X-Ray would add per-request cost without showing more.',
      },
    ],
    true,
  );
}

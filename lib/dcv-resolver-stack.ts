import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import type { AccessSettings } from './access-settings.js';
import type { DcvFunction } from './dcv-function.js';
import { DcvSessionResolver, type DcvSessionResolverProps } from './dcv-session-resolver.js';
import { addGatewayOutputs } from './resolver-access.js';
import type { ResolverPortal } from './resolver-portal.js';
import type { SessionDiscovery } from './session-discovery.js';

/**
 * The construct's props (lib/dcv-session-resolver.ts), which are also the CDK context keys bin/app.ts
 * reads. `network` mode with neither an allow-list nor `allowAnySource: true` adds a synth error (the CDK
 * CLI refuses to synthesize or deploy it); bin/app.ts refuses it earlier with the same message.
 */
export interface DcvResolverStackProps extends StackProps, DcvSessionResolverProps {}

/**
 * The shipped stack: one DcvSessionResolver plus the outputs the operator pastes into the gateway's and
 * the DCV servers' configuration. The gateway's `[resolver] url` is the `GatewayResolverUrl` output.
 */
export class DcvResolverStack extends Stack {
  readonly table: Table;
  /** Connect tokens (by hash) for the verifier; absent when `verifier` is false. */
  readonly tokensTable?: Table;
  readonly resolver: DcvFunction;
  readonly access: AccessSettings;
  readonly discovery?: SessionDiscovery;
  /** The self-service portal; absent when `portal` is off. */
  readonly portal?: ResolverPortal;
  /** The construct holding everything above. */
  readonly sessionResolver: DcvSessionResolver;

  constructor(scope: Construct, id: string, props: DcvResolverStackProps = {}) {
    super(scope, id, props);
    // 'Default' is left out of logical ids: every resource keeps the id it had before the construct
    // existed, so updating a deployed stack never replaces its retained tables.
    const resolver = new DcvSessionResolver(this, 'Default', props);
    this.sessionResolver = resolver;
    this.table = resolver.table;
    this.tokensTable = resolver.tokensTable;
    this.resolver = resolver.resolver;
    this.access = resolver.access;
    this.discovery = resolver.discovery;
    this.portal = resolver.portal;

    if (resolver.tokensTable) {
      new CfnOutput(this, 'TokenTableName', {
        value: resolver.tokensTable.tableName,
        description: "Where 'dcv-resolver token create --tokens-table' keeps connect tokens",
      });
    }
    addGatewayOutputs(this, resolver, resolver.access);
    new CfnOutput(this, 'SessionTableName', { value: resolver.table.tableName });
    if (resolver.discovery) {
      new CfnOutput(this, 'DiscoveryDeadLetterQueueUrl', { value: resolver.discovery.deadLetterQueue.queueUrl });
    }
    if (resolver.power) {
      new CfnOutput(this, 'HostSignalsDocumentName', {
        value: resolver.power.hostSignalsDocument.documentName,
        description: "The SSM document the power pass sends: 'dcv-resolver power --document' takes it",
      });
    }
    if (resolver.portal) addPortalOutputs(this, resolver.portal);
  }
}

/** Where users go, what to register at the identity provider, and (cognito) where to manage users. */
function addPortalOutputs(scope: Construct, portal: ResolverPortal): void {
  new CfnOutput(scope, 'PortalUrl', { value: portal.portalUrl, description: 'The self-service portal: users open this and sign in' });
  new CfnOutput(scope, 'PortalCallbackUrl', {
    value: portal.callbackUrl,
    description: portal.userPool
      ? "The Cognito app client's callback URL (set by the stack)"
      : "Register as the redirect URI of the public client at your identity provider",
  });
  if (portal.userPool && portal.userPoolDomain) {
    new CfnOutput(scope, 'UserPoolId', {
      value: portal.userPool.userPoolId,
      description: "Add users: aws cognito-idp admin-create-user --user-pool-id <this> --username <email>",
    });
    new CfnOutput(scope, 'CognitoSignInDomain', {
      value: portal.userPoolDomain.baseUrl(),
      description: "The user pool's hosted sign-in domain",
    });
  }
}

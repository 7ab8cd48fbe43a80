import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import type { AccessSettings } from './access-settings';
import type { DcvFunction } from './dcv-function';
import { DcvSessionResolver, type DcvSessionResolverProps } from './dcv-session-resolver';
import { addGatewayOutputs } from './resolver-access';
import type { SessionDiscovery } from './session-discovery';

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
  }
}

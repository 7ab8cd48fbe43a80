#!/usr/bin/env node
import { App, Duration } from 'aws-cdk-lib';
import { DcvResolverStack } from '../lib/dcv-resolver-stack.js';
import { readStackContext } from '../lib/stack-context.js';

const app = new App();
let settings;
try {
  settings = readStackContext((key) => app.node.tryGetContext(key));
} catch (error) {
  // One clear line instead of a stack trace: the message names the context key to set.
  process.stderr.write(`dcv-session-resolver: ${(error as Error).message}\n`);
  process.exit(1);
}

new DcvResolverStack(app, settings.stackName, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  tableName: settings.tableName,
  verifier: settings.verifier,
  tokensTableName: settings.tokensTableName,
  resolverMemorySize: settings.resolverMemorySize,
  resolverTimeout: settings.resolverTimeoutSeconds ? Duration.seconds(settings.resolverTimeoutSeconds) : undefined,
  bundleAwsSdk: settings.bundleAwsSdk,
  accessMode: settings.accessMode,
  allowedSourceCidrs: settings.allowedSourceCidrs,
  allowAnySource: settings.allowAnySource,
  pathPrefix: settings.pathPrefix,
  invokerRoleArn: settings.invokerRoleArn,
  reservedConcurrency: settings.reservedConcurrency,
  ...(settings.privateEndpoint?.kind === 'existing' ? { vpcEndpointIds: settings.privateEndpoint.vpcEndpointIds } : {}),
  ...(settings.privateEndpoint?.kind === 'create'
    ? { vpcId: settings.privateEndpoint.vpcId, subnetIds: settings.privateEndpoint.subnetIds, vpcCidr: settings.privateEndpoint.vpcCidr }
    : {}),
  discovery: settings.discovery,
  tagPrefix: settings.tagPrefix,
  discoverySchedule: settings.discoveryScheduleMinutes ? Duration.minutes(settings.discoveryScheduleMinutes) : undefined,
  desktopPower: settings.desktopPower,
  alarmTopicArn: settings.alarmTopicArn,
  portal: settings.portal,
  gatewayUrl: settings.gatewayUrl,
  oidcIssuer: settings.oidcIssuer,
  oidcClientId: settings.oidcClientId,
  oidcGroupsClaim: settings.oidcGroupsClaim,
  oidcScopes: settings.oidcScopes,
  portalLeaseSeconds: settings.portalLeaseSeconds,
  cognitoDomainPrefix: settings.cognitoDomainPrefix,
  portalAllowedSourceCidrs: settings.portalAllowedSourceCidrs,
});

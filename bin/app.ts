#!/usr/bin/env node
import { App, Duration } from 'aws-cdk-lib';
import { DcvResolverStack } from '../lib/dcv-resolver-stack';
import { readStackContext } from '../lib/stack-context';

const app = new App();
const settings = readStackContext((key) => app.node.tryGetContext(key));

new DcvResolverStack(app, settings.stackName, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  tableName: settings.tableName,
  resolverMemorySize: settings.resolverMemorySize,
  resolverTimeout: settings.resolverTimeoutSeconds ? Duration.seconds(settings.resolverTimeoutSeconds) : undefined,
  bundleAwsSdk: settings.bundleAwsSdk,
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects, type CfnResource } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DcvResolverStack, type DcvResolverStackProps } from '../../lib/dcv-resolver-stack';
import { nagFindings as findingsOf } from '../helpers/nag-findings';

/** These tests read the template only: skip esbuild bundling of the function code (seconds per synth). */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

/** Synthesizes the stack with AwsSolutions and Serverless checks; returns every finding left. */
function nagFindings(props: DcvResolverStackProps): { findings: string[]; stack: DcvResolverStack } {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-nag-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new DcvResolverStack(app, 'Nag', props);
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
  return { findings: findingsOf(stack), stack };
}

/** Every acknowledgement in the stack, so none can hide behind an empty or token reason. */
function suppressionReasons(stack: DcvResolverStack): { id: string; reason: string }[] {
  return stack.node
    .findAll()
    .flatMap((c) => {
      const metadata = (c.node.defaultChild as { getMetadata?: (k: string) => unknown } | undefined)?.getMetadata?.('cdk_nag');
      return ((metadata as { rules_to_suppress?: { id: string; reason: string }[] } | undefined)?.rules_to_suppress ?? []);
    });
}

describe.each<[string, DcvResolverStackProps]>([
  ['network', { allowedSourceCidrs: ['203.0.113.10/32'], pathPrefix: 'p' }],
  ['iam', { accessMode: 'iam', invokerRoleArn: 'arn:aws:iam::123456789012:role/DcvGatewayHost' }],
  ['network + portal cognito', { allowedSourceCidrs: ['0.0.0.0/0'], portal: 'cognito', gatewayUrl: 'https://gateway.example.com' }],
  ['private, existing endpoint', { accessMode: 'private', vpcEndpointIds: ['vpce-0123456789abcdef0'], allowedSourceCidrs: ['10.20.0.0/16'] }],
  ['private, created endpoint', { accessMode: 'private', vpcId: 'vpc-0a1b2c3d4e5f60718', subnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-1a1b2c3d4e5f60718'], vpcCidr: '10.20.0.0/16' }],
])('cdk-nag, %s mode', (_mode, props) => {
  let findings: string[];
  let stack: DcvResolverStack;
  beforeAll(() => {
    ({ findings, stack } = nagFindings(props));
  });

  it('leaves no unacknowledged AwsSolutions or Serverless finding', () => {
    expect(findings).toEqual([]);
  });

  it('acknowledges only with a real reason', () => {
    const suppressions = suppressionReasons(stack);
    expect(suppressions.length).toBeGreaterThan(0);
    for (const { id, reason } of suppressions) {
      expect(id).toMatch(/^(AwsSolutions|Serverless)-/);
      // cdk-nag only demands 10 characters; a reason here explains why the rule does not apply.
      expect(reason.length, `${id}: ${reason}`).toBeGreaterThanOrEqual(60);
    }
  });
});

it('really runs the checks: an unacknowledged finding is reported', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-nag-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new DcvResolverStack(app, 'Nag', { allowAnySource: true });
  // Dropping the resolver's acknowledgements must surface its findings again.
  (stack.resolver.node.defaultChild as CfnResource).addMetadata('cdk_nag', { rules_to_suppress: [] });
  Aspects.of(app).add(new ServerlessChecks());
  const found = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('^Serverless-LambdaDLQ'));
  expect(found.length).toBe(1);
});

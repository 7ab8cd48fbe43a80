import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableArn, type AwsCall } from './harness/aws-recorder';
import { denied } from './harness/iam-check';
import { synthesize, type Synthesized } from './harness/synthesized';

/**
 * The policy check the shipped-bundle tests rely on, against a real template: it must refuse what the roles
 * do not grant, or a missing permission would pass there unnoticed.
 */
let synth: Synthesized;
let resolver: string;
let discovery: string;
let sessions: string;
let tokens: string;

const call = (action: string, resources: string[], keys?: AwsCall['keys']): AwsCall => ({
  accessKeyId: 'x',
  service: action.split(':')[0] as AwsCall['service'],
  action,
  resources,
  ...(keys ? { keys } : {}),
});

beforeAll(() => {
  synth = synthesize('ShippedPolicy', { allowAnySource: true, portal: 'oidc', gatewayUrl: 'https://gw.example.com', oidcIssuer: 'https://login.example.com', oidcClientId: 'portal' });
  resolver = synth.functionId('Resolver');
  discovery = synth.functionId('DiscoveryFunction');
  sessions = synth.tableName('Sessions');
  tokens = synth.tableName('Tokens');
}, 120_000);

afterAll(() => synth?.remove());

describe('the template policy check', () => {
  it('allows what the roles grant', () => {
    expect(denied(synth, resolver, [call('dynamodb:GetItem', [tableArn(sessions)]), call('dynamodb:UpdateItem', [tableArn(tokens)])])).toEqual([]);
    expect(denied(synth, discovery, [call('dynamodb:Query', [`${tableArn(sessions)}/index/ByInstanceId`]), call('ec2:DescribeInstances', ['*'])])).toEqual([]);
    expect(denied(synth, resolver, [call('dynamodb:PutItem', [tableArn(sessions)], [{ SessionId: { S: 'lease:desk-1' } }])])).toEqual([]);
  });

  it('refuses another action, another table, another index, and a key outside a LeadingKeys condition', () => {
    expect(denied(synth, resolver, [call('dynamodb:DeleteItem', [tableArn(sessions)])])).toEqual([`dynamodb:DeleteItem on ${tableArn(sessions)}`]);
    expect(denied(synth, resolver, [call('dynamodb:GetItem', [tableArn('SomeoneElses')])])).toHaveLength(1);
    expect(denied(synth, discovery, [call('dynamodb:Query', [`${tableArn(sessions)}/index/Other`])])).toHaveLength(1);
    expect(denied(synth, resolver, [call('dynamodb:PutItem', [tableArn(sessions)], [{ SessionId: { S: 'desk-1' } }])])).toHaveLength(1);
    expect(denied(synth, discovery, [call('secretsmanager:GetSecretValue', ['arn:aws:secretsmanager:us-east-1:123456789012:secret:ShippedPolicy-dcv-portal-keys-AbCdEf'])])).toHaveLength(1);
    expect(denied(synth, resolver, [call('secretsmanager:GetSecretValue', ['arn:aws:secretsmanager:us-east-1:123456789012:secret:ShippedPolicy-dcv-portal-keys-AbCdEf'])])).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableArn, type AwsCall } from './harness/aws-recorder';
import { denied } from './harness/iam-check';
import { synthesize, type Synthesized } from './harness/synthesized';

/**
 * The policy check the shipped-bundle tests rely on (an outside IAM evaluator over the template's roles),
 * against a real template: it must refuse what the roles do not grant, or a missing permission would pass
 * there unnoticed.
 */
let synth: Synthesized;
let resolver: string;
let portal: string;
let discovery: string;
let sessions: string;
let tokens: string;
const SECRET = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:ShippedPolicy-dcv-portal-keys-AbCdEf';

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
  portal = synth.functionId('PortalFunction');
  discovery = synth.functionId('DiscoveryFunction');
  sessions = synth.tableName('Sessions');
  tokens = synth.tableName('Tokens');
}, 120_000);

afterAll(() => synth?.remove());

describe('the template policy check', () => {
  it('allows what the roles grant', async () => {
    const desk = [{ SessionId: { S: 'desk-1' } }];
    expect(await denied(synth, resolver, [call('dynamodb:GetItem', [tableArn(sessions)], desk), call('dynamodb:UpdateItem', [tableArn(tokens)], [{ TokenHash: { S: 'h' } }])])).toEqual([]);
    expect(await denied(synth, discovery, [call('dynamodb:Query', [`${tableArn(sessions)}/index/ByInstanceId`]), call('ec2:DescribeInstances', ['*'])])).toEqual([]);
    expect(
      await denied(synth, portal, [
        call('dynamodb:PutItem', [tableArn(sessions)], [{ SessionId: { S: 'lease:desk-1' } }]),
        call('dynamodb:GetItem', [tableArn(sessions)], desk),
        call('dynamodb:Scan', [tableArn(sessions)]),
        call('dynamodb:PutItem', [tableArn(tokens)], [{ TokenHash: { S: 'h' } }]),
        call('secretsmanager:GetSecretValue', [SECRET]),
      ]),
    ).toEqual([]);
  });

  it('refuses another action, another table, another index, a key outside a LeadingKeys condition, another secret', async () => {
    expect(await denied(synth, resolver, [call('dynamodb:DeleteItem', [tableArn(sessions)])])).toEqual([`dynamodb:DeleteItem on ${tableArn(sessions)}`]);
    expect(await denied(synth, resolver, [call('dynamodb:GetItem', [tableArn('SomeoneElses')])])).toHaveLength(1);
    expect(await denied(synth, discovery, [call('dynamodb:Query', [`${tableArn(sessions)}/index/Other`])])).toHaveLength(1);
    expect(await denied(synth, portal, [call('dynamodb:PutItem', [tableArn(sessions)], [{ SessionId: { S: 'desk-1' } }])])).toHaveLength(1);
    expect(await denied(synth, portal, [call('dynamodb:UpdateItem', [tableArn(tokens)], [{ TokenHash: { S: 'h' } }])])).toHaveLength(1);
    expect(await denied(synth, discovery, [call('secretsmanager:GetSecretValue', [SECRET])])).toHaveLength(1);
    expect(await denied(synth, portal, [call('secretsmanager:GetSecretValue', [SECRET.replace('keys-AbCdEf', 'keys-extra-AbCdEf')])])).toHaveLength(1);
  });

  it("the resolver's role has none of the portal's grants: no Scan, no PutItem (lease or not), no secret", async () => {
    const refused = await denied(synth, resolver, [
      call('dynamodb:Scan', [tableArn(sessions)]),
      call('dynamodb:PutItem', [tableArn(sessions)], [{ SessionId: { S: 'lease:desk-1' } }]),
      call('dynamodb:PutItem', [tableArn(tokens)], [{ TokenHash: { S: 'h' } }]),
      call('secretsmanager:GetSecretValue', [SECRET]),
    ]);
    expect(refused).toHaveLength(4);
  });

  it('evaluates dynamodb:Attributes and dynamodb:ReturnValues: the verifier may write LastVerifiedAt on a session, nothing else', async () => {
    const update = (attributes: string[], returnValues?: string): AwsCall => ({
      ...call('dynamodb:UpdateItem', [tableArn(sessions)], [{ SessionId: { S: 'desk-1' } }]),
      attributes,
      ...(returnValues ? { returnValues } : {}),
    });
    expect(await denied(synth, resolver, [update(['SessionId', 'LastVerifiedAt'])])).toEqual([]);
    expect(await denied(synth, resolver, [update(['SessionId', 'LastVerifiedAt', 'DcvServerEndpoint'])])).toHaveLength(1);
    expect(await denied(synth, resolver, [update(['SessionId', 'LastVerifiedAt'], 'ALL_OLD')])).toHaveLength(1);
  });

  it('says so when the evaluator cannot read a call (an action AWS does not have)', async () => {
    const [finding] = await denied(synth, resolver, [call('dynamodb:GetItems', [tableArn(sessions)])]);
    expect(finding).toMatch(/^dynamodb:GetItems on .*: not evaluable/);
  });
});

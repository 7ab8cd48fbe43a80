import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Aspects } from 'aws-cdk-lib';
import { Annotations, Capture, Match, Template } from 'aws-cdk-lib/assertions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { DcvResolverStack, type DcvResolverStackProps } from '../../lib/dcv-resolver-stack';
import { PortalSettingsError } from '../../lib/portal-settings';
import { readStackContext } from '../../lib/stack-context';
import { nagFindings } from '../helpers/nag-findings';
import { functionAssetDir, type FunctionName } from '../../lib/function-assets';

/** Template-only tests: skip esbuild bundling of the function code (seconds per synth). */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
mkdirSync(join(ROOT, 'cdk.out'), { recursive: true });
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

type Json = Record<string, any>;

const GATEWAY = 'https://gateway.example.com:8443';
const NETWORK = { allowedSourceCidrs: ['0.0.0.0/0', '::/0'] } as const;
const COGNITO: DcvResolverStackProps = { ...NETWORK, portal: 'cognito', gatewayUrl: GATEWAY, pathPrefix: 's3cret' };
const OIDC: DcvResolverStackProps = {
  ...NETWORK,
  portal: 'oidc',
  gatewayUrl: GATEWAY,
  oidcIssuer: 'https://login.example.com/tenant/v2.0',
  oidcClientId: 'dcv-portal',
};

function synth(props: DcvResolverStackProps, options: { nag?: boolean; before?: (stack: DcvResolverStack) => void } = {}) {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-portal-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new DcvResolverStack(app, 'Portal', { ...props, env: { account: '123456789012', region: 'eu-west-1' } });
  if (options.nag) {
    Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true, logIgnores: true }));
    Aspects.of(app).add(new ServerlessChecks({ verbose: true, logIgnores: true }));
  }
  options.before?.(stack);
  // Template.fromStack synthesizes and refuses a template whose resources form a dependency cycle.
  return { stack, template: Template.fromStack(stack) };
}

const envOf = (stack: DcvResolverStack, template: Template, fn: IFunction): Json =>
  (template.toJSON().Resources[stack.getLogicalId(fn.node.defaultChild as never)] as Json).Properties.Environment.Variables;
const resolverEnv = (stack: DcvResolverStack, template: Template): Json => envOf(stack, template, stack.resolver);
/** The portal's own function's environment. */
const portalEnv = (stack: DcvResolverStack, template: Template): Json => envOf(stack, template, stack.portal!.function);

/** Every statement of a function role's policies. */
function statementsOf(stack: DcvResolverStack, template: Template, fn: IFunction): Json[] {
  const roleId = stack.getLogicalId(fn.role!.node.defaultChild as never);
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p as Json).Properties.Roles.some((r: Json) => r.Ref === roleId))
    .flatMap((p) => (p as Json).Properties.PolicyDocument.Statement as Json[]);
}
const resolverStatements = (stack: DcvResolverStack, template: Template): Json[] => statementsOf(stack, template, stack.resolver);
const portalStatements = (stack: DcvResolverStack, template: Template): Json[] => statementsOf(stack, template, stack.portal!.function);

describe('portal off (the default)', () => {
  it('adds no secret, no user pool, no PORTAL_ environment and no portal output', () => {
    const { stack, template } = synth(NETWORK);
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    template.resourceCountIs('AWS::Cognito::UserPool', 0);
    template.resourceCountIs('AWS::Cognito::UserPoolClient', 0);
    expect(Object.keys(resolverEnv(stack, template)).filter((k) => k.startsWith('PORTAL_'))).toEqual([]);
    expect(Object.keys(template.findOutputs('*')).filter((k) => /Portal|UserPool|Cognito/.test(k))).toEqual([]);
    const actions = resolverStatements(stack, template).flatMap((s) => [s.Action].flat());
    expect(actions).not.toContain('dynamodb:Scan');
    expect(actions).not.toContain('dynamodb:PutItem');
    expect(actions).not.toContain('secretsmanager:GetSecretValue');
    expect(stack.portal).toBeUndefined();
  });
});

describe("portal 'cognito'", () => {
  const { stack, template } = synth(COGNITO);
  const urlId = () => stack.getLogicalId(stack.portal!.functionUrl.node.defaultChild as never);
  const poolId = () => stack.getLogicalId(stack.portal!.userPool!.node.defaultChild as never);

  it('makes a user pool nobody signs up to, with strong passwords, TOTP MFA, email sign-in, retained', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 1);
    template.hasResource('AWS::Cognito::UserPool', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
        UsernameAttributes: ['email'],
        MfaConfiguration: 'OPTIONAL',
        EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
        Policies: {
          PasswordPolicy: Match.objectLike({
            MinimumLength: 12,
            RequireLowercase: true,
            RequireUppercase: true,
            RequireNumbers: true,
            RequireSymbols: true,
          }),
        },
      }),
    });
  });

  it('gives the pool a hosted domain: the stack name and the first part of the stack id by default', () => {
    template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      UserPoolId: { Ref: poolId() },
      Domain: {
        'Fn::Join': ['-', ['portal', { 'Fn::Select': [0, { 'Fn::Split': ['-', { 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] }] }] }]],
      },
    });
    // Reserved words (aws, amazon, cognito) are left out of the default, and so are the hyphens they leave.
    const outdir = mkdtempSync(join(tmpdir(), 'dcv-portal-'));
    outdirs.push(outdir);
    const named = new DcvResolverStack(new App({ outdir, context: NO_BUNDLING }), 'AWS-CognitoDesk-tops', COGNITO);
    Template.fromStack(named).hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['-', ['desk-tops', Match.anyValue()]] },
    });
    const custom = synth({ ...COGNITO, cognitoDomainPrefix: 'acme-desktops' });
    custom.template.hasResourceProperties('AWS::Cognito::UserPoolDomain', { Domain: 'acme-desktops' });
  });

  it("makes a public app client: no secret, code grant only, openid/email/profile, callback built from the portal's Function URL", () => {
    const callback = new Capture();
    const logout = new Capture();
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      UserPoolId: { Ref: poolId() },
      GenerateSecret: false,
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthScopes: Match.arrayEquals(['openid', 'email', 'profile']),
      SupportedIdentityProviders: ['COGNITO'],
      CallbackURLs: [callback],
      LogoutURLs: [logout],
    });
    const url = { 'Fn::GetAtt': [urlId(), 'FunctionUrl'] };
    // The portal's own Function URL (it ends in '/'), without the resolver's secret path prefix.
    expect(callback.asObject()).toEqual({ 'Fn::Join': ['', [url, 'portal/callback']] });
    expect(logout.asObject()).toEqual({ 'Fn::Join': ['', [url, 'portal']] });
    expect(JSON.stringify(template.findResources('AWS::Cognito::UserPoolClient'))).not.toContain('s3cret');
  });

  it('the app client: users write only display attributes, never a claim the portal matches on; no auth flow but refresh', () => {
    const client = Object.values(template.findResources('AWS::Cognito::UserPoolClient'))[0] as Json;
    // The hosted sign-in is the OAuth code flow; SRP, password and custom flows would hand out tokens with
    // aws.cognito.signin.user.admin (UpdateUserAttributes) to anyone holding the public client id.
    expect(client.Properties.ExplicitAuthFlows).toEqual(['ALLOW_REFRESH_TOKEN_AUTH']);
    // An absent or empty list is Cognito's default: every standard attribute writable.
    const writable = client.Properties.WriteAttributes as string[];
    expect([...writable].sort()).toEqual(['family_name', 'given_name', 'locale', 'middle_name', 'name', 'nickname', 'picture', 'zoneinfo']);
    for (const matched of ['email', 'email_verified', 'preferred_username', 'phone_number', 'phone_number_verified', 'profile', 'website']) {
      expect(writable).not.toContain(matched);
    }
    expect(writable.filter((a) => a.startsWith('custom:'))).toEqual([]);
    // No scope that would let the OAuth tokens themselves call UpdateUserAttributes.
    expect(client.Properties.AllowedOAuthScopes).not.toContain('aws.cognito.signin.user.admin');
    // Nothing named: the function gets no PORTAL_USER_CLAIMS (sub, verified e-mail and cognito:username only).
    expect(portalEnv(stack, template)).not.toHaveProperty('PORTAL_USER_CLAIMS');
  });

  it('oidcUserClaims: passed to the function, and a named attribute is no longer user-writable', () => {
    const named = synth({ ...COGNITO, oidcUserClaims: ['nickname', 'custom:employee'] });
    expect(portalEnv(named.stack, named.template).PORTAL_USER_CLAIMS).toBe('nickname,custom:employee');
    const client = Object.values(named.template.findResources('AWS::Cognito::UserPoolClient'))[0] as Json;
    expect([...client.Properties.WriteAttributes].sort()).toEqual(['family_name', 'given_name', 'locale', 'middle_name', 'name', 'picture', 'zoneinfo']);
  });

  it('keeps the cookie key and the client id in a secret with a literal name', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    const clientId = stack.getLogicalId(stack.portal!.userPoolClient!.node.defaultChild as never);
    const tmpl = new Capture();
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: 'Portal-dcv-portal-keys',
      GenerateSecretString: { GenerateStringKey: 'cookieKey', PasswordLength: 64, ExcludePunctuation: true, SecretStringTemplate: tmpl },
    });
    expect(tmpl.asObject()).toEqual({ 'Fn::Join': ['', ['{"clientId":"', { Ref: clientId }, '"}']] });
  });

  it("is its own function behind its own Function URL (AuthType NONE) and role, apart from the resolver's", () => {
    const fn = stack.portal!.function;
    expect(fn).not.toBe(stack.resolver);
    expect(fn.role).not.toBe(stack.resolver.role);
    template.resourceCountIs('AWS::Lambda::Url', 2);
    template.hasResourceProperties('AWS::Lambda::Url', {
      AuthType: 'NONE',
      TargetFunctionArn: { 'Fn::GetAtt': [stack.getLogicalId(fn.node.defaultChild as never), 'Arn'] },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: Match.absent(),
      Description: 'DCV self-service portal (GET /portal)',
      Handler: 'index.handler',
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
    });
    const env = portalEnv(stack, template);
    expect(env.TABLE_NAME).toEqual({ Ref: stack.getLogicalId(stack.table.node.defaultChild as never) });
    expect(env.TOKENS_TABLE_NAME).toEqual({ Ref: stack.getLogicalId(stack.tokensTable!.node.defaultChild as never) });
    // No allow-list by default (anyone), and never the resolver's prefix or list.
    expect(env).not.toHaveProperty('PORTAL_ALLOWED_SOURCE_CIDRS');
    expect(env).not.toHaveProperty('PATH_PREFIX');
    expect(env).not.toHaveProperty('ALLOWED_SOURCE_CIDRS');
    // The resolver keeps its prefix and list, and none of the portal's settings.
    expect(resolverEnv(stack, template)).toMatchObject({ PATH_PREFIX: 's3cret', ALLOWED_SOURCE_CIDRS: '0.0.0.0/0,::/0' });
    expect(Object.keys(resolverEnv(stack, template)).filter((k) => k.startsWith('PORTAL_'))).toEqual([]);
  });

  it("leaves the resolver's role GetItem on the sessions table and the verifier's token grants: no Scan, PutItem or secret", () => {
    const tableArn = { 'Fn::GetAtt': [stack.getLogicalId(stack.table.node.defaultChild as never), 'Arn'] };
    const tokensArn = { 'Fn::GetAtt': [stack.getLogicalId(stack.tokensTable!.node.defaultChild as never), 'Arn'] };
    const grants = resolverStatements(stack, template)
      .filter((s) => !JSON.stringify(s.Action).includes('logs:'))
      .map((s) => ({ Action: s.Action, Resource: s.Resource, Condition: s.Condition }));
    expect(grants).toEqual([
      { Action: 'dynamodb:GetItem', Resource: tableArn, Condition: undefined },
      { Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], Resource: tokensArn, Condition: undefined },
      // LastVerifiedAt (desktops on demand): that attribute and the key, nothing else.
      { Action: 'dynamodb:UpdateItem', Resource: tableArn, Condition: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['SessionId', 'LastVerifiedAt'] }, StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' } } },
    ]);
    const actions = resolverStatements(stack, template).flatMap((s) => [s.Action].flat());
    for (const action of ['dynamodb:Scan', 'dynamodb:PutItem', 'secretsmanager:GetSecretValue']) expect(actions).not.toContain(action);
  });

  it('tells the function the issuer, the secret by name, the gateway and the Cognito groups claim; no client id', () => {
    const env = portalEnv(stack, template);
    expect(env.PORTAL_ISSUER).toEqual({
      'Fn::Join': ['', ['https://cognito-idp.eu-west-1.', { Ref: 'AWS::URLSuffix' }, '/', { Ref: poolId() }]],
    });
    expect(env.PORTAL_SECRET_ID).toBe('Portal-dcv-portal-keys');
    expect(env.PORTAL_GATEWAY_URL).toBe(GATEWAY);
    expect(env.PORTAL_GROUPS_CLAIM).toBe('cognito:groups');
    expect(env).not.toHaveProperty('PORTAL_CLIENT_ID');
    expect(env).not.toHaveProperty('PORTAL_LEASE_SECONDS');
  });

  it('lets the function read exactly that secret, read and list sessions, write only lease items, and mint tokens', () => {
    const statements = portalStatements(stack, template);
    const tableArn = { 'Fn::GetAtt': [stack.getLogicalId(stack.table.node.defaultChild as never), 'Arn'] };
    const tokensArn = { 'Fn::GetAtt': [stack.getLogicalId(stack.tokensTable!.node.defaultChild as never), 'Arn'] };
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: 'secretsmanager:GetSecretValue',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':secretsmanager:eu-west-1:123456789012:secret:Portal-dcv-portal-keys-??????']] },
    });
    expect(statements).toContainEqual({ Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:Scan'], Resource: tableArn });
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: 'dynamodb:PutItem',
      Resource: tableArn,
      Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['lease:*'] } },
    });
    expect(statements).toContainEqual({ Effect: 'Allow', Action: 'dynamodb:PutItem', Resource: tokensArn });
    // No unconditional write on the sessions table.
    const sessionWrites = statements.filter(
      (s) => JSON.stringify(s.Resource) === JSON.stringify(tableArn) && [s.Action].flat().includes('dynamodb:PutItem'),
    );
    expect(sessionWrites.every((s) => s.Condition)).toBe(true);
  });

  it('Start and open: POWER_SIGNALS_DOCUMENT, start and SendCommand only on start-on-connect instances, only the stack document, the claim attribute only', () => {
    const env = portalEnv(stack, template);
    const documentId = stack.getLogicalId(stack.sessionResolver.power!.hostSignalsDocument.node.defaultChild as never);
    expect(env.POWER_SIGNALS_DOCUMENT).toEqual({ Ref: documentId });
    expect(env.TAG_PREFIX).toBe('dcv:');
    const statements = portalStatements(stack, template);
    const tableArn = { 'Fn::GetAtt': [stack.getLogicalId(stack.table.node.defaultChild as never), 'Arn'] };
    const byAction = (action: string) => statements.filter((st) => [st.Action].flat().includes(action));
    // Start only on instances tagged start-on-connect; never stop.
    expect(byAction('ec2:StartInstances')).toEqual([
      expect.objectContaining({ Resource: expect.objectContaining({ 'Fn::Join': expect.anything() }), Condition: { Null: { 'aws:ResourceTag/dcv:start-on-connect': 'false' } } }),
    ]);
    expect(byAction('ec2:StopInstances')).toEqual([]);
    // SendCommand: the stack's document, and instances tagged start-on-connect; never AWS-RunShellScript.
    const send = byAction('ssm:SendCommand');
    expect(send).toHaveLength(2);
    expect(JSON.stringify(send.find((st) => !st.Condition)!.Resource)).toContain(`"Ref":"${documentId}"`);
    expect(send.find((st) => st.Condition)!.Condition).toEqual({ Null: { 'ssm:resourceTag/dcv:start-on-connect': 'false' } });
    expect(JSON.stringify(statements)).not.toContain('AWS-RunShellScript');
    // The claim: PowerStartAt (and the key and InstanceId it is conditional on), nothing returned.
    expect(byAction('dynamodb:UpdateItem')).toEqual([
      {
        Effect: 'Allow',
        Action: 'dynamodb:UpdateItem',
        Resource: tableArn,
        Condition: {
          'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['SessionId', 'InstanceId', 'PowerStartAt'] },
          StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
        },
      },
    ]);
    // An instance's items through the InstanceId index only; no item writes beyond leases.
    expect(byAction('dynamodb:Query')).toEqual([
      { Effect: 'Allow', Action: 'dynamodb:Query', Resource: { 'Fn::Join': ['', [tableArn, '/index/ByInstanceId']] } },
    ]);
    expect(byAction('dynamodb:DeleteItem')).toEqual([]);
  });

  it('Start and open is left out with the power pass (desktopPower: false): no EC2, SSM or claim rights', () => {
    const off = synth({ ...COGNITO, desktopPower: false });
    const statements = portalStatements(off.stack, off.template);
    expect(JSON.stringify(statements)).not.toMatch(/"(ec2|ssm):|dynamodb:UpdateItem|dynamodb:Query/);
    expect(portalEnv(off.stack, off.template).POWER_SIGNALS_DOCUMENT).toBeUndefined();
  });

  it('deploys without a dependency cycle; handing the function the client id directly would make one', () => {
    expect(template.toJSON().Resources).toBeDefined(); // synthesized above, so no cycle
    // The check is real: the obvious wiring (client id in the environment) closes the loop
    // function → client → Function URL → function, and synthesis refuses it.
    const naive = () =>
      synth(COGNITO, { before: (s) => s.portal!.function.addEnvironment('PORTAL_CLIENT_ID', s.portal!.userPoolClient!.userPoolClientId) });
    expect(naive).toThrow(/dependency cycle: PortalFunction\w+ -> PortalUserPoolPortalClient\w+ -> PortalFunctionFunctionUrl\w+ -> PortalFunction/);
    // So would granting by the secret's ARN: the function depends on its role's policy, the policy on the
    // secret, the secret (its template holds the client id) on the client.
    const grant = () => synth(COGNITO, { before: (s) => s.portal!.secret.grantRead(s.portal!.function) });
    expect(grant).toThrow(/dependency cycle: .*PortalSecret\w+ -> PortalUserPoolPortalClient/);
  });

  it('has no reference from the function or its role to the app client or the secret (that would be a cycle)', () => {
    const resources = template.toJSON().Resources as Json;
    const fn = JSON.stringify(resources[stack.getLogicalId(stack.portal!.function.node.defaultChild as never)]);
    const policies = JSON.stringify(portalStatements(stack, template));
    for (const construct of [stack.portal!.userPoolClient!, stack.portal!.secret]) {
      const id = stack.getLogicalId(construct.node.defaultChild as never);
      expect(fn).not.toContain(id);
      expect(policies).not.toContain(id);
    }
  });

  it('outputs the portal URL, the callback URL, the user pool id and the hosted domain', () => {
    template.hasOutput('PortalUrl', { Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [urlId(), 'FunctionUrl'] }, 'portal']] } });
    template.hasOutput('PortalCallbackUrl', { Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [urlId(), 'FunctionUrl'] }, 'portal/callback']] } });
    template.hasOutput('UserPoolId', { Value: { Ref: poolId() } });
    template.hasOutput('CognitoSignInDomain', { Value: Match.objectLike({ 'Fn::Join': Match.anyValue() }) });
    expect(JSON.stringify(template.findOutputs('CognitoSignInDomain'))).toContain('.auth.eu-west-1.amazoncognito.com');
  });
});

describe("portal 'oidc'", () => {
  it('makes no user pool; the function gets the issuer, the client id and the groups claim', () => {
    const { stack, template } = synth({ ...OIDC, oidcGroupsClaim: 'https://example.com/groups', portalLeaseSeconds: 3600 });
    template.resourceCountIs('AWS::Cognito::UserPool', 0);
    template.resourceCountIs('AWS::Cognito::UserPoolClient', 0);
    const env = portalEnv(stack, template);
    expect(env).toMatchObject({
      PORTAL_ISSUER: 'https://login.example.com/tenant/v2.0',
      PORTAL_CLIENT_ID: 'dcv-portal',
      PORTAL_SECRET_ID: 'Portal-dcv-portal-keys',
      PORTAL_GATEWAY_URL: GATEWAY,
      PORTAL_GROUPS_CLAIM: 'https://example.com/groups',
      PORTAL_LEASE_SECONDS: '3600',
    });
    // Only the cookie key in the secret.
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: 'Portal-dcv-portal-keys',
      GenerateSecretString: Match.objectLike({ GenerateStringKey: 'cookieKey', SecretStringTemplate: '{}' }),
    });
    expect(Object.keys(template.findOutputs('*'))).toEqual(expect.arrayContaining(['PortalUrl', 'PortalCallbackUrl']));
    expect(Object.keys(template.findOutputs('*'))).not.toContain('UserPoolId');
  });

  it("defaults the groups claim to 'groups' and leaves the scopes to the runtime's default", () => {
    const { stack, template } = synth(OIDC);
    expect(portalEnv(stack, template).PORTAL_GROUPS_CLAIM).toBe('groups');
    expect(portalEnv(stack, template).PORTAL_SCOPES).toBeUndefined();
  });

  it('passes oidcUserClaims (e.g. Entra ID\'s upn) as PORTAL_USER_CLAIMS, trimmed; none by default', () => {
    const { stack, template } = synth({ ...OIDC, oidcUserClaims: [' upn', 'oid ', ''] });
    expect(portalEnv(stack, template).PORTAL_USER_CLAIMS).toBe('upn,oid');
    const plain = synth(OIDC);
    expect(portalEnv(plain.stack, plain.template)).not.toHaveProperty('PORTAL_USER_CLAIMS');
  });

  it('passes oidcScopes (e.g. Okta, which sends groups only for a groups scope), spaces normalised', () => {
    const { stack, template } = synth({ ...OIDC, oidcScopes: ' openid  email profile groups ' });
    expect(portalEnv(stack, template).PORTAL_SCOPES).toBe('openid email profile groups');
  });

  it("portalAllowedSourceCidrs goes to the portal's function only; the resolver keeps allowedSourceCidrs", () => {
    const { stack, template } = synth({ ...OIDC, allowedSourceCidrs: ['198.51.100.10/32'], portalAllowedSourceCidrs: ['192.0.2.0/24', ' 2001:db8::/48'] });
    expect(portalEnv(stack, template).PORTAL_ALLOWED_SOURCE_CIDRS).toBe('192.0.2.0/24,2001:db8::/48');
    expect(portalEnv(stack, template)).not.toHaveProperty('ALLOWED_SOURCE_CIDRS');
    expect(resolverEnv(stack, template).ALLOWED_SOURCE_CIDRS).toBe('198.51.100.10/32');
    expect(resolverEnv(stack, template)).not.toHaveProperty('PORTAL_ALLOWED_SOURCE_CIDRS');
  });

  it("works with accessMode 'iam': the resolver's URL is AWS_IAM, the portal's NONE", () => {
    const { stack, template } = synth({
      portal: 'oidc', gatewayUrl: GATEWAY, oidcIssuer: 'https://login.example.com', oidcClientId: 'x',
      accessMode: 'iam', invokerRoleArn: 'arn:aws:iam::123456789012:role/Gw',
    });
    const urls = Object.values(template.findResources('AWS::Lambda::Url')).map((u) => [
      (u as Json).Properties.TargetFunctionArn['Fn::GetAtt'][0],
      (u as Json).Properties.AuthType,
    ]);
    expect(urls.sort()).toEqual(
      [
        [stack.getLogicalId(stack.portal!.function.node.defaultChild as never), 'NONE'],
        [stack.getLogicalId(stack.resolver.node.defaultChild as never), 'AWS_IAM'],
      ].sort(),
    );
  });
});

describe('validation', () => {
  it.each<[string, DcvResolverStackProps, RegExp]>([
    ['unknown mode', { ...NETWORK, portal: 'saml', gatewayUrl: GATEWAY }, /portal must be 'off', 'cognito' or 'oidc', not 'saml'/],
    ['no gatewayUrl', { ...NETWORK, portal: 'cognito' }, /portal 'cognito' needs gatewayUrl/],
    ['http gatewayUrl', { ...COGNITO, gatewayUrl: 'http://gateway.example.com' }, /gatewayUrl must be an https URL/],
    ['gatewayUrl not a URL', { ...COGNITO, gatewayUrl: 'gateway' }, /gatewayUrl must be an https URL/],
    ['gatewayUrl with a query', { ...COGNITO, gatewayUrl: 'https://g.example.com/?a=1' }, /gatewayUrl must be an https URL without credentials, query or fragment/],
    ['oidc without issuer', { ...OIDC, oidcIssuer: undefined }, /portal 'oidc' needs oidcIssuer/],
    ['http issuer', { ...OIDC, oidcIssuer: 'http://login.example.com' }, /oidcIssuer must be an https URL/],
    ['oidc without client id', { ...OIDC, oidcClientId: ' ' }, /portal 'oidc' needs oidcClientId/],
    ['client id with a space', { ...OIDC, oidcClientId: 'a b' }, /oidcClientId must be the client id registered at the issuer/],
    ['issuer in cognito mode', { ...COGNITO, oidcIssuer: 'https://login.example.com' }, /oidcIssuer is only used with portal 'oidc'/],
    ['domain prefix in oidc mode', { ...OIDC, cognitoDomainPrefix: 'acme' }, /cognitoDomainPrefix is only used with portal 'cognito'/],
    ['scopes without openid', { ...OIDC, oidcScopes: 'email groups' }, /oidcScopes must be space-separated scope names including 'openid'/],
    ['scopes in cognito mode', { ...COGNITO, oidcScopes: 'openid groups' }, /oidcScopes is only used with portal 'oidc'/],
    ['gatewayUrl with portal off', { ...NETWORK, gatewayUrl: GATEWAY }, /gatewayUrl is only used with portal 'cognito' or 'oidc'/],
    ['user claims with portal off', { ...NETWORK, oidcUserClaims: ['upn'] }, /oidcUserClaims is only used with portal 'cognito' or 'oidc'/],
    ['the groups claim as a user claim', { ...OIDC, oidcGroupsClaim: 'roles', oidcUserClaims: ['roles'] }, /oidcUserClaims 'roles' is the groups claim/],
    ["Cognito's groups claim as a user claim", { ...COGNITO, oidcUserClaims: ['cognito:groups'] }, /oidcUserClaims 'cognito:groups' is the groups claim/],
    ['a user claim about the token', { ...OIDC, oidcUserClaims: ['iss'] }, /oidcUserClaims 'iss' describes the token or the tenant, not the person/],
    ['a user claim with a space', { ...OIDC, oidcUserClaims: ['up n'] }, /oidcUserClaims must be claim names/],
    [
      'every user-writable attribute named (the client would have to write none, which Cognito reads as all)',
      { ...COGNITO, oidcUserClaims: ['name', 'given_name', 'family_name', 'middle_name', 'nickname', 'locale', 'zoneinfo', 'picture'] },
      /oidcUserClaims names every attribute users may write/,
    ],
    ['lease too short', { ...COGNITO, portalLeaseSeconds: 59 }, /portalLeaseSeconds must be an integer from 60 to 604800, not '59'/],
    ['lease not an integer', { ...COGNITO, portalLeaseSeconds: 90.5 }, /portalLeaseSeconds must be an integer/],
    ['domain prefix with capitals', { ...COGNITO, cognitoDomainPrefix: 'Acme' }, /cognitoDomainPrefix must be 1 to 63 lowercase letters/],
    ['domain prefix with a reserved word', { ...COGNITO, cognitoDomainPrefix: 'my-cognito-login' }, /must not contain 'aws', 'amazon' or 'cognito'/],
    ['domain prefix ending in a hyphen', { ...COGNITO, cognitoDomainPrefix: 'acme-' }, /cognitoDomainPrefix must be/],
    ['verifier off', { ...COGNITO, verifier: false }, /portal 'cognito' needs the token verifier/],
    ['a portal CIDR that is not one', { ...COGNITO, portalAllowedSourceCidrs: ['10.0.0.0/33'] }, /portalAllowedSourceCidrs: /],
    ['portalAllowedSourceCidrs with portal off', { ...NETWORK, portalAllowedSourceCidrs: ['192.0.2.0/24'] }, /portalAllowedSourceCidrs is only used with portal 'cognito' or 'oidc'/],
  ])('refuses %s with a PortalSettingsError naming the key', (_name, props, message) => {
    expect(() => synth(props)).toThrow(PortalSettingsError);
    expect(() => synth(props)).toThrow(message);
  });

  it('the CDK context: the same keys, validated before any construct is built', () => {
    const context = (values: Record<string, unknown>) => (key: string) => values[key];
    const base = { allowAnySource: 'true' };
    expect(readStackContext(context(base)).portal).toBeUndefined();
    const read = readStackContext(
      context({ ...base, portal: 'oidc', gatewayUrl: GATEWAY, oidcIssuer: 'https://login.example.com', oidcClientId: 'c', portalLeaseSeconds: '7200', oidcGroupsClaim: 'roles' }),
    );
    expect(read).toMatchObject({ portal: 'oidc', gatewayUrl: GATEWAY, oidcIssuer: 'https://login.example.com', oidcClientId: 'c', portalLeaseSeconds: 7200, oidcGroupsClaim: 'roles' });
    expect(readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, cognitoDomainPrefix: 'acme' })).cognitoDomainPrefix).toBe('acme');
    // A list: comma-separated with -c, or a JSON array in cdk.json.
    expect(readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, oidcUserClaims: 'nickname, custom:employee' })).oidcUserClaims).toEqual(['nickname', 'custom:employee']);
    expect(readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, oidcUserClaims: ['nickname'] })).oidcUserClaims).toEqual(['nickname']);
    expect(() => readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, oidcUserClaims: 'email_verified' }))).toThrow(/oidcUserClaims 'email_verified' is not a name/);
    expect(() => readStackContext(context({ ...base, portal: 'cognito' }))).toThrow(/needs gatewayUrl/);
    expect(() => readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, portalLeaseSeconds: 'soon' }))).toThrow(
      /context 'portalLeaseSeconds' must be an integer from 60 to 604800, not 'soon'/,
    );
    expect(
      readStackContext(context({ accessMode: 'iam', invokerRoleArn: 'arn:aws:iam::123456789012:role/Gw', portal: 'cognito', gatewayUrl: GATEWAY })).portal,
    ).toBe('cognito');
    expect(readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, portalAllowedSourceCidrs: '192.0.2.0/24, 198.51.100.0/24' })).portalAllowedSourceCidrs).toEqual([
      '192.0.2.0/24',
      '198.51.100.0/24',
    ]);
    expect(() => readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, portalAllowedSourceCidrs: 'nope' }))).toThrow(/portalAllowedSourceCidrs: /);
    expect(() => readStackContext(context({ ...base, portal: 'cognito', gatewayUrl: GATEWAY, verifier: 'false' }))).toThrow(/needs the token verifier/);
  });

  it('refuses a second portal in the same stack (the secret name would collide)', async () => {
    const { DcvSessionResolver } = await import('../../lib/dcv-session-resolver');
    const outdir = mkdtempSync(join(tmpdir(), 'dcv-portal-'));
    outdirs.push(outdir);
    const { stack } = { stack: new DcvResolverStack(new App({ outdir, context: NO_BUNDLING }), 'Twice', COGNITO) };
    expect(() => new DcvSessionResolver(stack, 'Second', OIDC)).toThrow(/a stack holds one portal: the secret name 'Twice-dcv-portal-keys'/);
  });
});

describe("the portal's code stays out of the resolver bundle", () => {
  it('the resolver asset has no portal, OpenID client or Secrets Manager client; the portal asset bundles them', () => {
    const code = (name: FunctionName, bundleAwsSdk: boolean) => readFileSync(join(functionAssetDir(name, bundleAwsSdk), 'index.mjs'), 'utf8');
    // Booleans and sizes, not the code: a failure should not print 300 kB of minified JavaScript.
    for (const marker of ['client-secrets-manager', 'SecretsManagerClient', 'PORTAL_ISSUER', 'openid-client', 'dcv_portal']) {
      expect(code('resolver', true).includes(marker), marker).toBe(false);
    }
    expect(code('resolver', true).length).toBeLessThan(60_000);
    expect(code('portal', true).includes('SecretsManagerClient')).toBe(true);
    expect(code('portal', true).includes('PORTAL_ISSUER')).toBe(true);
    expect(code('portal', true)).not.toMatch(/from\s*["']@aws-sdk\//);
    // bundleAwsSdk (the default) inlines the rest of the SDK; off, it is imported from the runtime.
    expect(code('discovery', true)).not.toMatch(/from\s*["']@aws-sdk\//);
    expect(code('discovery', true).length).toBeGreaterThan(500_000);
    expect(code('discovery', false)).toMatch(/from\s*["']@aws-sdk\/client-ec2["']/);
  });
});

describe.each<[string, DcvResolverStackProps]>([
  ['cognito', COGNITO],
  ['oidc', OIDC],
])('cdk-nag with portal %s', (_mode, props) => {
  it('leaves no unacknowledged AwsSolutions or Serverless finding, and the portal findings were seen', () => {
    const { stack } = synth(props, { nag: true });
    const annotations = Annotations.fromStack(stack);
    const findings = nagFindings(stack);
    expect(findings).toEqual([]);
    // The checks ran on the portal: its acknowledged secret finding was reported as ignored.
    expect(annotations.findInfo('*', Match.stringLikeRegexp('AwsSolutions-SMG4')).length).toBeGreaterThan(0);
  });
});

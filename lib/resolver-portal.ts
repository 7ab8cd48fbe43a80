import { ArnFormat, Aws, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  AccountRecovery,
  ClientAttributes,
  Mfa,
  OAuthScope,
  UserPool,
  UserPoolClientIdentityProvider,
  type UserPoolClient,
  type UserPoolDomain,
} from 'aws-cdk-lib/aws-cognito';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { FunctionUrlAuthType, type FunctionUrl } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CfnSecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { TagName, validateTagPrefix } from '../lambda/core/discovery/tag-parser.js';
import { INSTANCE_INDEX_NAME } from '../lambda/core/discovery/table-index.js';
import { Attr } from '../lambda/core/session-record.js';
import { DcvFunction } from './dcv-function.js';
import type { HostSignalsDocument } from './host-signals-document.js';
import { acknowledgePortalFindings } from './nag-acknowledgements.js';
import { PortalSettingsError, type PortalSettings } from './portal-settings.js';
import { attributeUpdateGrant, taggedInstancesGrant } from './scoped-grants.js';

export interface ResolverPortalProps {
  readonly settings: PortalSettings;
  /** Sessions: read one at a time (Connect), listed (Scan) and, for pool placement, written only under `lease:*` keys. */
  readonly table: Table;
  /** Connect tokens the portal mints (PutItem). */
  readonly tokensTable: Table;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** @default true */
  readonly bundleAwsSdk?: boolean;
  /** The portal function's reserved concurrency (a cost cap, like the resolver's). @default - unreserved */
  readonly reservedConcurrency?: number;
}

/**
 * The self-service portal: its own function (lambda/handlers/portal.ts) behind its own Function URL
 * (AuthType NONE: browsers cannot sign) and role, the Secrets Manager secret with the cookie signing key
 * (and, in `cognito` mode, the app client id), and a Cognito user pool with its hosted sign-in and public
 * app client (`cognito` mode). Apart from the resolver, so the portal's users never learn the resolver's
 * path prefix nor need to be inside its allow-list, and the resolver's role keeps only what it needs.
 *
 * The function refers to the secret by its literal NAME and to nothing of the app client: the client's
 * callback URL is built from the Function URL, which refers to the function, so any reference from the
 * function (its environment, or its role's policy, which the function depends on) back to the client or
 * to the secret that holds the client id would be a CloudFormation dependency cycle.
 */
export class ResolverPortal extends Construct {
  /** The portal's function: GET /portal … only. */
  readonly function: DcvFunction;
  /** Its Function URL (AuthType NONE; callers checked against `portalAllowedSourceCidrs` in the handler). */
  readonly functionUrl: FunctionUrl;
  /** `<Function URL>portal`: where users go, no path prefix. May be a CDK token. */
  readonly portalUrl: string;
  /** The redirect URI registered at the identity provider: `<portalUrl>/callback`. */
  readonly callbackUrl: string;
  /** The secret's literal name (PORTAL_SECRET_ID). */
  readonly secretName: string;
  readonly secret: Secret;
  /** The OpenID issuer (PORTAL_ISSUER). May be a CDK token. */
  readonly issuer: string;
  /** `cognito` mode only. */
  readonly userPool?: UserPool;
  readonly userPoolClient?: UserPoolClient;
  readonly userPoolDomain?: UserPoolDomain;

  constructor(scope: Construct, id: string, props: ResolverPortalProps) {
    super(scope, id);
    const { settings } = props;
    const stack = Stack.of(this);

    const fn = new DcvFunction(this, 'Function', {
      bundle: 'portal',
      description: 'DCV self-service portal (GET /portal)',
      logRetention: props.logRetention,
      bundleAwsSdk: props.bundleAwsSdk,
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment: { TABLE_NAME: props.table.tableName, TOKENS_TABLE_NAME: props.tokensTable.tableName },
    });
    this.function = fn;
    // aws-cdk-lib emits both resource-policy statements a NONE URL needs (contract section 3).
    this.functionUrl = fn.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
    if (settings.allowedSourceCidrs) fn.addEnvironment('PORTAL_ALLOWED_SOURCE_CIDRS', settings.allowedSourceCidrs.join(','));

    // Function URLs end in '/'; the portal has no path prefix (every user holds its address).
    this.portalUrl = Fn.join('', [this.functionUrl.url, 'portal']);
    this.callbackUrl = Fn.join('', [this.functionUrl.url, 'portal/callback']);

    // A literal name (see the class comment). One portal per stack: a second would take the same name.
    // Not ending in '-' + six characters: Secrets Manager would read those as its own ARN suffix.
    this.secretName = `${stack.stackName}-dcv-portal-keys`;
    const taken = stack.node.findAll().some((c) => c instanceof CfnSecret && c.name === this.secretName);
    if (taken) {
      throw new PortalSettingsError(`a stack holds one portal: the secret name '${this.secretName}' is already used in stack '${stack.stackName}'`);
    }

    let secretTemplate = '{}';
    if (settings.mode === 'cognito') {
      const cognito = this.cognitoSignIn(settings);
      this.userPool = cognito.pool;
      this.userPoolClient = cognito.client;
      this.userPoolDomain = cognito.domain;
      // The app client id travels through the secret, not the environment (no function → client reference).
      secretTemplate = stack.toJsonString({ clientId: cognito.client.userPoolClientId });
      this.issuer = Fn.join('', ['https://cognito-idp.', stack.region, '.', stack.urlSuffix, '/', cognito.pool.userPoolId]);
    } else {
      this.issuer = settings.oidcIssuer!;
    }

    this.secret = new Secret(this, 'Secret', {
      secretName: this.secretName,
      description: 'DCV portal: the session cookie signing key (cookieKey) and, with Cognito, the app client id',
      generateSecretString: {
        secretStringTemplate: secretTemplate,
        generateStringKey: 'cookieKey',
        // 64 letters and digits: ~380 bits for HMAC-SHA256, and nothing a JSON or shell reader trips on.
        passwordLength: 64,
        excludePunctuation: true,
      },
    });

    fn.addEnvironment('PORTAL_ISSUER', this.issuer);
    if (settings.mode === 'oidc') fn.addEnvironment('PORTAL_CLIENT_ID', settings.oidcClientId!);
    fn.addEnvironment('PORTAL_SECRET_ID', this.secretName);
    fn.addEnvironment('PORTAL_GATEWAY_URL', settings.gatewayUrl);
    fn.addEnvironment('PORTAL_GROUPS_CLAIM', settings.groupsClaim);
    if (settings.scopes !== undefined) fn.addEnvironment('PORTAL_SCOPES', settings.scopes);
    if (settings.leaseSeconds !== undefined) fn.addEnvironment('PORTAL_LEASE_SECONDS', String(settings.leaseSeconds));
    if (settings.userClaims !== undefined) fn.addEnvironment('PORTAL_USER_CLAIMS', settings.userClaims.join(','));

    // Secrets Manager appends '-' and six random characters to the name; '??????' matches exactly those,
    // so a secret whose name merely starts with ours is not readable.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [
          stack.formatArn({
            service: 'secretsmanager',
            resource: 'secret',
            resourceName: `${this.secretName}-??????`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    // Connect reads the chosen session; the list reads every session the user may open; placement writes
    // lease items and nothing else.
    fn.addToRolePolicy(new PolicyStatement({ actions: ['dynamodb:GetItem', 'dynamodb:Scan'], resources: [props.table.tableArn] }));
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:PutItem'],
        resources: [props.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['lease:*'] } },
      }),
    );
    fn.addToRolePolicy(new PolicyStatement({ actions: ['dynamodb:PutItem'], resources: [props.tokensTable.tableArn] }));

    acknowledgePortalFindings(this);
  }

  /**
   * Start and open (docs/portal.md): the function may start instances tagged `<prefix>start-on-connect` and
   * nothing else, read their state, ask their DCV through the stack's host-signals document (only that
   * document, only on such instances), find an instance's items through the InstanceId index, and claim a
   * start (`PowerStartAt`, the power pass's claim) with a conditional UpdateItem of that attribute only.
   * It never writes session items otherwise: the stack's discovery brings them up to date once the instance
   * runs.
   */
  enableStartAndOpen(props: { readonly table: Table; readonly tagPrefix: string; readonly hostSignalsDocument: HostSignalsDocument }): void {
    const fn = this.function;
    const tagKey = `${validateTagPrefix(props.tagPrefix)}${TagName.startOnConnect}`;
    const document = props.hostSignalsDocument;
    fn.addEnvironment('POWER_SIGNALS_DOCUMENT', document.documentName);
    fn.addEnvironment('TAG_PREFIX', props.tagPrefix);
    // DescribeInstances and the Run Command result reads support no resource-level permissions.
    fn.addToRolePolicy(new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }));
    fn.addToRolePolicy(taggedInstancesGrant(this, ['ec2:StartInstances'], tagKey, 'aws:ResourceTag'));
    fn.addToRolePolicy(new PolicyStatement({ actions: ['ssm:SendCommand'], resources: [document.documentArn] }));
    fn.addToRolePolicy(taggedInstancesGrant(this, ['ssm:SendCommand'], tagKey, 'ssm:resourceTag'));
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['ssm:ListCommandInvocations', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation'], resources: ['*'] }),
    );
    fn.addToRolePolicy(new PolicyStatement({ actions: ['dynamodb:Query'], resources: [`${props.table.tableArn}/index/${INSTANCE_INDEX_NAME}`] }));
    fn.addToRolePolicy(attributeUpdateGrant(props.table, [Attr.SessionId, Attr.InstanceId, Attr.PowerStartAt]));
    NagSuppressions.addResourceSuppressions(
      fn.role!,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Start and open: ec2:DescribeInstances and the Run Command result reads (ListCommandInvocations, ' +
            'GetCommandInvocation, DescribeInstanceInformation) have no resource-level permissions; StartInstances and ' +
            'SendCommand name instance/* because the instances are not known at deploy time, each requiring the ' +
            'start-on-connect tag; the InstanceId index is named exactly.',
          appliesTo: ['Resource::*', { regex: '/^Resource::arn:<AWS::Partition>:ec2:.+:instance\\/\\*$/' }],
        },
      ],
      true,
    );
  }

  private cognitoSignIn(settings: PortalSettings): { pool: UserPool; client: UserPoolClient; domain: UserPoolDomain } {
    const pool = new UserPool(this, 'UserPool', {
      // Operators add users (or federate a provider into the pool); nobody signs themselves up.
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      signInCaseSensitive: false,
      standardAttributes: { email: { required: true, mutable: true } },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
      },
      mfa: Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: AccountRecovery.EMAIL_ONLY,
      // The users (and their MFA devices) outlive the stack, like the sessions table.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const domain = pool.addDomain('Domain', {
      cognitoDomain: { domainPrefix: settings.cognitoDomainPrefix ?? defaultDomainPrefix(Stack.of(this).stackName) },
    });
    const client = pool.addClient('PortalClient', {
      // A public client: the portal uses the code flow with PKCE, and a secret in a Lambda env is no secret.
      generateSecret: false,
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [OAuthScope.OPENID, OAuthScope.EMAIL, OAuthScope.PROFILE],
        callbackUrls: [this.callbackUrl],
        logoutUrls: [this.portalUrl],
      },
      supportedIdentityProviders: [UserPoolClientIdentityProvider.COGNITO],
      preventUserExistenceErrors: true,
      // The hosted sign-in is the OAuth code flow, which needs no explicit auth flow. Left unset, Cognito
      // allows SRP and custom auth with this public client id: tokens with aws.cognito.signin.user.admin,
      // with which a user may rewrite their own attributes. Every flag false: only ALLOW_REFRESH_TOKEN_AUTH,
      // which CDK always adds (and which only renews tokens of the scopes granted).
      authFlows: { userPassword: false, userSrp: false, custom: false, adminUserPassword: false, user: false },
      // Users may change only profile attributes the portal never reads. An empty list would mean every
      // standard attribute (Cognito's default), so the list must never be empty.
      writeAttributes: userWritableAttributes(settings.userClaims ?? []),
    });
    return { pool, client, domain };
  }
}

/**
 * Standard attributes a user may write through the app client: display details only. Never `email`
 * (`email_verified` with it), `preferred_username`, `phone_number` or any custom attribute, nor any
 * claim the operator named (oidcUserClaims): those are names the portal matches on. (`cognito:username`
 * and `cognito:groups` are not attributes; nobody writes them through a client.)
 */
const COGNITO_USER_WRITABLE = ['name', 'given_name', 'family_name', 'middle_name', 'nickname', 'locale', 'zoneinfo', 'picture'] as const;

function userWritableAttributes(namedClaims: readonly string[]): ClientAttributes {
  const writable = COGNITO_USER_WRITABLE.filter((attribute) => !namedClaims.includes(attribute));
  if (writable.length === 0) {
    throw new PortalSettingsError(`oidcUserClaims names every attribute users may write (${COGNITO_USER_WRITABLE.join(', ')}); name fewer`);
  }
  const mask: Record<string, boolean> = {};
  for (const attribute of writable) mask[STANDARD_ATTRIBUTE_KEY[attribute]] = true;
  return new ClientAttributes().withStandardAttributes(mask);
}

/** CDK's StandardAttributesMask keys for the OIDC attribute names above. */
const STANDARD_ATTRIBUTE_KEY: Record<(typeof COGNITO_USER_WRITABLE)[number], string> = {
  name: 'fullname',
  given_name: 'givenName',
  family_name: 'familyName',
  middle_name: 'middleName',
  nickname: 'nickname',
  locale: 'locale',
  zoneinfo: 'timezone',
  picture: 'profilePicture',
};

/**
 * `<stack name>-<first 8 hex digits of the stack's id>`: readable, and unique across accounts (hosted
 * domain prefixes are global per region) without putting the account id in the sign-in address.
 */
function defaultDomainPrefix(stackName: string): string {
  let name = stackName.toLowerCase();
  // Until none is left: removing one reserved word can join the letters around it into another.
  while (/aws|amazon|cognito/.test(name)) name = name.replace(/aws|amazon|cognito/g, '');
  const readable =
    name
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/-+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 54)
      .replace(/-$/, '') || 'dcv-portal';
  const stackGuid = Fn.select(2, Fn.split('/', Aws.STACK_ID));
  return Fn.join('-', [readable, Fn.select(0, Fn.split('-', stackGuid))]);
}

import { Duration } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { DEFAULT_TAG_PREFIX, TagName, validateTagPrefix } from '../lambda/core/discovery/tag-parser.js';
import type { RuntimeAttribute } from '../lambda/core/power/power-plan.js';
import { Attr } from '../lambda/core/session-record.js';
import { DcvFunction } from './dcv-function.js';
import type { HostSignalsDocument } from './host-signals-document.js';
import { attributeUpdateGrant, taggedInstancesGrant } from './scoped-grants.js';

export interface DesktopPowerProps {
  /** The session table discovery fills: the pass reads it and writes only its power attributes. */
  readonly table: Table;
  /** The tag prefix discovery uses (`<prefix>auto-stop`, `<prefix>schedule`, `<prefix>start-on-connect`). @default 'dcv:' */
  readonly tagPrefix?: string;
  /** The SSM document that reads a host's idle signals: the only command this function may send. */
  readonly hostSignalsDocument: HostSignalsDocument;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** Deploy the bundle that carries its own AWS SDK (false: the one that uses the runtime's). @default true */
  readonly bundleAwsSdk?: boolean;
}

/** What the pass's UpdateItems name: the key, the InstanceId they are conditional on, the runtime attribute. */
const RUNTIME_ATTRIBUTES: Record<RuntimeAttribute, true> = { PowerStartAt: true, PowerStopAt: true, ScheduleStartAt: true, IdleSince: true };
export const POWER_WRITE_ATTRIBUTES: readonly string[] = [Attr.SessionId, Attr.InstanceId, ...Object.keys(RUNTIME_ATTRIBUTES)];

/** A pass runs every minute and must end before the next one is due. */
export const POWER_TIMEOUT = Duration.seconds(60);
/**
 * From the bench (`npm run bench -- --only power`): a pass over 10,000 desktops took 3.5 s of CPU, 63 MiB of
 * peak heap and 200 MiB RSS on a 2-vCPU machine. 512 MB holds that more than twice, and its CPU share (about
 * 0.3 vCPU) makes it some 12 s of the 50 s a pass may take.
 */
export const POWER_MEMORY_MB = 512;

/**
 * Desktops on demand (docs/on-demand.md): a function that runs one power pass (lambda/power/power-runner.ts)
 * every minute. It stops an instance tagged `<prefix>auto-stop` once nobody has been connected for that long
 * (read on the host with the stack's HostSignalsDocument), and starts and stops instances tagged
 * `<prefix>schedule` at their windows. (Start and open, for `<prefix>start-on-connect`, is the portal's: its
 * own role may start those; this one may only read their hosts, to see a start through.)
 *
 * Its role can start and stop only instances carrying one of those tags, send only that document (and only
 * to such instances), and scan and update only the session table. Reserved concurrency 1: a pass never
 * overlaps another, so two passes cannot act on the same desktop.
 */
export class DesktopPower extends Construct {
  readonly function: DcvFunction;
  readonly schedule: Rule;
  /** The document the function sends (the same one `dcv-resolver power --document` takes). */
  readonly hostSignalsDocument: HostSignalsDocument;

  constructor(scope: Construct, id: string, props: DesktopPowerProps) {
    super(scope, id);
    const tagPrefix = validateTagPrefix(props.tagPrefix ?? DEFAULT_TAG_PREFIX);
    const tag = (name: string) => `${tagPrefix}${name}`;
    const document = props.hostSignalsDocument;
    this.hostSignalsDocument = document;

    this.function = new DcvFunction(this, 'Function', {
      bundle: 'power',
      description: 'DCV desktops on demand: starts and stops tagged instances (schedule, idle, start on connect)',
      memorySize: POWER_MEMORY_MB,
      timeout: POWER_TIMEOUT,
      logRetention: props.logRetention,
      bundleAwsSdk: props.bundleAwsSdk,
      reservedConcurrentExecutions: 1,
      environment: { TABLE_NAME: props.table.tableName, TAG_PREFIX: tagPrefix, SIGNALS_DOCUMENT: document.documentName },
    });
    // No retries: the next minute's pass is the retry, and an event older than that is stale (a pass throttled
    // behind a running one is dropped rather than queued up behind it).
    this.function.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.seconds(60) });

    const role = (statement: PolicyStatement) => this.function.addToRolePolicy(statement);
    // Statements OR together: one per tag, each allowing only what that tag asks for, on instances carrying it.
    const tagged = (key: string, actions: string[], conditionKey: 'aws:ResourceTag' | 'ssm:resourceTag') => taggedInstancesGrant(this, actions, key, conditionKey);

    // DescribeInstances supports no resource-level permissions: '*' is the only valid resource.
    role(new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }));
    role(tagged(tag(TagName.autoStop), ['ec2:StopInstances'], 'aws:ResourceTag'));
    role(tagged(tag(TagName.schedule), ['ec2:StartInstances', 'ec2:StopInstances'], 'aws:ResourceTag'));

    // SendCommand is authorized on the document and on each instance: only the stack's read-only document
    // (never AWS-RunShellScript), only to power-managed instances (start-on-connect ones too: the pass reads a
    // desktop the portal started until DCV answers, then clears the claim). `ssm:resourceTag` is the key Run Command's
    // documentation uses for instance tags (AWS's service reference lists it for the instance resource).
    role(new PolicyStatement({ actions: ['ssm:SendCommand'], resources: [document.documentArn] }));
    for (const name of [TagName.autoStop, TagName.schedule, TagName.startOnConnect]) {
      role(tagged(tag(name), ['ssm:SendCommand'], 'ssm:resourceTag'));
    }
    // Reading the command's results and the agents' status: these support no resource-level permissions.
    role(
      new PolicyStatement({
        actions: ['ssm:ListCommandInvocations', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation'],
        resources: ['*'],
      }),
    );

    // The table itself, not its indexes (Table.grant would add '/index/*'). The pass reads with Scan and
    // writes one runtime attribute per UpdateItem, conditional on the item's InstanceId: as with the verifier's
    // LastVerifiedAt, the role may touch those attributes and the key only, and get nothing back.
    role(new PolicyStatement({ actions: ['dynamodb:Scan'], resources: [props.table.tableArn] }));
    role(attributeUpdateGrant(props.table, POWER_WRITE_ATTRIBUTES));

    this.schedule = new Rule(this, 'EveryMinute', {
      description: 'Desktops on demand: one power pass a minute',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [new LambdaFunction(this.function, { retryAttempts: 0 })],
    });

    NagSuppressions.addResourceSuppressions(
      this.function.role!,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'ec2:DescribeInstances, ssm:ListCommandInvocations, ssm:GetCommandInvocation and ssm:DescribeInstanceInformation ' +
            'have no resource-level permissions (AWS requires Resource "*"). Start, stop and SendCommand name instance/* ' +
            'because the instances are not known at deploy time; each such statement requires a power tag on the instance.',
          // The instance ARN's region and account are tokens or literals, depending on the stack's env.
          appliesTo: ['Resource::*', { regex: '/^Resource::arn:<AWS::Partition>:ec2:.+:instance\\/\\*$/' }],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      this.function,
      [
        {
          id: 'Serverless-LambdaDLQ',
          reason:
            'Invoked only by the one-minute schedule, whose event carries nothing to replay: the next pass is the retry. ' +
            'A failed pass shows in the Errors alarm and its log line.',
        },
        {
          id: 'Serverless-LambdaAsyncFailureDestination',
          reason:
            'The only asynchronous invoker is the one-minute schedule: a failed pass has no event worth keeping, the ' +
            'next minute runs it again, and the Errors alarm and log line record the failure.',
        },
        {
          id: 'Serverless-LambdaTracing',
          reason:
            'A pass is a few EC2, SSM and DynamoDB calls summarised in one structured log line with counts and the ' +
            'request totals; X-Ray would add a wildcard permission and cost without showing more.',
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.schedule, [
      {
        id: 'Serverless-EventBusDLQ',
        reason:
          'A scheduled event carries no data: a delivery that fails is replaced by the next minute\'s, so a dead-letter ' +
          'queue would only collect empty copies.',
      },
    ]);
  }
}

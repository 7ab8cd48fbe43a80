import { fileURLToPath } from 'node:url';
import { Duration } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Match, Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { STATE_CHANGE_DETAIL_TYPE, TAG_CHANGE_DETAIL_TYPE } from '../lambda/core/discovery/discovery-event';
import { DEFAULT_TAG_PREFIX, validateTagPrefix } from '../lambda/core/discovery/tag-parser';
import { DcvFunction } from './dcv-function';

const DISCOVERY_ENTRY = fileURLToPath(new URL('../lambda/handlers/discovery.ts', import.meta.url));

export interface SessionDiscoveryProps {
  /** The session table (partition key SessionId). */
  readonly table: ITable;
  /** Tag prefix: instances tagged `<prefix>session-id` register. @default 'dcv:' */
  readonly tagPrefix?: string;
  /** How often the full reconcile repairs anything events missed (whole minutes). @default Duration.minutes(5) */
  readonly schedule?: Duration;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** @default false (use the runtime's SDK) */
  readonly bundleAwsSdk?: boolean;
  /** A full reconcile of 5,000 instances takes seconds; this leaves room for EC2 throttling backoff. @default Duration.minutes(3) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
}

/** EC2 states after which an instance's sessions change; `pending` changes nothing yet. */
export const DISCOVERY_STATES = ['running', 'stopping', 'stopped', 'shutting-down', 'terminated'];

/**
 * EC2 tag discovery: a function fed by instance state-change and tag-change events (just the instances
 * named) and by a schedule (full reconcile), with failed invocations kept in an encrypted dead-letter queue.
 */
export class SessionDiscovery extends Construct {
  readonly function: DcvFunction;
  readonly deadLetterQueue: Queue;
  readonly rules: { readonly stateChange: Rule; readonly tagChange: Rule; readonly schedule: Rule };

  constructor(scope: Construct, id: string, props: SessionDiscoveryProps) {
    super(scope, id);
    const tagPrefix = validateTagPrefix(props.tagPrefix ?? DEFAULT_TAG_PREFIX);
    const every = props.schedule ?? Duration.minutes(5);
    const minutes = every.toMinutes({ integral: false });
    if (!Number.isInteger(minutes) || minutes < 1) {
      throw new Error(`discovery schedule must be a whole number of minutes, at least 1 (got ${every.toHumanString()})`);
    }

    this.deadLetterQueue = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    this.function = new DcvFunction(this, 'Function', {
      entry: DISCOVERY_ENTRY,
      description: 'DCV session discovery: EC2 instance tags -> session table',
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.minutes(3),
      logRetention: props.logRetention,
      bundleAwsSdk: props.bundleAwsSdk,
      // A scheduled job: cold start does not matter, and a failed run's stack should read as TypeScript.
      sourceMaps: true,
      environment: { TABLE_NAME: props.table.tableName, TAG_PREFIX: tagPrefix },
    });
    // Lambda retries a failed event itself, then hands it (with the error) to the queue.
    this.function.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      onFailure: new SqsDestination(this.deadLetterQueue),
    });
    // DescribeInstances supports no resource-level permissions: '*' is the only valid resource.
    this.function.addToRolePolicy(new PolicyStatement({ actions: ['ec2:DescribeInstances'], resources: ['*'] }));
    props.table.grant(this.function, 'dynamodb:Scan', 'dynamodb:PutItem', 'dynamodb:DeleteItem');

    // EventBridge retries delivery (throttled or unavailable Lambda), then dead-letters to the same queue.
    const target = () =>
      new LambdaFunction(this.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 4,
        maxEventAge: Duration.hours(1),
      });

    this.rules = {
      stateChange: new Rule(this, 'InstanceStateChange', {
        description: 'EC2 instance state changes -> session discovery',
        eventPattern: { source: ['aws.ec2'], detailType: [STATE_CHANGE_DETAIL_TYPE], detail: { state: DISCOVERY_STATES } },
        targets: [target()],
      }),
      tagChange: new Rule(this, 'InstanceTagChange', {
        description: `EC2 instance tag changes under '${tagPrefix}' -> session discovery`,
        eventPattern: {
          source: ['aws.tag'],
          detailType: [TAG_CHANGE_DETAIL_TYPE],
          detail: {
            service: ['ec2'],
            'resource-type': ['instance'],
            // Removed keys are listed too, so untagging still reaches discovery.
            'changed-tag-keys': Match.prefix(tagPrefix),
          },
        },
        targets: [target()],
      }),
      schedule: new Rule(this, 'FullReconcile', {
        description: `Full session discovery every ${minutes} minute(s)`,
        schedule: Schedule.rate(every),
        targets: [target()],
      }),
    };

    NagSuppressions.addResourceSuppressions(
      this.function.role!,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: 'ec2:DescribeInstances has no resource-level permissions; AWS requires Resource "*" for it.',
          appliesTo: ['Resource::*'],
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
            'Failed invocations go to an on-failure destination (the encrypted DeadLetters queue), which records the ' +
            'event and the error; a function-level DLQ would duplicate it with less context.',
        },
        {
          id: 'Serverless-LambdaTracing',
          reason:
            'A run is a handful of DescribeInstances pages and conditional writes, each summarised in one structured ' +
            'log line with counts; X-Ray would add a wildcard permission and cost without showing more.',
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.deadLetterQueue, [
      {
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is itself the dead-letter queue for discovery; a queue behind it would only hold copies.',
      },
      {
        id: 'Serverless-SQSRedrivePolicy',
        reason: 'This queue is itself the dead-letter queue; an operator reads and replays its messages by hand.',
      },
    ]);
  }
}

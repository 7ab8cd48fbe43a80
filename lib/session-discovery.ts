import { Duration } from 'aws-cdk-lib';
import { AttributeType, ProjectionType, type Table } from 'aws-cdk-lib/aws-dynamodb';
import { Match, Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction, SqsQueue } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { STATE_CHANGE_DETAIL_TYPE, TAG_CHANGE_DETAIL_TYPE } from '../lambda/core/discovery/discovery-event.js';
import { INSTANCE_INDEX_NAME } from '../lambda/core/discovery/table-index.js';
import { DEFAULT_TAG_PREFIX, validateTagPrefix } from '../lambda/core/discovery/tag-parser.js';
import { DcvFunction } from './dcv-function.js';

export interface SessionDiscoveryProps {
  /** The session table (partition key SessionId); discovery adds its `InstanceId` index to it. */
  readonly table: Table;
  /** Tag prefix: instances tagged `<prefix>session-id` register. @default 'dcv:' */
  readonly tagPrefix?: string;
  /** How often the full reconcile repairs anything events missed (whole minutes). @default Duration.minutes(5) */
  readonly schedule?: Duration;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** Deploy the bundle that carries its own AWS SDK (false: the one that uses the runtime's). @default true */
  readonly bundleAwsSdk?: boolean;
  /**
   * From the bench (docs/performance.md): a full reconcile of 100,000 instances from empty takes about 40 s
   * of discovery's own CPU; at 1,024 MB (about 0.6 vCPU) that is one to two minutes, plus DynamoDB's and
   * EC2's latency. Ten minutes leaves room for EC2 throttling backoff. @default Duration.minutes(10)
   */
  readonly timeout?: Duration;
  /**
   * From the bench: the heap of a 100,000-instance reconcile peaks below 300 MiB (the planner keeps about
   * 0.9 KB per instance); 1,024 MB holds that with Node's own memory more than twice over, and doubles
   * the CPU a 512 MB function gets. @default 1024
   */
  readonly memorySize?: number;
  /** How long the event queue gathers instance events into one batch before invoking. @default Duration.seconds(5) */
  readonly eventBatchWindow?: Duration;
}

/** Measured, see the props' notes. */
export const DISCOVERY_MEMORY_MB = 1024;
export const DISCOVERY_TIMEOUT = Duration.minutes(10);

/** Messages per batch (SQS allows up to 10,000 with a batching window; a batch is one describe per 200 ids). */
export const EVENT_BATCH_SIZE = 100;
/** Deliveries of an event message before it moves to the dead-letter queue. */
export const EVENT_RECEIVE_COUNT = 3;

/** EC2 states after which an instance's sessions change; `pending` changes nothing yet. */
export const DISCOVERY_STATES = ['running', 'stopping', 'stopped', 'shutting-down', 'terminated'];

/**
 * EC2 tag discovery: a function fed by instance state-change and tag-change events (just the instances
 * named) and by a schedule (full reconcile), with failed invocations kept in an encrypted dead-letter queue.
 */
export class SessionDiscovery extends Construct {
  readonly function: DcvFunction;
  readonly deadLetterQueue: Queue;
  /** Instance state and tag events wait here, so a burst becomes a few batched runs. */
  readonly eventQueue: Queue;
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
      bundle: 'discovery',
      description: 'DCV session discovery: EC2 instance tags -> session table',
      memorySize: props.memorySize ?? DISCOVERY_MEMORY_MB,
      timeout: props.timeout ?? DISCOVERY_TIMEOUT,
      logRetention: props.logRetention,
      bundleAwsSdk: props.bundleAwsSdk,
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
    // Event runs find an instance's items through a sparse keys-only index instead of scanning the table.
    props.table.addGlobalSecondaryIndex({
      indexName: INSTANCE_INDEX_NAME,
      partitionKey: { name: 'InstanceId', type: AttributeType.STRING },
      projectionType: ProjectionType.KEYS_ONLY,
    });
    // Explicit statements: Table.grant would also cover every index ('/index/*') once the table has one.
    // UpdateItem: a change rewrites only the attributes discovery read or writes, so one an operator adds
    // mid-run under a name discovery does not know is never overwritten (adapters/dynamodb-discovery-table.ts).
    this.function.addToRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:Scan', 'dynamodb:BatchGetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        resources: [props.table.tableArn],
      }),
    );
    this.function.addToRolePolicy(
      new PolicyStatement({ actions: ['dynamodb:Query'], resources: [`${props.table.tableArn}/index/${INSTANCE_INDEX_NAME}`] }),
    );

    // A fleet scale-out sends hundreds of events a minute: they queue up and reach the function in batches
    // (one describe and one table read per batch, not per event). A message whose run fails is retried
    // by the queue (partial batch failures: only the failed ones), then moved to the dead-letter queue.
    const functionTimeout = props.timeout ?? DISCOVERY_TIMEOUT;
    this.eventQueue = new Queue(this, 'Events', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Lambda requires at least the function timeout; twice leaves room for a slow batch.
      visibilityTimeout: Duration.seconds(functionTimeout.toSeconds() * 2),
      retentionPeriod: Duration.days(1),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: EVENT_RECEIVE_COUNT },
    });
    this.function.addEventSource(
      new SqsEventSource(this.eventQueue, {
        batchSize: EVENT_BATCH_SIZE,
        maxBatchingWindow: props.eventBatchWindow ?? Duration.seconds(5),
        reportBatchItemFailures: true,
        // Bursts are absorbed by batching, not by fanning out: a cap keeps table reads bounded.
        maxConcurrency: 2,
      }),
    );

    // EventBridge retries delivery (throttled or unavailable target), then dead-letters to the same queue.
    const delivery = { deadLetterQueue: this.deadLetterQueue, retryAttempts: 4, maxEventAge: Duration.hours(1) };
    const queued = () => new SqsQueue(this.eventQueue, delivery);

    this.rules = {
      stateChange: new Rule(this, 'InstanceStateChange', {
        description: 'EC2 instance state changes -> session discovery',
        eventPattern: { source: ['aws.ec2'], detailType: [STATE_CHANGE_DETAIL_TYPE], detail: { state: DISCOVERY_STATES } },
        targets: [queued()],
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
        targets: [queued()],
      }),
      schedule: new Rule(this, 'FullReconcile', {
        description: `Full session discovery every ${minutes} minute(s)`,
        schedule: Schedule.rate(every),
        // The full reconcile is invoked directly: Lambda retries it, then the on-failure destination.
        targets: [new LambdaFunction(this.function, delivery)],
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
          id: 'Serverless-LambdaEventSourceMappingDestination',
          reason:
            'Lambda supports no on-failure destination for SQS event sources; the event queue itself moves a message ' +
            'that failed 3 receives to the encrypted DeadLetters queue (redrive policy).',
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

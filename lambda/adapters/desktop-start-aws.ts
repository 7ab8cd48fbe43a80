import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { DynamoApi } from './dynamodb-api.js';
import { DynamoDbDiscoveryTable } from './dynamodb-discovery-table.js';
import { DynamoDbPowerTable } from './dynamodb-power-table.js';
import { SdkEc2PowerApi } from './ec2-power-api.js';
import { Ec2InstanceSource } from './ec2-instance-source.js';
import { SsmHostSignalsReader, type SsmHostSignalsOptions } from './ssm-host-signals.js';
import { DiscoveryService } from '../core/discovery/run-discovery.js';
import { INSTANCE_INDEX_NAME } from '../core/discovery/table-index.js';
import type { Log } from '../core/log.js';
import type { DcvAnswer, DesktopStartPort, StartAnchor } from '../core/portal/desktop-start.js';
import type { PowerWrite } from '../core/power/power-plan.js';
import type { PowerOutcome } from '../core/power/power-ports.js';
import { parseSignals } from '../core/power/signals.js';
import { Attr } from '../core/session-record.js';

/**
 * Start and open over AWS: DescribeInstances, the power pass's conditional PowerStartAt write, its
 * StartInstances (per-instance outcomes), discovery for one instance (its event run), and the shipped host
 * script through SSM Run Command. One desktop per call, so every call is small; the SDK clients come with
 * the standard configuration (AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2 / _SSM / _DYNAMODB).
 */
export interface AwsDesktopStartOptions {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly dynamodb: DynamoApi;
  readonly tableName: string;
  /** What runs on the host: the stack's Command document, or the script's lines with AWS-RunShellScript. */
  readonly signals: SsmHostSignalsOptions['command'];
  readonly log: Log;
  /** Discovery's tag prefix. @default 'dcv:' */
  readonly tagPrefix?: string;
  /** @default INSTANCE_INDEX_NAME */
  readonly instanceIndex?: string;
  /** SSM result polling: a person is waiting, and there is one host. @default 250 */
  readonly pollIntervalMs?: number;
  /**
   * Who brings the items up to date once the instance runs: this adapter, by running discovery for the one
   * instance (`serve --table`, which has no EventBridge), or the stack's discovery function (its EC2
   * state-change events, and its scheduled full run as the backstop), so the portal's role needs no right
   * to write items. @default 'in-process'
   */
  readonly itemRefresh?: 'in-process' | 'stack-discovery';
}

type Wire = Record<string, { S?: string } | undefined>;

export class AwsDesktopStart implements DesktopStartPort {
  private readonly instances: Ec2InstanceSource;
  private readonly power: SdkEc2PowerApi;
  private readonly table: DynamoDbPowerTable;
  private readonly discovery: DiscoveryService;
  private readonly signals: SsmHostSignalsReader;
  private readonly index: string;

  constructor(private readonly options: AwsDesktopStartOptions) {
    // No page retries with backoff here: a person is waiting, and the page refreshes anyway.
    this.instances = new Ec2InstanceSource(options.ec2, { pageRetries: 0 });
    this.power = new SdkEc2PowerApi(options.ec2, { throttleRetries: 0 });
    this.table = new DynamoDbPowerTable(options.dynamodb, options.tableName, options.log);
    this.discovery = new DiscoveryService(
      this.instances,
      new DynamoDbDiscoveryTable(options.dynamodb, options.tableName, { log: options.log, ...(options.instanceIndex ? { instanceIndex: options.instanceIndex } : {}) }),
      { log: options.log, ...(options.tagPrefix ? { tagPrefix: options.tagPrefix } : {}) },
    );
    this.signals = new SsmHostSignalsReader(options.ssm, {
      command: options.signals,
      pollIntervalMs: options.pollIntervalMs ?? 250,
      comment: 'dcv-session-resolver portal: is DCV up (Start and open)',
    });
    this.index = options.instanceIndex ?? INSTANCE_INDEX_NAME;
  }

  async instanceState(instanceId: string): Promise<string | undefined> {
    const [info] = await this.instances.describe([instanceId]);
    return info?.state;
  }

  /**
   * The index (keys only, eventually consistent) says which items the instance holds; each is then read
   * consistently, smallest id first, until one is the instance's own discovered item: the anchor the power
   * pass uses too, with the claim as it stands now.
   */
  async anchor(instanceId: string): Promise<StartAnchor | undefined> {
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.options.dynamodb.call<{ Items?: Wire[]; LastEvaluatedKey?: Record<string, unknown> }>('Query', {
        TableName: this.options.tableName,
        IndexName: this.index,
        KeyConditionExpression: '#i = :i',
        ExpressionAttributeNames: { '#i': Attr.InstanceId },
        ExpressionAttributeValues: { ':i': { S: instanceId } },
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      for (const raw of page.Items ?? []) if (raw[Attr.SessionId]?.S) ids.push(raw[Attr.SessionId]!.S!);
      start = page.LastEvaluatedKey;
    } while (start);
    ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const sessionId of ids) {
      const { Item } = await this.options.dynamodb.call<{ Item?: Wire }>('GetItem', {
        TableName: this.options.tableName,
        Key: { [Attr.SessionId]: { S: sessionId } },
        ConsistentRead: true,
        ProjectionExpression: '#s, #i, #src, #p',
        ExpressionAttributeNames: { '#s': Attr.SessionId, '#i': Attr.InstanceId, '#src': Attr.Source, '#p': Attr.PowerStartAt },
      });
      if (Item?.[Attr.Source]?.S !== 'ec2' || Item[Attr.InstanceId]?.S !== instanceId) continue;
      const claim = Item[Attr.PowerStartAt];
      // A claim that is not a string can only be a hand edit; it is left to the pass (never overwritten blindly).
      return { sessionId, ...(typeof claim?.S === 'string' ? { powerStartAt: claim.S } : {}) };
    }
    return undefined;
  }

  writeClaim(write: PowerWrite): Promise<'written' | 'conflict'> {
    return this.table.write(write);
  }

  async start(instanceId: string): Promise<PowerOutcome> {
    const [outcome] = await this.power.start([instanceId]);
    return outcome!;
  }

  async refresh(instanceId: string): Promise<void> {
    if (this.options.itemRefresh === 'stack-discovery') return;
    const result = await this.discovery.reconcileInstances([instanceId], 'portal-start');
    if (result.failed.length > 0) throw new Error(`discovery could not update the desktop's items: ${result.failed[0]!.reason}`);
  }

  async dcvSessions(instanceId: string, deadline: number): Promise<DcvAnswer> {
    const [signal] = await this.signals.read([instanceId], deadline);
    if (!signal || signal.status !== 'ok') return { ok: false, reason: signal?.status === 'unknown' ? signal.reason : 'no answer' };
    const parsed = parseSignals(signal.stdout);
    if (!parsed.ok) return { ok: false, reason: `the host's answer is unreadable: ${parsed.reason}` };
    if (parsed.signals.sessions === undefined) return { ok: false, reason: `DCV cannot be asked (${parsed.signals.errors.join(', ') || 'no session list'})` };
    return { ok: true, sessionIds: parsed.signals.sessions.map((s) => s.id) };
  }
}

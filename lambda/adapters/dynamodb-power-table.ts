import type { DynamoApi } from './dynamodb-api.js';
import type { PowerItem, PowerWrite } from '../core/power/power-plan.js';
import type { Log } from '../core/log.js';
import { Attr } from '../core/session-record.js';

/**
 * The session table as the power pass sees it: one paged Scan of the discovered items (only the
 * attributes the pass reads), and one-attribute conditional UpdateItems for its runtime state. A write
 * happens only while the item still belongs to the instance and the attribute still holds what the pass
 * read; otherwise it is a conflict, logged and counted, and nothing is overwritten.
 */
const READ = [
  Attr.SessionId,
  Attr.InstanceId,
  Attr.AutoStopMinutes,
  Attr.StartOnConnect,
  Attr.Schedule,
  Attr.LastVerifiedAt,
  Attr.PowerStartAt,
  Attr.PowerStopAt,
  Attr.ScheduleStartAt,
  Attr.IdleSince,
] as const;

const STRINGS = [Attr.Schedule, Attr.LastVerifiedAt, Attr.PowerStartAt, Attr.PowerStopAt, Attr.ScheduleStartAt, Attr.IdleSince] as const;
const FIELD: Record<(typeof STRINGS)[number], keyof PowerItem> = {
  Schedule: 'schedule',
  LastVerifiedAt: 'lastVerifiedAt',
  PowerStartAt: 'powerStartAt',
  PowerStopAt: 'powerStopAt',
  ScheduleStartAt: 'scheduleStartAt',
  IdleSince: 'idleSince',
};

type Wire = Record<string, { S?: string; N?: string; BOOL?: boolean }>;

export type PowerWriteOutcome = 'written' | 'conflict';

export class PowerItemError extends Error {}

/** One scanned item → PowerItem, or the reason it is skipped (a hand edit of the wrong type). */
export function toPowerItem(raw: Wire): PowerItem | string {
  const sessionId = raw[Attr.SessionId]?.S;
  const instanceId = raw[Attr.InstanceId]?.S;
  if (!sessionId || !instanceId) return 'no SessionId or InstanceId string';
  const item: Record<string, unknown> = { sessionId, instanceId };
  const minutes = raw[Attr.AutoStopMinutes];
  if (minutes !== undefined) {
    const value = minutes.N === undefined ? NaN : Number(minutes.N);
    if (!Number.isInteger(value) || value <= 0) return `AutoStopMinutes is not a positive whole number`;
    item.autoStopMinutes = value;
  }
  const flag = raw[Attr.StartOnConnect];
  if (flag !== undefined) {
    if (typeof flag.BOOL !== 'boolean') return 'StartOnConnect is not a boolean';
    item.startOnConnect = flag.BOOL;
  }
  for (const name of STRINGS) {
    const value = raw[name];
    if (value === undefined) continue;
    if (typeof value.S !== 'string') return `${name} is not a string`;
    item[FIELD[name]] = value.S;
  }
  return item as unknown as PowerItem;
}

export class DynamoDbPowerTable {
  constructor(
    private readonly api: DynamoApi,
    private readonly tableName: string,
    private readonly log: Log,
  ) {}

  /** Every discovered item, grouped by instance. Items it cannot read are skipped with a log line. */
  async readItems(): Promise<Map<string, PowerItem[]>> {
    const byInstance = new Map<string, PowerItem[]>();
    const names: Record<string, string> = {};
    READ.forEach((name, i) => (names[`#a${i}`] = name));
    names['#src'] = Attr.Source;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.api.call<{ Items?: Wire[]; LastEvaluatedKey?: Record<string, unknown> }>('Scan', {
        TableName: this.tableName,
        ProjectionExpression: READ.map((_, i) => `#a${i}`).join(', '),
        FilterExpression: '#src = :ec2 AND attribute_exists(#a1)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':ec2': { S: 'ec2' } },
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      });
      for (const raw of page.Items ?? []) {
        const item = toPowerItem(raw);
        if (typeof item === 'string') {
          this.log.warn('power: item skipped', { sessionId: raw[Attr.SessionId]?.S, reason: item });
          continue;
        }
        const list = byInstance.get(item.instanceId);
        if (list) list.push(item);
        else byInstance.set(item.instanceId, [item]);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return byInstance;
  }

  /** One conditional write; a failed condition is a conflict, any other error throws. */
  async write(change: PowerWrite): Promise<PowerWriteOutcome> {
    const values: Record<string, unknown> = { ':id': { S: change.instanceId } };
    const conditions = ['#i = :id'];
    if (change.read === undefined) conditions.push('attribute_not_exists(#a)');
    else {
      conditions.push('#a = :read');
      values[':read'] = { S: change.read };
    }
    if (change.value !== undefined) values[':v'] = { S: change.value };
    try {
      await this.api.call('UpdateItem', {
        TableName: this.tableName,
        Key: { [Attr.SessionId]: { S: change.sessionId } },
        UpdateExpression: change.value === undefined ? 'REMOVE #a' : 'SET #a = :v',
        ConditionExpression: conditions.join(' AND '),
        ExpressionAttributeNames: { '#i': Attr.InstanceId, '#a': change.attribute },
        ExpressionAttributeValues: values,
      });
      return 'written';
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return 'conflict';
      throw error;
    }
  }
}

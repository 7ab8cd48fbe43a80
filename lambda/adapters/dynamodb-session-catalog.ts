import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { Log } from '../core/log.js';
import { assertLeaseItem, type LeaseStore, type SessionCatalog } from '../core/portal/session-catalog.js';
import { Attr, type RawItem } from '../core/session-record.js';
import type { DynamoApi } from './dynamodb-api.js';
import { fromItem, toAttributes, toAttributeValue } from './dynamodb-lite-session-store.js';

/**
 * The session table as the portal reads and leases it, over the DynamoApi seam (no SDK import: the
 * Lambda pairs it with the lean client; `serve --table` with `sdkDynamoApi(client)`).
 *  - list: a paginated Scan, eventually consistent (a portal page a second stale is fine), capped.
 *  - claim: one PutItem with the lease condition, so DynamoDB decides which Connect gets a host.
 * IAM: Scan on the table, and PutItem only for `lease:*` keys (dynamodb:LeadingKeys).
 */
export const DEFAULT_MAX_LIST_ITEMS = 10_000;

export interface DynamoSessionCatalogOptions {
  readonly log: Log;
  /** The most items `list` returns; beyond it the rest are left out and a warning says so. @default 10 000 */
  readonly maxItems?: number;
  /** Items per Scan page. @default DynamoDB's own page (up to 1 MB) */
  readonly pageSize?: number;
}

type Attributes = Record<string, AttributeValue>;

export class DynamoSessionCatalog implements SessionCatalog, LeaseStore {
  private readonly maxItems: number;

  constructor(
    private readonly api: DynamoApi,
    private readonly tableName: string,
    private readonly options: DynamoSessionCatalogOptions,
  ) {
    this.maxItems = options.maxItems ?? DEFAULT_MAX_LIST_ITEMS;
  }

  async list(): Promise<RawItem[]> {
    const items: RawItem[] = [];
    let start: Attributes | undefined;
    do {
      const page = await this.api.call<{ Items?: Attributes[]; LastEvaluatedKey?: Attributes }>('Scan', {
        TableName: this.tableName,
        ...(this.options.pageSize ? { Limit: this.options.pageSize } : {}),
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      for (const item of page.Items ?? []) {
        if (items.length === this.maxItems) {
          // A table this large is not a portal's list; show what fits and tell the operator.
          this.options.log.warn('session list capped', { table: this.tableName, maxItems: this.maxItems });
          return items;
        }
        items.push(fromItem(item));
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async claim(item: RawItem, nowSeconds: number): Promise<boolean> {
    assertLeaseItem(item);
    try {
      await this.api.call('PutItem', {
        TableName: this.tableName,
        Item: toAttributes(item),
        ConditionExpression: 'attribute_not_exists(#id) OR #expires <= :now OR #user = :user',
        ExpressionAttributeNames: { '#id': Attr.SessionId, '#expires': Attr.ExpiresAt, '#user': Attr.LeaseUser },
        ExpressionAttributeValues: { ':now': toAttributeValue(nowSeconds), ':user': toAttributeValue(item[Attr.LeaseUser]) },
      });
      return true;
    } catch (error) {
      if ((error as Error | undefined)?.name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}

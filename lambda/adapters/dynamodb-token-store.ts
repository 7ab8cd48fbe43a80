import { randomBytes } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { Log } from '../core/log.js';
import { isTokenHash } from '../core/tokens/token.js';
import { MAX_PRINCIPALS } from '../core/session-record.js';
import { parseTokenState, type TokenGrant, type TokenState } from '../core/tokens/token-grant.js';
import { stateRefusal, type ConsumeOutcome, type TokenStore } from '../core/tokens/token-store.js';
import type { DynamoApi } from './dynamodb-api.js';
import { fromItem } from './dynamodb-lite-session-store.js';

/** The tokens table's attribute names (partition key `TokenHash`; TTL on `ExpiresAt`). */
export const TokenAttr = {
  TokenHash: 'TokenHash',
  SessionId: 'SessionId',
  UserName: 'UserName',
  ExpiresAt: 'ExpiresAt',
  MaxUses: 'MaxUses',
  UsesLeft: 'UsesLeft',
  ClientCidrs: 'ClientCidrs',
  /** The user's groups at issue (a list of strings), checked against the session's AllowedGroups. */
  Groups: 'Groups',
  CreatedAt: 'CreatedAt',
  RevokedAt: 'RevokedAt',
  /**
   * The ids of the verifications that took a use (a string set, at most MaxUses ids): a retried UpdateItem
   * whose first attempt was applied finds its own id here instead of taking a second use.
   */
  UseIds: 'UseIds',
} as const;

const CONDITIONAL_FAILED = 'ConditionalCheckFailedException';

/**
 * Tokens in a DynamoDB table. A use is taken with one conditional UpdateItem (exists, has a use left,
 * not expired, not revoked), which DynamoDB applies atomically: of many concurrent verifications of a
 * one-use token exactly one succeeds. Reads are strongly consistent.
 *
 * Both table clients retry a timed-out UpdateItem with the same request. Each consume therefore carries a
 * fresh id, added to `UseIds` by the same update, and the condition refuses an id already there: when the
 * first attempt was applied but its answer came too late, the retry fails its condition (never a second
 * use) and the read-back finds the id, so the answer is yes, as for the first attempt.
 */
export class DynamoDbTokenStore implements TokenStore {
  constructor(
    private readonly api: DynamoApi,
    readonly tableName: string,
    private readonly log?: Log,
  ) {}

  async get(hash: string): Promise<TokenState | undefined> {
    const item = await this.getItem(hash);
    return item ? this.parse(item) : undefined;
  }

  async consume(hash: string, nowSeconds: number): Promise<ConsumeOutcome> {
    if (!isTokenHash(hash)) return { ok: false, reason: 'unknown' };
    const useId = randomBytes(12).toString('base64url');
    try {
      const result = await this.api.call<{ Attributes?: Record<string, AttributeValue> }>('UpdateItem', {
        TableName: this.tableName,
        Key: { [TokenAttr.TokenHash]: { S: hash } },
        UpdateExpression: 'SET #left = #left - :one ADD #uses :useSet',
        // The type checks keep a hand-edited item that get() would refuse from being consumed here.
        ConditionExpression:
          'attribute_exists(#hash) AND #left > :zero AND #exp > :now AND attribute_not_exists(#revoked) ' +
          'AND attribute_type(#user, :s) AND attribute_type(#session, :s) ' +
          'AND (attribute_not_exists(#groups) OR ((attribute_type(#groups, :l) OR attribute_type(#groups, :ss)) AND size(#groups) <= :maxGroups)) ' +
          'AND (attribute_not_exists(#uses) OR (attribute_type(#uses, :ss) AND NOT contains(#uses, :useId)))',
        ExpressionAttributeNames: {
          '#hash': TokenAttr.TokenHash,
          '#user': TokenAttr.UserName,
          '#session': TokenAttr.SessionId,
          '#left': TokenAttr.UsesLeft,
          '#exp': TokenAttr.ExpiresAt,
          '#revoked': TokenAttr.RevokedAt,
          '#groups': TokenAttr.Groups,
          '#uses': TokenAttr.UseIds,
        },
        ExpressionAttributeValues: {
          ':one': { N: '1' },
          ':zero': { N: '0' },
          ':now': { N: String(nowSeconds) },
          ':s': { S: 'S' },
          ':l': { S: 'L' },
          ':ss': { S: 'SS' },
          ':maxGroups': { N: String(MAX_PRINCIPALS) },
          ':useId': { S: useId },
          ':useSet': { SS: [useId] },
        },
        ReturnValues: 'UPDATED_NEW',
      });
      return { ok: true, usesLeft: Number(result.Attributes?.[TokenAttr.UsesLeft]?.N ?? 0) };
    } catch (error) {
      if ((error as Error).name !== CONDITIONAL_FAILED) throw error;
      // Which condition failed: read it back. Our own id there means an earlier attempt of this same
      // request took the use (its answer was lost): that is a yes. The use was taken when that attempt was
      // applied, so a revoke or expiry since does not undo it; uses left is what is left now (others may
      // have taken some meanwhile). Otherwise, if it now looks usable, we lost a race for the last use.
      const item = await this.getItem(hash);
      const state = item ? this.parse(item) : undefined;
      if (state && item?.[TokenAttr.UseIds]?.SS?.includes(useId)) return { ok: true, usesLeft: state.usesLeft };
      return { ok: false, reason: stateRefusal(state, nowSeconds) ?? 'used-up' };
    }
  }

  async put(grant: TokenGrant): Promise<void> {
    const item: Record<string, AttributeValue> = {
      [TokenAttr.TokenHash]: { S: grant.hash },
      [TokenAttr.SessionId]: { S: grant.sessionId },
      [TokenAttr.UserName]: { S: grant.user },
      [TokenAttr.ExpiresAt]: { N: String(grant.expiresAt) },
      [TokenAttr.MaxUses]: { N: String(grant.maxUses) },
      [TokenAttr.UsesLeft]: { N: String(grant.maxUses) },
      [TokenAttr.CreatedAt]: { S: grant.createdAt },
    };
    if (grant.clientCidrs) item[TokenAttr.ClientCidrs] = { L: grant.clientCidrs.map((c) => ({ S: c })) };
    if (grant.groups) item[TokenAttr.Groups] = { L: grant.groups.map((g) => ({ S: g })) };
    await this.api.call('PutItem', {
      TableName: this.tableName,
      Item: item,
      ConditionExpression: 'attribute_not_exists(#hash)',
      ExpressionAttributeNames: { '#hash': TokenAttr.TokenHash },
    });
  }

  async revoke(hash: string, at: Date): Promise<boolean> {
    if (!isTokenHash(hash)) return false;
    try {
      await this.api.call('UpdateItem', {
        TableName: this.tableName,
        Key: { [TokenAttr.TokenHash]: { S: hash } },
        UpdateExpression: 'SET #revoked = if_not_exists(#revoked, :at)',
        ConditionExpression: 'attribute_exists(#hash)',
        ExpressionAttributeNames: { '#hash': TokenAttr.TokenHash, '#revoked': TokenAttr.RevokedAt },
        ExpressionAttributeValues: { ':at': { S: at.toISOString() } },
      });
      return true;
    } catch (error) {
      if ((error as Error).name === CONDITIONAL_FAILED) return false;
      throw error;
    }
  }

  async *list(): AsyncIterable<TokenState> {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page: { Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> } =
        await this.api.call('Scan', {
          TableName: this.tableName,
          ConsistentRead: true,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        });
      for (const item of page.Items ?? []) {
        const state = this.parse(item);
        if (state) yield state;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  close(): void {
    this.api.close?.();
  }

  private async getItem(hash: string): Promise<Record<string, AttributeValue> | undefined> {
    if (!isTokenHash(hash)) return undefined;
    const result = await this.api.call<{ Item?: Record<string, AttributeValue> }>('GetItem', {
      TableName: this.tableName,
      Key: { [TokenAttr.TokenHash]: { S: hash } },
      ConsistentRead: true,
    });
    return result.Item;
  }

  /** A hand-edited item that no longer parses is treated as unknown (and logged), never accepted. */
  private parse(item: Record<string, AttributeValue>): TokenState | undefined {
    const raw = fromItem(item);
    // UseIds is written only by consume, as a string set; anything else is a hand edit consume would refuse.
    const useIds = item[TokenAttr.UseIds];
    if (useIds && useIds.SS === undefined) {
      const hash = typeof raw[TokenAttr.TokenHash] === 'string' ? (raw[TokenAttr.TokenHash] as string).slice(0, 12) : undefined;
      this.log?.warn('malformed token item skipped', { tokenId: hash, reason: 'UseIds must be a string set' });
      return undefined;
    }
    const parsed = parseTokenState({
      hash: raw[TokenAttr.TokenHash],
      sessionId: raw[TokenAttr.SessionId],
      user: raw[TokenAttr.UserName],
      expiresAt: raw[TokenAttr.ExpiresAt],
      maxUses: raw[TokenAttr.MaxUses],
      usesLeft: raw[TokenAttr.UsesLeft],
      clientCidrs: raw[TokenAttr.ClientCidrs] ?? undefined,
      groups: raw[TokenAttr.Groups] ?? undefined,
      createdAt: raw[TokenAttr.CreatedAt],
      revokedAt: raw[TokenAttr.RevokedAt] ?? undefined,
    });
    if (parsed.ok) return parsed.state;
    const hash = typeof raw[TokenAttr.TokenHash] === 'string' ? (raw[TokenAttr.TokenHash] as string).slice(0, 12) : undefined;
    this.log?.warn('malformed token item skipped', { tokenId: hash, reason: parsed.reason });
    return undefined;
  }
}

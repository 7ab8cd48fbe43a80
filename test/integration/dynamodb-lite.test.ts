import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLiteDynamoApi, DynamoLiteClient, DynamoLiteError } from '../../lambda/adapters/dynamodb-lite';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

/**
 * The lean DynamoDB client on its own: any operation as a signed JSON POST (what the token store's
 * conditional UpdateItem needs too), SigV4 identical to the AWS SDK's signer, errors shaped like the
 * SDK's, keep-alive, and its failure modes. The SessionStore contract (test/contract) covers the
 * resolve path's timeouts, retries and environment.
 */
const TABLE = 'LiteTable';
let dynamo: LocalDynamo;
let api: DynamoLiteClient;

beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.client().send(
    new CreateTableCommand({
      TableName: TABLE,
      AttributeDefinitions: [
        { AttributeName: 'Pk', AttributeType: 'S' },
        { AttributeName: 'Sk', AttributeType: 'N' },
      ],
      KeySchema: [
        { AttributeName: 'Pk', KeyType: 'HASH' },
        { AttributeName: 'Sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  api = createLiteDynamoApi({ endpoint: dynamo.endpoint });
});

afterAll(async () => {
  api.close();
  await dynamo.stop();
});

/** A loopback server with a handler of the test's choosing; counts connections and records requests. */
async function server(handle: (req: { headers: IncomingHttpHeaders; body: string; index: number }, res: import('node:http').ServerResponse) => void) {
  const requests: { headers: IncomingHttpHeaders; body: string }[] = [];
  let connections = 0;
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      handle({ headers: req.headers, body, index: requests.length - 1 }, res);
    });
  });
  srv.on('connection', () => connections++);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  return {
    endpoint: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    requests,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => {
      srv.closeAllConnections();
      srv.close(() => resolve());
    }),
  };
}

describe('any DynamoDB operation as one JSON POST', () => {
  it('writes, reads, queries, updates and deletes against dynalite', async () => {
    await api.call('PutItem', { TableName: TABLE, Item: { Pk: { S: 'a' }, Sk: { N: '1' }, Uses: { N: '2' } } });
    await api.call('PutItem', { TableName: TABLE, Item: { Pk: { S: 'a' }, Sk: { N: '2' } } });
    expect(await api.call('GetItem', { TableName: TABLE, Key: { Pk: { S: 'a' }, Sk: { N: '1' } }, ConsistentRead: true })).toEqual({
      Item: { Pk: { S: 'a' }, Sk: { N: '1' }, Uses: { N: '2' } },
    });
    const query = await api.call<{ Count: number }>('Query', {
      TableName: TABLE,
      KeyConditionExpression: 'Pk = :pk',
      ExpressionAttributeValues: { ':pk': { S: 'a' } },
    });
    expect(query.Count).toBe(2);
    const updated = await api.call('UpdateItem', {
      TableName: TABLE,
      Key: { Pk: { S: 'a' }, Sk: { N: '1' } },
      UpdateExpression: 'SET Uses = Uses - :one',
      ConditionExpression: 'Uses > :zero',
      ExpressionAttributeValues: { ':one': { N: '1' }, ':zero': { N: '0' } },
      ReturnValues: 'ALL_NEW',
    });
    expect(updated.Attributes).toMatchObject({ Uses: { N: '1' } });
    await api.call('DeleteItem', { TableName: TABLE, Key: { Pk: { S: 'a' }, Sk: { N: '2' } } });
    expect(await api.call('Scan', { TableName: TABLE })).toMatchObject({ Count: 1 });
    expect(await api.call('DescribeTable', { TableName: TABLE })).toMatchObject({ Table: { TableName: TABLE } });
  });

  it('a failed condition is a ConditionalCheckFailedException with status 400, not retried', async () => {
    await api.call('PutItem', { TableName: TABLE, Item: { Pk: { S: 'cond' }, Sk: { N: '1' }, Uses: { N: '0' } } });
    const error = await api
      .call('UpdateItem', {
        TableName: TABLE,
        Key: { Pk: { S: 'cond' }, Sk: { N: '1' } },
        UpdateExpression: 'SET Uses = Uses - :one',
        ConditionExpression: 'Uses > :zero',
        ExpressionAttributeValues: { ':one': { N: '1' }, ':zero': { N: '0' } },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DynamoLiteError);
    expect(error).toMatchObject({ name: 'ConditionalCheckFailedException', statusCode: 400, $metadata: { httpStatusCode: 400, attempts: 1 } });
    expect((error as Error).message).toMatch(/conditional request failed/i);
  });

  it('of many concurrent conditional updates of a one-use item, exactly one succeeds', async () => {
    await api.call('PutItem', { TableName: TABLE, Item: { Pk: { S: 'race' }, Sk: { N: '1' }, Uses: { N: '1' } } });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, () =>
        api.call('UpdateItem', {
          TableName: TABLE,
          Key: { Pk: { S: 'race' }, Sk: { N: '1' } },
          UpdateExpression: 'SET Uses = Uses - :one',
          ConditionExpression: 'Uses > :zero',
          ExpressionAttributeValues: { ':one': { N: '1' }, ':zero': { N: '0' } },
        }),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) {
      expect(o.reason).toMatchObject({ name: 'ConditionalCheckFailedException' });
    }
  });

  it('a validation error names its type (ResourceNotFoundException for a missing table)', async () => {
    await expect(api.call('GetItem', { TableName: 'NoSuchTable', Key: { Pk: { S: 'x' } } })).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      statusCode: 400,
    });
  });
});

describe('SigV4', () => {
  it('signs exactly as the AWS SDK signer does (same request, same clock)', async () => {
    const srv = await server((_req, res) => res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end('{}'));
    const now = new Date('2026-03-04T05:06:07.890Z');
    const credentials = { accessKeyId: 'ASIASIGNTEST', secretAccessKey: 'sign/secret+key', sessionToken: 'session-token-xyz' };
    const client = createLiteDynamoApi({ endpoint: srv.endpoint, region: 'eu-central-1', credentials, now: () => now });
    try {
      const input = { TableName: 'T', Key: { SessionId: { S: 'console' } }, ConsistentRead: true };
      await client.call('GetItem', input);
      const sent = srv.requests[0]!;
      const signer = new SignatureV4({ credentials, region: 'eu-central-1', service: 'dynamodb', sha256: Sha256, applyChecksum: false });
      const url = new URL(srv.endpoint);
      const expected = await signer.sign(
        {
          method: 'POST',
          protocol: 'http:',
          hostname: url.hostname,
          port: Number(url.port),
          path: '/',
          query: {},
          headers: {
            host: url.host,
            'content-type': 'application/x-amz-json-1.0',
            'x-amz-target': 'DynamoDB_20120810.GetItem',
          },
          body: JSON.stringify(input),
        },
        { signingDate: now },
      );
      expect(sent.body).toBe(JSON.stringify(input));
      expect(sent.headers['x-amz-date']).toBe('20260304T050607Z');
      expect(sent.headers['x-amz-security-token']).toBe('session-token-xyz');
      expect(sent.headers.authorization).toBe(expected.headers.authorization);
    } finally {
      client.close();
      await srv.close();
    }
  });
});

describe('transport', () => {
  it('keeps the connection alive between calls', async () => {
    const srv = await server((_req, res) => res.writeHead(200).end('{"Item":{"SessionId":{"S":"a"}}}'));
    const client = createLiteDynamoApi({ endpoint: srv.endpoint });
    try {
      for (let i = 0; i < 5; i++) await client.call('GetItem', { TableName: 'T', Key: {} });
      expect(srv.requests).toHaveLength(5);
      expect(srv.connections()).toBe(1);
    } finally {
      client.close();
      await srv.close();
    }
  });

  it('retries once a connection is dropped mid-request (a stale keep-alive socket)', async () => {
    const srv = await server((req, res) => {
      if (req.index === 0) res.socket?.destroy();
      else res.writeHead(200).end('{"Item":{"SessionId":{"S":"a"}}}');
    });
    const client = createLiteDynamoApi({ endpoint: srv.endpoint });
    try {
      expect(await client.call('GetItem', { TableName: 'T', Key: {} })).toEqual({ Item: { SessionId: { S: 'a' } } });
      expect(srv.requests).toHaveLength(2);
    } finally {
      client.close();
      await srv.close();
    }
  });

  it('an answer that is not JSON is an error naming the status, not retried', async () => {
    const srv = await server((_req, res) => res.writeHead(200).end('<html>proxy page</html>'));
    const client = createLiteDynamoApi({ endpoint: srv.endpoint });
    try {
      await expect(client.call('GetItem', { TableName: 'T', Key: {} })).rejects.toMatchObject({ name: 'SerializationError', statusCode: 200 });
      expect(srv.requests).toHaveLength(1);
    } finally {
      client.close();
      await srv.close();
    }
  });

  it('a 4xx without a JSON type (e.g. a 403 from a proxy) is not retried', async () => {
    const srv = await server((_req, res) => res.writeHead(403).end('forbidden'));
    const client = createLiteDynamoApi({ endpoint: srv.endpoint });
    try {
      await expect(client.call('GetItem', { TableName: 'T', Key: {} })).rejects.toMatchObject({ name: 'Http403Error', statusCode: 403 });
      expect(srv.requests).toHaveLength(1);
    } finally {
      client.close();
      await srv.close();
    }
  });
});

describe('configuration', () => {
  it('refuses to sign without credentials, naming the variables', async () => {
    const client = new DynamoLiteClient({ endpoint: dynamo.endpoint, env: { AWS_REGION: 'us-east-1' } });
    await expect(client.call('GetItem', { TableName: TABLE, Key: {} })).rejects.toMatchObject({
      name: 'CredentialsError',
      message: expect.stringMatching(/AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/),
    });
  });

  it('refuses to run without a region', async () => {
    const client = new DynamoLiteClient({ env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' } });
    await expect(client.call('GetItem', { TableName: TABLE, Key: {} })).rejects.toMatchObject({ name: 'ConfigError', message: expect.stringMatching(/AWS_REGION/) });
  });

  it('refuses an endpoint that is not an http(s) URL', async () => {
    const client = new DynamoLiteClient({ env: { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_DYNAMODB: 'ftp://127.0.0.1:1' } });
    await expect(client.call('GetItem', { TableName: TABLE, Key: {} })).rejects.toMatchObject({ name: 'ConfigError', message: expect.stringMatching(/http\(s\)/) });
  });
});

describe('warm (init-phase work)', () => {
  it('prepares the client so the first call needs no more loading, and never throws', async () => {
    const client = new DynamoLiteClient({ env: { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint } });
    client.warm();
    expect(await client.call('DescribeTable', { TableName: TABLE })).toMatchObject({ Table: { TableName: TABLE } });
    client.close();
    const broken = new DynamoLiteClient({ env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' } });
    expect(() => broken.warm()).not.toThrow();
    await expect(broken.call('GetItem', { TableName: TABLE, Key: {} })).rejects.toMatchObject({ name: 'ConfigError' });
  });
});

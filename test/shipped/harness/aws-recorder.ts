import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ACCOUNT, REGION } from './synthesized';

/**
 * A loopback recorder in front of a test's AWS stand-ins (dynalite, the EC2 Query API server, a Secrets
 * Manager stub, the SSM server): it notes who called what (the access key in the SigV4 Authorization header, the operation,
 * the resources and, for DynamoDB, the item keys), then forwards the request unchanged and streams the answer
 * back. Each function gets its own access key, so the calls can be checked against that function's policy.
 */
export interface AwsCall {
  readonly accessKeyId: string;
  readonly service: 'dynamodb' | 'ec2' | 'secretsmanager' | 'ssm';
  /** IAM action, e.g. 'dynamodb:GetItem'. */
  readonly action: string;
  /** ARNs the call touches ('*' for actions without resource-level permissions). */
  readonly resources: readonly string[];
  /** DynamoDB: the Key / Item attributes sent (for dynamodb:LeadingKeys conditions). */
  readonly keys?: readonly Record<string, { S?: string; N?: string }>[];
  /**
   * DynamoDB UpdateItem: every attribute name the request names (key, and each ExpressionAttributeNames
   * value: update and condition alike), a superset of what AWS puts in dynamodb:Attributes, so a policy
   * limited by it is checked no more loosely than AWS would.
   */
  readonly attributes?: readonly string[];
  /** DynamoDB: ReturnValues when the request sets it (dynamodb:ReturnValues). */
  readonly returnValues?: string;
}

export interface AwsRecorder {
  /** Endpoint URL to give a client (AWS_ENDPOINT_URL_<SERVICE>). */
  readonly endpoint: string;
  readonly calls: AwsCall[];
  close(): Promise<void>;
}

const accessKeyOf = (authorization: string | undefined) => /Credential=([^/]+)\//.exec(authorization ?? '')?.[1] ?? 'anonymous';

export const tableArn = (name: string) => `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}`;

function dynamoCall(target: string, body: string): Omit<AwsCall, 'accessKeyId'> {
  const operation = target.replace(/^DynamoDB_\d+\./, '');
  const input = body ? JSON.parse(body) : {};
  const tables: string[] = input.RequestItems ? Object.keys(input.RequestItems) : [input.TableName];
  const resources = tables.map((t) => (input.IndexName ? `${tableArn(t)}/index/${input.IndexName}` : tableArn(t)));
  const keys: Record<string, { S?: string }>[] = [];
  if (input.Key) keys.push(input.Key);
  if (input.Item) keys.push(input.Item);
  for (const request of Object.values((input.RequestItems ?? {}) as Record<string, { Keys?: Record<string, { S?: string }>[] }>)) {
    keys.push(...(request.Keys ?? []));
  }
  const names = (input.ExpressionAttributeNames ?? {}) as Record<string, string>;
  const attributes = operation === 'UpdateItem' ? [...new Set([...Object.keys(input.Key ?? {}), ...Object.values(names)])] : undefined;
  return {
    service: 'dynamodb',
    action: `dynamodb:${operation}`,
    resources,
    keys,
    ...(attributes ? { attributes } : {}),
    ...(typeof input.ReturnValues === 'string' ? { returnValues: input.ReturnValues } : {}),
  };
}

export const instanceArn = (instanceId: string) => `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${instanceId}`;

/** EC2 Query API: StartInstances/StopInstances act on `arn:…:instance/<id>` per InstanceId.N; the rest on '*'. */
function ec2Call(body: string): Omit<AwsCall, 'accessKeyId'> {
  const form = new URLSearchParams(body);
  const action = form.get('Action') ?? 'unknown';
  const ids = [...form.entries()].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
  const scoped = action === 'StartInstances' || action === 'StopInstances';
  return { service: 'ec2', action: `ec2:${action}`, resources: scoped ? ids.map(instanceArn) : ['*'] };
}

/**
 * SSM (JSON 1.1): SendCommand is authorized on its document and on each instance it names; an AWS-owned
 * document (AWS-…) has no account in its ARN. The read calls support no resource-level permissions.
 */
function ssmCall(target: string, body: string): Omit<AwsCall, 'accessKeyId'> {
  const operation = target.replace(/^AmazonSSM\./, '');
  const input = body ? JSON.parse(body) : {};
  if (operation !== 'SendCommand') return { service: 'ssm', action: `ssm:${operation}`, resources: ['*'] };
  const name = String(input.DocumentName ?? '');
  const document = name.startsWith('arn:') ? name : `arn:aws:ssm:${REGION}:${name.startsWith('AWS-') ? '' : ACCOUNT}:document/${name}`;
  return { service: 'ssm', action: 'ssm:SendCommand', resources: [document, ...((input.InstanceIds ?? []) as string[]).map(instanceArn)] };
}

function secretArn(secretId: string): string {
  // IAM evaluates against the secret's full ARN: its name plus the six random characters Secrets Manager adds.
  return secretId.startsWith('arn:') ? secretId : `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${secretId}-AbCdEf`;
}

function describe(service: AwsCall['service'], headers: Record<string, string | string[] | undefined>, body: string): Omit<AwsCall, 'accessKeyId'> {
  if (service === 'dynamodb') return dynamoCall(String(headers['x-amz-target'] ?? ''), body);
  if (service === 'secretsmanager') {
    const operation = String(headers['x-amz-target'] ?? '').replace(/^secretsmanager\./, '');
    return { service, action: `secretsmanager:${operation}`, resources: [secretArn(JSON.parse(body || '{}').SecretId ?? '')] };
  }
  if (service === 'ssm') return ssmCall(String(headers['x-amz-target'] ?? ''), body);
  return ec2Call(body);
}

export async function startAwsRecorder(service: AwsCall['service'], upstream: string): Promise<AwsRecorder> {
  const calls: AwsCall[] = [];
  const target = new URL(upstream);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        calls.push({ accessKeyId: accessKeyOf(req.headers.authorization), ...describe(service, req.headers, body.toString('utf8')) });
      } catch {
        calls.push({ accessKeyId: accessKeyOf(req.headers.authorization), service, action: `${service}:unparsable`, resources: [] });
      }
      const forward = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Secrets Manager's GetSecretValue (JSON 1.1 protocol) on 127.0.0.1, for what reads the portal's secret:
 * the Lambda entry in-process and the shipped bundle (AWS_ENDPOINT_URL_SECRETS_MANAGER). An unknown id, any
 * other operation, or a failure asked for with failNext() is answered as Secrets Manager answers a missing secret;
 * stall(true) makes it read requests and answer nothing (a hung endpoint) until stall(false) or close().
 */
export interface LocalSecretsManager {
  readonly endpoint: string;
  /** SecretId → SecretString. */
  readonly secrets: Map<string, string>;
  /** Requests received so far (answered or failed). */
  calls(): number;
  /** The next `count` requests fail. */
  failNext(count: number): void;
  stall(on: boolean): void;
  close(): Promise<void>;
}

export async function startSecretsManager(): Promise<LocalSecretsManager> {
  const secrets = new Map<string, string>();
  let calls = 0;
  let failures = 0;
  let stalled = false;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      calls++;
      if (stalled) return;
      const id = (JSON.parse(body || '{}') as { SecretId?: string }).SecretId ?? '';
      const value = req.headers['x-amz-target'] === 'secretsmanager.GetSecretValue' ? secrets.get(id) : undefined;
      const failing = failures > 0;
      failures = Math.max(0, failures - 1);
      res.writeHead(value === undefined || failing ? 400 : 200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify(
          value === undefined || failing
            ? { __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." }
            : { ARN: `arn:aws:secretsmanager:us-east-1:123456789012:secret:${id}-AbCdEf`, Name: id, SecretString: value },
        ),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    secrets,
    calls: () => calls,
    failNext: (count) => {
      failures = count;
    },
    stall: (on) => {
      stalled = on;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

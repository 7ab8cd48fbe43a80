import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DescribeInstancesCommandInput, Filter } from '@aws-sdk/client-ec2';
import type { FakeFleet } from './ec2-fleet';
import type { Ec2PowerModel } from './ec2-power';

/**
 * A loopback HTTP server speaking just enough of the EC2 Query API (DescribeInstances) for the SDK, so
 * the CLI can be driven end to end through AWS_ENDPOINT_URL_EC2. Errors thrown by the fleet's `failure`
 * hook are answered as EC2 error XML with their `name` as the code. With a power model (ec2-power.ts), it
 * also answers StartInstances/StopInstances, and applies due state transitions before every answer.
 */
export interface Ec2QueryServer {
  readonly endpoint: string;
  close(): Promise<void>;
}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);

function el(name: string, value: string | number | undefined): string {
  return value === undefined ? '' : `<${name}>${escape(String(value))}</${name}>`;
}

export function describeInputFromForm(form: URLSearchParams): DescribeInstancesCommandInput {
  const filters: Filter[] = [];
  for (let i = 1; form.has(`Filter.${i}.Name`); i++) {
    const values: string[] = [];
    for (let j = 1; form.has(`Filter.${i}.Value.${j}`); j++) values.push(form.get(`Filter.${i}.Value.${j}`)!);
    filters.push({ Name: form.get(`Filter.${i}.Name`)!, Values: values });
  }
  return {
    Filters: filters,
    ...(form.has('MaxResults') ? { MaxResults: Number(form.get('MaxResults')) } : {}),
    ...(form.has('NextToken') ? { NextToken: form.get('NextToken')! } : {}),
  };
}

export async function startEc2QueryServer(fleet: FakeFleet, power?: Ec2PowerModel): Promise<Ec2QueryServer> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      res.setHeader('content-type', 'text/xml;charset=UTF-8');
      power?.settle();
      const powered = power?.answer(form);
      if (powered) {
        res.statusCode = powered.status;
        res.end(powered.body);
        return;
      }
      if (form.get('Action') !== 'DescribeInstances') {
        res.statusCode = 400;
        res.end(`<Response><Errors><Error><Code>InvalidAction</Code><Message>unsupported</Message></Error></Errors><RequestID>x</RequestID></Response>`);
        return;
      }
      let out;
      try {
        out = fleet.describe(describeInputFromForm(form));
      } catch (error) {
        const name = (error as Error).name;
        res.statusCode = name === 'RequestLimitExceeded' ? 503 : 400;
        res.end(`<Response><Errors><Error>${el('Code', name)}${el('Message', (error as Error).message)}</Error></Errors><RequestID>x</RequestID></Response>`);
        return;
      }
      const reservations = (out.Reservations ?? [])
        .map((r) => {
          const instances = (r.Instances ?? [])
            .map(
              (i) =>
                `<item>${el('instanceId', i.InstanceId)}<instanceState>${el('code', i.State?.Code ?? 16)}${el('name', i.State?.Name)}</instanceState>` +
                `${el('privateDnsName', i.PrivateDnsName)}${el('dnsName', i.PublicDnsName)}${el('privateIpAddress', i.PrivateIpAddress)}` +
                `${el('ipAddress', i.PublicIpAddress)}${el('launchTime', i.LaunchTime?.toISOString())}${el('platform', i.Platform)}` +
                `<tagSet>${(i.Tags ?? []).map((t) => `<item>${el('key', t.Key)}${el('value', t.Value)}</item>`).join('')}</tagSet></item>`,
            )
            .join('');
          return `<item>${el('reservationId', r.ReservationId)}<instancesSet>${instances}</instancesSet></item>`;
        })
        .join('');
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
          `<requestId>req</requestId><reservationSet>${reservations}</reservationSet>${el('nextToken', out.NextToken)}</DescribeInstancesResponse>`,
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

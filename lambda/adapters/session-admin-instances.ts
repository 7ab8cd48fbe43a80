import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { boundedHttpHandler } from './sdk-http-handler.js';

/**
 * One question for `sessions rm`: is this instance still there, and in which state? Standard AWS SDK
 * configuration (AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2). An `instance-id` filter rather than
 * `InstanceIds`, so an instance that is gone is an empty answer, not an error.
 */
export type InstanceLookup =
  | { readonly known: true; readonly state: string | undefined }
  | { readonly known: false; readonly reason: string };

export async function lookUpInstanceState(instanceId: string, client?: EC2Client): Promise<InstanceLookup> {
  const ec2 = client ?? new EC2Client({ maxAttempts: 2, requestHandler: boundedHttpHandler({ connectionTimeoutMs: 2000, requestTimeoutMs: 5000 }) });
  try {
    const result = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [instanceId] }] }));
    const instance = result.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
    return { known: true, state: instance?.State?.Name };
  } catch (error) {
    const e = error as Error;
    return { known: false, reason: `${e.name}: ${e.message}` };
  } finally {
    if (!client) ec2.destroy();
  }
}

import type { EC2Client } from '@aws-sdk/client-ec2';
import type { DynamoApi } from '../adapters/dynamodb-api.js';
import { DynamoDbDiscoveryTable } from '../adapters/dynamodb-discovery-table.js';
import { Ec2InstanceSource, type Ec2InstanceSourceOptions } from '../adapters/ec2-instance-source.js';
import { DiscoveryService, type DiscoveryOptions, type DiscoveryResult } from '../core/discovery/run-discovery.js';
import { silentLog } from '../core/log.js';

/**
 * Discovery wired to real SDK clients: what the Lambda handler, the CLI and the benchmarks share.
 * Any client works, including ones pointed at dynalite or mocked with aws-sdk-client-mock.
 */
export interface DiscoveryClients {
  readonly ec2: EC2Client;
  /** The function's lean client, or an SDK client adapted with sdkDynamoApi() (the CLI, tests). */
  readonly dynamodb: DynamoApi;
}

export interface DiscoverySetup extends Partial<DiscoveryOptions> {
  readonly tableName: string;
  readonly ec2Options?: Ec2InstanceSourceOptions;
}

export function createDiscoveryService(clients: DiscoveryClients, setup: DiscoverySetup): DiscoveryService {
  const log = setup.log ?? silentLog;
  return new DiscoveryService(
    new Ec2InstanceSource(clients.ec2, setup.ec2Options),
    new DynamoDbDiscoveryTable(clients.dynamodb, setup.tableName, { log }),
    { ...setup, log },
  );
}

export interface FullReconcileReport {
  readonly result: DiscoveryResult;
  /** DynamoDB PutItem calls (adds and changes). */
  readonly writes: number;
  /** DynamoDB DeleteItem calls. */
  readonly deletes: number;
  readonly ec2Calls: number;
  readonly elapsedMs: number;
}

/** One full reconcile; the counts a benchmark wants. */
export async function runFullReconcile(clients: DiscoveryClients, setup: DiscoverySetup): Promise<FullReconcileReport> {
  const started = performance.now();
  const result = await createDiscoveryService(clients, setup).reconcileAll(setup.dryRun ? 'dry-run' : 'full');
  return {
    result,
    writes: result.counts.puts,
    deletes: result.counts.deletes,
    ec2Calls: result.counts.ec2Calls,
    elapsedMs: performance.now() - started,
  };
}

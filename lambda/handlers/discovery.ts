import { createDiscoveryDynamoApi } from '../adapters/dynamodb-discovery-table.js';
import { createDiscoveryEc2Client } from '../adapters/ec2-instance-source.js';
import { createLogger } from '../adapters/logger.js';
import { PowertoolsMetricsSink } from '../adapters/powertools-metrics.js';
import { MetricService } from '../core/metrics.js';
import { readDiscoveryFunctionConfig } from '../discovery/discovery-config.js';
import { createDiscoveryService } from '../discovery/discovery-runner.js';
import { createDiscoveryHandler } from './discovery-handler.js';

// Lambda entry: configuration and clients are built once per cold start.
const config = readDiscoveryFunctionConfig(process.env);
const logger = createLogger();

export const handler = createDiscoveryHandler({
  service: createDiscoveryService(
    { ec2: createDiscoveryEc2Client(), dynamodb: createDiscoveryDynamoApi() },
    { tableName: config.tableName, tagPrefix: config.tagPrefix, log: logger },
  ),
  logger,
  // Powertools Metrics here: discovery runs on a schedule, so its init cost does not matter.
  metrics: new PowertoolsMetricsSink(MetricService.discovery),
});

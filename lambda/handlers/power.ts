import { createDiscoveryDynamoApi } from '../adapters/dynamodb-discovery-table.js';
import { createPowerEc2Client } from '../adapters/ec2-power-api.js';
import { createLogger } from '../adapters/logger.js';
import { PowertoolsMetricsSink } from '../adapters/powertools-metrics.js';
import { createSignalsSsmClient } from '../adapters/ssm-host-signals.js';
import { MetricService } from '../core/metrics.js';
import { readPowerFunctionConfig } from '../power/power-config.js';
import { createPowerHandler } from './power-handler.js';

// Lambda entry: configuration and clients are built once per cold start.
const config = readPowerFunctionConfig(process.env);
const logger = createLogger();

export const handler = createPowerHandler({
  config,
  clients: { ec2: createPowerEc2Client(), ssm: createSignalsSsmClient(), dynamodb: createDiscoveryDynamoApi() },
  logger,
  // Powertools Metrics, as discovery: a scheduled job, so its init cost does not matter.
  metrics: new PowertoolsMetricsSink(MetricService.power),
});

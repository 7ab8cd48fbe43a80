import { readResolverFunctionConfig } from '../config';
import { createResolveDynamoClient, DynamoDbSessionStore } from '../adapters/dynamodb-session-store';
import { createLogger } from '../adapters/logger';
import { createResolverHandler } from './resolver-handler';

// Lambda entry: configuration and clients are built once per cold start.
const config = readResolverFunctionConfig(process.env);
const logger = createLogger();

export const handler = createResolverHandler({
  store: new DynamoDbSessionStore(createResolveDynamoClient(), config.tableName),
  logger,
  allowedSources: config.allowedSources,
  pathPrefix: config.pathPrefix,
});

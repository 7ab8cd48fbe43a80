import { Logger } from '@aws-lambda-powertools/logger';

export const SERVICE_NAME = 'dcv-session-resolver';

/** Structured JSON logs; level from POWERTOOLS_LOG_LEVEL / LOG_LEVEL, INFO by default. */
export function createLogger(options: { serviceName?: string; logLevel?: string } = {}): Logger {
  return new Logger({
    serviceName: options.serviceName ?? SERVICE_NAME,
    ...(options.logLevel ? { logLevel: options.logLevel as 'INFO' } : {}),
  });
}

export { LambdaLog } from './lambda-log.js';

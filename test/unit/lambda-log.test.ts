import { describe, expect, it } from 'vitest';
import { LambdaLog } from '../../lambda/adapters/lambda-log';
import { lambdaContext } from '../helpers/function-url-event';

/** The resolver function's lean logger: Powertools' keys, the invocation's fields, Lambda's log level. */
function recorder(options: ConstructorParameters<typeof LambdaLog>[0] = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = new LambdaLog({ env: {}, ...options, write: (text) => lines.push(JSON.parse(text) as Record<string, unknown>) });
  return { log, lines };
}

describe('LambdaLog', () => {
  it("writes Powertools' keys, then the invocation's fields, then the line's own", () => {
    const { log, lines } = recorder({ logLevel: 'INFO' });
    log.addContext(lambdaContext('aaaa'));
    log.info('request', { sessionId: 'console', status: 200 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEqual({
      level: 'INFO',
      message: 'request',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      service: 'dcv-session-resolver',
      cold_start: true,
      function_arn: 'arn:aws:lambda:us-east-1:123456789012:function:DcvSessionResolver-Resolver',
      function_memory_size: 256,
      function_name: 'DcvSessionResolver-Resolver',
      function_request_id: 'aaaa',
      sessionId: 'console',
      status: 200,
    });
  });

  it('marks only the first invocation as the cold start, and replaces the request id each time', () => {
    const { log, lines } = recorder({ logLevel: 'INFO' });
    log.addContext(lambdaContext('first'));
    log.info('one');
    log.addContext(lambdaContext('second'));
    log.info('two');
    expect(lines.map((l) => [l.function_request_id, l.cold_start])).toEqual([
      ['first', true],
      ['second', false],
    ]);
  });

  it('filters by level: AWS_LAMBDA_LOG_LEVEL, then the option, then POWERTOOLS_LOG_LEVEL / LOG_LEVEL', () => {
    const fromLambda = recorder({ logLevel: 'DEBUG', env: { AWS_LAMBDA_LOG_LEVEL: 'ERROR' } });
    fromLambda.log.warn('dropped');
    fromLambda.log.error('kept');
    expect(fromLambda.lines.map((l) => l.message)).toEqual(['kept']);

    const fromEnv = recorder({ env: { POWERTOOLS_LOG_LEVEL: 'WARN' } });
    fromEnv.log.info('dropped');
    fromEnv.log.warn('kept');
    expect(fromEnv.lines.map((l) => [l.level, l.message])).toEqual([['WARN', 'kept']]);

    const silent = recorder({ logLevel: 'SILENT' });
    silent.log.error('dropped');
    expect(silent.lines).toEqual([]);
  });

  it('takes the service name from POWERTOOLS_SERVICE_NAME', () => {
    const { log, lines } = recorder({ env: { POWERTOOLS_SERVICE_NAME: 'my-resolver' } });
    log.info('x');
    expect(lines[0]!.service).toBe('my-resolver');
  });
});

import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ASSET_HANDLER, FUNCTION_BUNDLES, functionAssetDir, type FunctionName } from './function-assets.js';

export interface DcvFunctionProps {
  /** Which of the package's pre-built functions (assets/<name>/, built by `npm run build`). */
  readonly bundle: FunctionName;
  readonly description: string;
  readonly environment?: Record<string, string>;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default Duration.seconds(10) */
  readonly timeout?: Duration;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /**
   * Deploy the bundle with the AWS SDK v3 inside instead of the one that uses the runtime's copy: measured
   * faster to import (tree-shaken, one file) and pins the SDK version the tests ran against. @default true
   */
  readonly bundleAwsSdk?: boolean;
  /** Reserved concurrency (a cost cap). @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
}

/**
 * Every function of this product: Node.js 24, arm64, the package's pre-built bundle (lib/function-assets.ts:
 * minified ESM, built at pack time, the one the tests ran), source maps where the bundle has them, and its
 * own log group with an explicit retention. Its role starts with exactly one permission, writing to that log
 * group (no AWS managed policy); callers grant the rest.
 */
export class DcvFunction extends LambdaFunction {
  readonly logGroupRef: LogGroup;

  constructor(scope: Construct, id: string, props: DcvFunctionProps) {
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new Role(scope, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description}: execution role`,
    });
    // Streams of this function's own log group only (the log group ARN attribute ends in ':*').
    logGroup.grantWrite(role);
    super(scope, id, {
      role,
      code: Code.fromAsset(functionAssetDir(props.bundle, props.bundleAwsSdk ?? true)),
      handler: ASSET_HANDLER,
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(10),
      logGroup,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: {
        ...(FUNCTION_BUNDLES[props.bundle].sourceMap ? { NODE_OPTIONS: '--enable-source-maps' } : {}),
        ...props.environment,
      },
    });
    this.logGroupRef = logGroup;
  }
}

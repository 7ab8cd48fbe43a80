import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface DcvFunctionProps {
  /** Path of the TypeScript entry file under lambda/handlers. */
  readonly entry: string;
  readonly description: string;
  readonly environment?: Record<string, string>;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default Duration.seconds(10) */
  readonly timeout?: Duration;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /**
   * Bundle the AWS SDK v3 into the function instead of using the runtime's copy: measured faster to
   * import (tree-shaken, one file) and pins the SDK version the tests ran against. @default true
   */
  readonly bundleAwsSdk?: boolean;
  /**
   * AWS SDK clients left out of the bundle even when bundleAwsSdk is on, because the code imports them
   * dynamically on a rare path: they then load from the Lambda runtime's own SDK on first use instead of
   * being parsed at every cold start. (With bundleAwsSdk off, every `@aws-sdk/*` is external anyway.)
   * @default - none
   */
  readonly runtimeSdkModules?: readonly string[];
  /**
   * Ship source maps and run with --enable-source-maps, so uncaught errors show TypeScript locations.
   * Costs cold-start time (the map is parsed at start-up), so it is off where stacks never reach a log.
   * @default false
   */
  readonly sourceMaps?: boolean;
  /** Reserved concurrency (a cost cap). @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
}

/**
 * Every function of this product: Node.js 24 (nodejs24.x, the newest Lambda Node.js runtime, so cdk-nag's
 * latest-runtime rules pass without an acknowledgement; esbuild target node24), arm64, bundled and minified by
 * a local esbuild (no Docker), ESM output, source maps only on request, and its own log group with an explicit
 * retention. Its role starts with exactly one permission, writing to that log group (no AWS managed policy);
 * callers grant the rest.
 */
export class DcvFunction extends NodejsFunction {
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
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(10),
      logGroup,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: {
        ...(props.sourceMaps ? { NODE_OPTIONS: '--enable-source-maps' } : {}),
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        minify: true,
        // Error classes' names are part of the wire format ({"error":"NotFoundError",…}) and of the logs;
        // without this, minification renames them (the deployed resolver answered {"error":"Ke",…}).
        keepNames: true,
        sourceMap: props.sourceMaps ?? false,
        format: OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        // ESM bundles still meet CommonJS dependencies that call require().
        banner: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
        bundleAwsSDK: props.bundleAwsSdk ?? true,
        // Setting externalModules replaces the default externals, so only when the SDK is bundled.
        externalModules: (props.bundleAwsSdk ?? true) && props.runtimeSdkModules?.length ? [...props.runtimeSdkModules] : undefined,
      },
    });
    this.logGroupRef = logGroup;
  }
}

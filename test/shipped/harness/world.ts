import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateTableCommand, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { FakeFleet } from '../../helpers/ec2-fleet';
import { Ec2PowerModel } from '../../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../../helpers/ec2-query-server';
import { startDynalite, type LocalDynamo } from '../../helpers/dynalite';
import { startSecretsManager } from '../../helpers/secrets-manager';
import { startSsmServer, type FakeSsm } from '../../helpers/ssm-server';
import { startAwsRecorder, type AwsCall, type AwsRecorder } from './aws-recorder';
import type { ResourceTags } from './iam-check';
import { startFunction, type RunningFunction } from './lambda-runtime-api';
import { REGION, templateEnvironment, type Synthesized } from './synthesized';

/**
 * Everything a synthesized stack's functions talk to, on loopback: dynalite with the template's own tables,
 * the EC2 Query API over a fake fleet (with start/stop), a Secrets Manager stand-in, Systems Manager with the
 * template's own command documents, each behind a call recorder; and the
 * functions themselves, each started from its asset folder with the template's handler and environment.
 */
export interface World {
  readonly dynamo: LocalDynamo;
  readonly fleet: FakeFleet;
  /** StartInstances/StopInstances over the fleet, with EC2's state transitions. */
  readonly power: Ec2PowerModel;
  /** Systems Manager: the template's SSM documents registered under their test names (synth.documentNames). */
  readonly ssm: FakeSsm;
  /** An instance's tags by its ARN, from the fleet (for the IAM check's tag conditions). */
  readonly instanceTags: ResourceTags;
  readonly calls: () => AwsCall[];
  /** Secrets Manager's answers: SecretId → SecretString. */
  readonly secrets: Map<string, string>;
  /** Starts a function of the template as Lambda would (its own access key, so its calls are attributable). */
  start(functionId: string): Promise<RunningFunction>;
  /** The access key a function's calls are signed with. */
  accessKeyOf(functionId: string): string;
  stop(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** CreateTable input from an AWS::DynamoDB::Table resource: keys, attribute definitions, indexes. */
export function createTableInput(name: string, props: Record<string, unknown>): CreateTableCommandInput {
  const gsis = props.GlobalSecondaryIndexes as CreateTableCommandInput['GlobalSecondaryIndexes'] | undefined;
  const lsis = props.LocalSecondaryIndexes as CreateTableCommandInput['LocalSecondaryIndexes'] | undefined;
  return {
    TableName: name,
    KeySchema: props.KeySchema as CreateTableCommandInput['KeySchema'],
    AttributeDefinitions: props.AttributeDefinitions as CreateTableCommandInput['AttributeDefinitions'],
    BillingMode: (props.BillingMode as 'PAY_PER_REQUEST' | undefined) ?? 'PROVISIONED',
    ...(props.BillingMode === 'PAY_PER_REQUEST' ? {} : { ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } }),
    ...(gsis?.length ? { GlobalSecondaryIndexes: gsis.map((g) => ({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection })) } : {}),
    ...(lsis?.length ? { LocalSecondaryIndexes: lsis } : {}),
  };
}

export interface WorldOptions {
  readonly node?: string;
  /**
   * A CA file the functions trust (NODE_EXTRA_CA_CERTS): it stands for the public CAs a Lambda function
   * trusts, so a loopback https issuer with a test certificate can play a real one.
   */
  readonly trustedCaFile?: string;
}

export async function startWorld(synth: Synthesized, options: WorldOptions = {}): Promise<World> {
  const dynamo = await startDynalite();
  for (const [id, name] of Object.entries(synth.tableNames)) {
    await dynamo.client().send(new CreateTableCommand(createTableInput(name, synth.template.Resources[id]!.Properties)));
  }
  const fleet = new FakeFleet();
  const power = new Ec2PowerModel(fleet);
  const ec2: Ec2QueryServer = await startEc2QueryServer(fleet, power);
  const secretsManager = await startSecretsManager();
  // Each document as CloudFormation would create it: its content, under the name the functions are given.
  const documents = Object.fromEntries(
    Object.entries(synth.documentNames).map(([id, name]) => [name, synth.template.Resources[id]!.Properties.Content as unknown]),
  );
  const ssm = await startSsmServer({ documents });
  const recorders: AwsRecorder[] = [
    await startAwsRecorder('dynamodb', dynamo.endpoint),
    await startAwsRecorder('ec2', ec2.endpoint),
    await startAwsRecorder('secretsmanager', secretsManager.endpoint),
    await startAwsRecorder('ssm', ssm.endpoint),
  ];
  const [dynamoRec, ec2Rec, secretsRec, ssmRec] = recorders as [AwsRecorder, AwsRecorder, AwsRecorder, AwsRecorder];
  const running: RunningFunction[] = [];
  const accessKeyOf = (functionId: string) => `AKIA${functionId.replace(/[^A-Za-z0-9]/g, '').toUpperCase()}`;
  const node = options.node ?? process.execPath;

  const instanceTags: ResourceTags = (arn) => {
    const instance = fleet.instances.get(arn.slice(arn.lastIndexOf('/') + 1));
    return instance ? Object.fromEntries((instance.Tags ?? []).map((t) => [t.Key!, t.Value ?? ''])) : undefined;
  };

  return {
    dynamo,
    fleet,
    power,
    ssm: ssm.ssm,
    instanceTags,
    secrets: secretsManager.secrets,
    calls: () => recorders.flatMap((r) => r.calls),
    accessKeyOf,
    async start(functionId) {
      const props = synth.template.Resources[functionId]!.Properties;
      const name = `${synth.stackName}-${functionId}`;
      const fn = await startFunction({
        taskRoot: synth.assetDir(functionId),
        handler: props.Handler as string,
        node,
        timeoutMs: ((props.Timeout as number | undefined) ?? 3) * 1000,
        env: {
          // Lambda's reserved variables (the subset a Node.js function can see that matters here).
          AWS_REGION: REGION,
          AWS_DEFAULT_REGION: REGION,
          AWS_EXECUTION_ENV: `AWS_Lambda_${props.Runtime as string}`,
          AWS_LAMBDA_FUNCTION_NAME: name,
          AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
          AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(props.MemorySize ?? 128),
          AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
          AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${name}`,
          AWS_LAMBDA_LOG_STREAM_NAME: '2026/12/02/[$LATEST]0123456789abcdef',
          AWS_ACCESS_KEY_ID: accessKeyOf(functionId),
          AWS_SECRET_ACCESS_KEY: 'shipped-test-secret',
          AWS_SESSION_TOKEN: 'shipped-test-session',
          LAMBDA_RUNTIME_DIR: '/var/runtime',
          TZ: ':UTC',
          LANG: 'en_US.UTF-8',
          PATH: `${path.dirname(node)}:/usr/local/bin:/usr/bin:/bin`,
          // The runtime's own AWS SDK (see runtime-sdk-hook.mjs).
          RUNTIME_SDK_ROOT: REPO_ROOT,
          // The loopback stand-ins: the SDK's and the lean client's standard endpoint settings.
          AWS_ENDPOINT_URL_DYNAMODB: dynamoRec.endpoint,
          AWS_ENDPOINT_URL_EC2: ec2Rec.endpoint,
          AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsRec.endpoint,
          AWS_ENDPOINT_URL_SSM: ssmRec.endpoint,
          ...(options.trustedCaFile ? { NODE_EXTRA_CA_CERTS: options.trustedCaFile } : {}),
          // What the template sets, resolved.
          ...templateEnvironment(synth, functionId),
        },
      });
      running.push(fn);
      return fn;
    },
    async stop() {
      await Promise.all(running.map((f) => f.stop()));
      for (const r of recorders) await r.close();
      await ec2.close();
      await ssm.close();
      await secretsManager.close();
      await dynamo.stop();
    },
  };
}

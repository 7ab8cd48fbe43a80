import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { DcvResolverStack, type DcvResolverStackProps } from '../../../lib/dcv-resolver-stack';

/**
 * One real synthesis of the shipped stack into a cloud assembly outside this repository (so a bundle can't
 * quietly find this repository's node_modules by walking up), and what a test needs from its template.
 */
export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Resource = { Type: string; Properties?: any; Metadata?: Record<string, unknown> };
export type Template = { Resources: Record<string, Resource> };

export interface Synthesized {
  readonly outdir: string;
  readonly stackName: string;
  readonly template: Template;
  /** Logical ids of every AWS::Lambda::Function in the template. */
  readonly functions: readonly string[];
  /** The table name each AWS::DynamoDB::Table gets in these tests (its TableName, or `<logical id>-shipped`). */
  readonly tableNames: Readonly<Record<string, string>>;
  /** The name each AWS::SSM::Document gets in these tests (its Name, or `<stack>-<logical id>`, as CloudFormation generates one). */
  readonly documentNames: Readonly<Record<string, string>>;
  /** The asset folder in the cloud assembly that the function's Code names. */
  assetDir(functionId: string): string;
  /** The one function whose id starts with `prefix`. */
  functionId(prefix: string): string;
  /** The test name of the one table whose id starts with `prefix` ('Sessions', 'Tokens'). */
  tableName(prefix: string): string;
  remove(): void;
}

export function synthesize(stackName: string, props: DcvResolverStackProps): Synthesized {
  const outdir = mkdtempSync(path.join(tmpdir(), 'dcv-shipped-'));
  const app = new App({ outdir });
  new DcvResolverStack(app, stackName, { ...props, env: { account: ACCOUNT, region: REGION } });
  app.synth();
  const template = JSON.parse(readFileSync(path.join(outdir, `${stackName}.template.json`), 'utf8')) as Template;
  const functions = Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([id]) => id);
  const tableNames: Record<string, string> = {};
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type === 'AWS::DynamoDB::Table') tableNames[id] = (r.Properties?.TableName as string | undefined) ?? `${id}-shipped`;
  }
  const documentNames: Record<string, string> = {};
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type === 'AWS::SSM::Document') documentNames[id] = (r.Properties?.Name as string | undefined) ?? `${stackName}-${id}`;
  }
  return {
    outdir,
    stackName,
    template,
    functions,
    tableNames,
    documentNames,
    assetDir(functionId) {
      const code = template.Resources[functionId]!.Properties.Code as { S3Key?: unknown };
      const key = typeof code.S3Key === 'string' ? code.S3Key : undefined;
      if (!key?.endsWith('.zip')) throw new Error(`${functionId}: Code.S3Key is not an asset zip: ${JSON.stringify(code)}`);
      return path.join(outdir, `asset.${key.slice(0, -'.zip'.length)}`);
    },
    functionId: (prefix) => onlyOne('function', functions, prefix),
    tableName: (prefix) => tableNames[onlyOne('table', Object.keys(tableNames), prefix)]!,
    remove: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

/** The one logical id of `ids` that starts with `prefix` (ids carry a hash suffix). */
function onlyOne(what: string, ids: readonly string[], prefix: string): string {
  const matches = ids.filter((id) => id.startsWith(prefix));
  if (matches.length !== 1) throw new Error(`expected one ${what} '${prefix}*', found ${JSON.stringify(ids)}`);
  return matches[0]!;
}

/**
 * CloudFormation intrinsics as they resolve in these tests: tables to their names and ARNs, SSM documents to
 * their names, pseudo
 * parameters to the test account and region. Anything else is returned as a `{{unresolved …}}` marker,
 * so a test sees it rather than a silently wrong value.
 */
export function resolveValue(
  synth: Pick<Synthesized, 'template' | 'tableNames' | 'stackName'> & Partial<Pick<Synthesized, 'documentNames'>>,
  value: unknown,
): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const v = value as Record<string, unknown>;
  if ('Ref' in v) {
    const ref = v.Ref as string;
    const pseudo: Record<string, string> = {
      'AWS::Partition': 'aws',
      'AWS::Region': REGION,
      'AWS::AccountId': ACCOUNT,
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': synth.stackName,
    };
    if (ref in pseudo) return pseudo[ref]!;
    if (ref in synth.tableNames) return synth.tableNames[ref]!;
    if (synth.documentNames && ref in synth.documentNames) return synth.documentNames[ref]!;
    return `{{unresolved Ref ${ref}}}`;
  }
  if ('Fn::GetAtt' in v) {
    const [id, attr] = v['Fn::GetAtt'] as [string, string];
    if (id in synth.tableNames && attr === 'Arn') return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${synth.tableNames[id]}`;
    return `{{unresolved GetAtt ${id}.${attr}}}`;
  }
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveValue(synth, p)).join(sep);
  }
  return `{{unresolved ${JSON.stringify(value)}}}`;
}

/** The environment the template gives a function, resolved. */
export function templateEnvironment(synth: Synthesized, functionId: string): Record<string, string> {
  const vars = (synth.template.Resources[functionId]!.Properties.Environment?.Variables ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, resolveValue(synth, v)]));
}

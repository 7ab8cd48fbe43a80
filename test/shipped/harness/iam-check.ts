import { runSimulation } from '@cloud-copilot/iam-simulate';
import type { AwsCall } from './aws-recorder';
import { ACCOUNT, resolveValue, type Synthesized } from './synthesized';

/**
 * What a function's role allows, from the template alone: the statements of every AWS::IAM::Policy attached
 * to the role and the role's inline policies, resources resolved to the test account's ARNs, evaluated by an
 * outside IAM policy evaluator (@cloud-copilot/iam-simulate: every condition operator, wildcards, actions and
 * resource types checked against AWS's own service reference) rather than by a matcher of our own. `denied`
 * lists each recorded call the role would not allow, so a missing grant fails a test here instead of in an
 * account.
 *
 * The request context is what AWS would send: for DynamoDB item calls, `dynamodb:LeadingKeys` is the
 * partition key values the call names (the recorder keeps Key/Item), so a `lease:*` condition is evaluated
 * on the real key; for UpdateItem, `dynamodb:Attributes` is every attribute name the request names and
 * `dynamodb:ReturnValues` what it asks back. For EC2 start/stop and SSM SendCommand on an instance, the
 * instance's tags (from `resourceTags`, the fake fleet's) as the tag condition keys AWS documents.
 */
interface Statement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

export function roleStatements(synth: Synthesized, functionId: string): Statement[] {
  const resources = synth.template.Resources;
  const role = resources[functionId]!.Properties.Role as { 'Fn::GetAtt'?: [string, string] };
  const roleId = role['Fn::GetAtt']?.[0];
  if (!roleId) throw new Error(`${functionId}: role is not a resource of this template`);
  const statements: Statement[] = [];
  for (const policy of (resources[roleId]!.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]) {
    statements.push(...policy.PolicyDocument.Statement);
  }
  for (const r of Object.values(resources)) {
    if (r.Type !== 'AWS::IAM::Policy') continue;
    const roles = (r.Properties.Roles ?? []) as { Ref?: string }[];
    if (roles.some((x) => x.Ref === roleId)) statements.push(...(r.Properties.PolicyDocument.Statement as Statement[]));
  }
  return statements;
}

function hashKeyOf(synth: Synthesized, tableName: string): string | undefined {
  const id = Object.entries(synth.tableNames).find(([, name]) => name === tableName)?.[0];
  const schema = id ? (synth.template.Resources[id]!.Properties.KeySchema as { AttributeName: string; KeyType: string }[]) : [];
  return schema.find((k) => k.KeyType === 'HASH')?.AttributeName;
}

/** An instance's tags by its ARN (the fleet's), for the tag condition keys of calls that act on instances. */
export type ResourceTags = (arn: string) => Readonly<Record<string, string>> | undefined;

/** The condition keys AWS puts in this request's context (those this stack's policies can test). */
function contextOf(synth: Synthesized, call: AwsCall, resource: string, resourceTags?: ResourceTags): Record<string, string | string[]> {
  if (call.service === 'ec2' || call.service === 'ssm') {
    // EC2 actions on an instance carry its tags as aws:ResourceTag (and ec2:ResourceTag); SendCommand on an
    // instance carries them as aws:ResourceTag and ssm:resourceTag (AWS's service reference, the instance resource).
    if (!/:instance\//.test(resource)) return {};
    const tags = resourceTags?.(resource) ?? {};
    const service = call.service === 'ec2' ? 'ec2:ResourceTag' : 'ssm:resourceTag';
    return Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`aws:ResourceTag/${k}`, v], [`${service}/${k}`, v]]));
  }
  if (call.service !== 'dynamodb') return {};
  const context: Record<string, string | string[]> = {};
  if (call.attributes) context['dynamodb:Attributes'] = [...call.attributes];
  if (call.returnValues) context['dynamodb:ReturnValues'] = call.returnValues;
  if (!call.keys?.length) return context;
  const table = /:table\/([^/]+)/.exec(resource)?.[1];
  const hashKey = table && hashKeyOf(synth, table);
  if (!hashKey) return context;
  const values = call.keys.map((k) => k[hashKey]?.S ?? k[hashKey]?.N).filter((v): v is string => v !== undefined);
  return values.length > 0 ? { ...context, 'dynamodb:LeadingKeys': [...new Set(values)] } : context;
}

/** The role's identity policy as IAM reads it: one document, every CloudFormation reference resolved. */
export function rolePolicy(synth: Synthesized, functionId: string) {
  return {
    Version: '2012-10-17',
    Statement: roleStatements(synth, functionId).map((s) => ({
      ...s,
      Resource: [s.Resource].flat().map((r) => resolveValue(synth, r)),
    })),
  };
}

/** Calls (action on resource) the function's role would refuse, with the evaluator's reason when it could not decide. */
export async function denied(synth: Synthesized, functionId: string, calls: readonly AwsCall[], resourceTags?: ResourceTags): Promise<string[]> {
  const policy = rolePolicy(synth, functionId);
  const out: string[] = [];
  for (const call of calls) {
    for (const resource of call.resources) {
      const result = await runSimulation(
        {
          request: {
            principal: `arn:aws:iam::${ACCOUNT}:role/${synth.stackName}-${functionId}-role`,
            action: call.action,
            resource: { resource, accountId: ACCOUNT },
            contextVariables: contextOf(synth, call, resource, resourceTags),
          },
          identityPolicies: [{ name: `${functionId}-policy`, policy }],
          serviceControlPolicies: [],
          resourceControlPolicies: [],
        },
        { simulationMode: 'Strict' },
      );
      if (result.resultType === 'error') out.push(`${call.action} on ${resource}: not evaluable (${JSON.stringify(result.errors)})`);
      else if (result.overallResult !== 'Allowed') out.push(`${call.action} on ${resource}`);
    }
  }
  return [...new Set(out)];
}

import type { AwsCall } from './aws-recorder';
import { resolveValue, type Synthesized } from './synthesized';

/**
 * What a function's role allows, from the template alone: the statements of every AWS::IAM::Policy attached
 * to the role and the role's inline policies, resources resolved to the test account's ARNs. `denied` lists
 * each recorded call no Allow statement covers (or a Deny does), so a missing grant fails a test here
 * instead of in an account. Conditions other than dynamodb:LeadingKeys are not understood and so never allow.
 */
interface Statement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

const wildcard = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');

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

function conditionHolds(synth: Synthesized, statement: Statement, call: AwsCall, resource: string): boolean {
  if (!statement.Condition) return true;
  for (const [operator, entries] of Object.entries(statement.Condition)) {
    for (const [key, expected] of Object.entries(entries)) {
      if (key !== 'dynamodb:LeadingKeys' || !['ForAllValues:StringLike', 'ForAllValues:StringEquals'].includes(operator)) return false;
      const table = /:table\/([^/]+)/.exec(resource)?.[1];
      const hashKey = table && hashKeyOf(synth, table);
      if (!hashKey) return false;
      const values = (call.keys ?? []).map((k) => k[hashKey]?.S ?? k[hashKey]?.N).filter((v): v is string => v !== undefined);
      const patterns = [expected].flat();
      const matches = (v: string) => patterns.some((p) => (operator.endsWith('StringLike') ? wildcard(p).test(v) : p === v));
      if (values.length === 0 || !values.every(matches)) return false;
    }
  }
  return true;
}

function covers(synth: Synthesized, statement: Statement, call: AwsCall, resource: string): boolean {
  const actions = [statement.Action].flat();
  if (!actions.some((a) => wildcard(a).test(call.action))) return false;
  const allowed = [statement.Resource].flat().map((r) => resolveValue(synth, r));
  if (!allowed.some((r) => wildcard(r).test(resource))) return false;
  return conditionHolds(synth, statement, call, resource);
}

/** Calls (action on resource) the function's role would refuse. */
export function denied(synth: Synthesized, functionId: string, calls: readonly AwsCall[]): string[] {
  const statements = roleStatements(synth, functionId);
  const out: string[] = [];
  for (const call of calls) {
    for (const resource of call.resources) {
      const allow = statements.some((s) => s.Effect === 'Allow' && covers(synth, s, call, resource));
      const deny = statements.some((s) => s.Effect === 'Deny' && covers(synth, s, call, resource));
      if (!allow || deny) out.push(`${call.action} on ${resource}`);
    }
  }
  return [...new Set(out)];
}

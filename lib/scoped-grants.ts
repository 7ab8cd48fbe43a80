import { Stack } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';

/**
 * UpdateItem on the table (not its indexes) that may name these attributes only (the key and any attribute a
 * condition reads among them) and return nothing: the verifier's LastVerifiedAt, the power pass's runtime
 * attributes, the portal's start claim. DynamoDB's fine-grained access control (`dynamodb:Attributes`).
 */
export function attributeUpdateGrant(table: Table, attributes: readonly string[]): PolicyStatement {
  return new PolicyStatement({
    actions: ['dynamodb:UpdateItem'],
    resources: [table.tableArn],
    conditions: {
      'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...attributes] },
      StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
    },
  });
}

/**
 * `actions` on this account's and region's EC2 instances (`instance/*`: the instances are not known at deploy
 * time) that carry the tag `tagKey`, tested with `conditionKey` (`aws:ResourceTag` for EC2 actions,
 * `ssm:resourceTag` for SendCommand). Several such statements OR together: one per tag.
 */
export function taggedInstancesGrant(scope: Construct, actions: readonly string[], tagKey: string, conditionKey: 'aws:ResourceTag' | 'ssm:resourceTag'): PolicyStatement {
  const instances = Stack.of(scope).formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
  return new PolicyStatement({ actions: [...actions], resources: [instances], conditions: { Null: { [`${conditionKey}/${tagKey}`]: 'false' } } });
}

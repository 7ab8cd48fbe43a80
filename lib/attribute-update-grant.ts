import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';

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

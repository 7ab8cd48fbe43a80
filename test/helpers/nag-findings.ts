import { Annotations, Match } from 'aws-cdk-lib/assertions';
import type { Stack } from 'aws-cdk-lib';

/**
 * Every AwsSolutions or Serverless finding cdk-nag left on the stack (errors and warnings; acknowledged
 * ones are reported as info and are not here), as `<construct path>: <first line of the rule>`.
 */
export function nagFindings(stack: Stack): string[] {
  const annotations = Annotations.fromStack(stack);
  return [
    ...annotations.findError('*', Match.stringLikeRegexp('^(AwsSolutions|Serverless)-')),
    ...annotations.findWarning('*', Match.stringLikeRegexp('^(AwsSolutions|Serverless)-')),
  ].map((m) => `${m.id}: ${String(m.entry.data).split('\n')[0]}`);
}

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, describe, expect, it } from 'vitest';
import { SsmHostSignalsReader } from '../../lambda/adapters/ssm-host-signals';
import { parseSignals } from '../../lambda/core/power/signals';
import { HostSignalsDocument } from '../../lib/host-signals-document';
import { instanceIdOf } from '../helpers/ec2-fleet';
import { dcvSessions, writeFakeDcvHost } from '../helpers/fake-dcv-host';
import { startSsmServer } from '../helpers/ssm-server';

const root = mkdtempSync(join(tmpdir(), 'dcv-signals-doc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function synth() {
  const stack = new Stack(new App({ outdir: join(root, 'cdk.out') }), 'DocTest', { env: { account: '123456789012', region: 'eu-west-3' } });
  const document = new HostSignalsDocument(stack, 'Signals');
  return { stack, document, template: Template.fromStack(stack) };
}

describe('HostSignalsDocument', () => {
  it('is a parameterless Command document whose only step is the shipped script, unchanged', () => {
    const { template, stack, document } = synth();
    const docs = template.findResources('AWS::SSM::Document');
    expect(Object.keys(docs)).toHaveLength(1);
    const props = Object.values(docs)[0]!.Properties as { DocumentType: string; Content: Record<string, unknown> };
    expect(props.DocumentType).toBe('Command');
    const content = props.Content as { schemaVersion: string; parameters?: unknown; mainSteps: { action: string; inputs: { runCommand: string[] } }[] };
    expect(content.schemaVersion).toBe('2.2');
    expect(content.parameters).toBeUndefined();
    expect(content.mainSteps).toHaveLength(1);
    expect(content.mainSteps[0]!.action).toBe('aws:runShellScript');
    const script = readFileSync(new URL('../../host-scripts/dcv-idle-signals.sh', import.meta.url), 'utf8');
    expect(content.mainSteps[0]!.inputs.runCommand.join('\n') + '\n').toBe(script);
    expect(stack.resolve(document.documentArn)).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:eu-west-3:123456789012:document/', { Ref: expect.stringMatching(/^Signals/) }]],
    });
  });

  it('read through SSM by name, runs the script on the host and yields a line the strict parser accepts', async () => {
    const { template } = synth();
    const content = (Object.values(template.findResources('AWS::SSM::Document'))[0]!.Properties as { Content: unknown }).Content;
    const server = await startSsmServer({ documents: { DcvIdleSignals: content } });
    try {
      const id = instanceIdOf(7);
      const host = writeFakeDcvHost(join(root, 'host'), dcvSessions([['console', 1, '2026-03-02T08:00:00Z', '']], [55]));
      server.ssm.hosts.set(id, { binDir: host.bin });
      const client = new SSMClient({ endpoint: server.endpoint, region: 'eu-west-3', credentials: { accessKeyId: 'x', secretAccessKey: 'y' }, maxAttempts: 1 });
      const [signal] = await new SsmHostSignalsReader(client, { command: { documentName: 'DcvIdleSignals' }, pollIntervalMs: 50 }).read([id], Date.now() + 30_000);
      expect(signal!.status).toBe('ok');
      const parsed = parseSignals(signal!.status === 'ok' ? signal!.stdout : '');
      expect(parsed).toMatchObject({ ok: true, signals: { sessions: [{ id: 'console', connections: 1 }], gpu: [55], errors: [] } });
      const sent = server.ssm.calls.find((c) => c.operation === 'SendCommand')!.body;
      expect(sent.DocumentName).toBe('DcvIdleSignals');
      expect(sent.Parameters).toBeUndefined();
    } finally {
      await server.close();
    }
  });
});

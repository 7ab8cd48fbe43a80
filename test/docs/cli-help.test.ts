import { afterEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS, main } from '../../lambda/cli/main';
import { SUB_FLAGS } from '../../lambda/cli/sessions-command';
import { codeBlocks, section } from '../helpers/markdown';

/** What `dcv-resolver ARGS` prints on stdout, through the CLI's own entry (the same path `--help` takes). */
async function helpText(args: string[]): Promise<string> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    expect(await main(args)).toBe(0);
  } finally {
    vi.restoreAllMocks();
  }
  return out;
}

/** The ```text block under a heading of docs/cli.md. */
function shown(heading: string): string {
  const blocks = codeBlocks(section('docs/cli.md', heading)).filter((b) => b.lang === 'text');
  expect(blocks.length, `docs/cli.md "${heading}": one text block`).toBeGreaterThan(0);
  return `${blocks[0]!.body}\n`;
}

afterEach(() => vi.restoreAllMocks());

describe('docs/cli.md shows each command’s --help exactly', () => {
  it('dcv-resolver --help', async () => {
    expect(shown('dcv-resolver')).toBe(await helpText(['--help']));
  });

  it.each(Object.keys(COMMANDS))('%s --help', async (name) => {
    expect(shown(name)).toBe(await helpText([name, '--help']));
  });

  it.each(Object.keys(SUB_FLAGS))('sessions %s --help', async (sub) => {
    expect(shown(`sessions ${sub}`)).toBe(await helpText(['sessions', sub, '--help']));
  });

  it('has a section for each command and nothing else', () => {
    const text = section('docs/cli.md', 'The command line: every command and option');
    const names = [...text.matchAll(/^## (.+)$/gm)].map((m) => m[1]).filter((h) => h !== 'Where to go next' && h !== 'dcv-resolver');
    expect(names).toEqual(Object.keys(COMMANDS));
  });
});

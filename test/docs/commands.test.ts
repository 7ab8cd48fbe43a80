import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../lambda/cli/main';
import { SERVE_OPTIONS } from '../../lambda/cli/serve-command';
import { CLI_GRAMMAR, documentedArgs, documentedInvocations, invocationProblem, type Grammar } from '../helpers/docs-cli';
import { docPages } from '../helpers/markdown';
import { REPO_ROOT } from '../helpers/run-cli';

/** Every documented command, checked against the CLI's own option definitions; the problems found, by place. */
function problems(grammar: Grammar = CLI_GRAMMAR): string[] {
  return documentedInvocations(docPages()).flatMap(({ where, command }) => {
    const problem = invocationProblem(command, grammar);
    return problem === undefined ? [] : [`${where}: ${command}\n    ${problem}`];
  });
}

describe('the grammar the docs are checked against', () => {
  it('covers exactly the CLI’s commands', () => {
    expect(Object.keys(CLI_GRAMMAR).sort()).toEqual(Object.keys(COMMANDS).sort());
  });

  it('reads the docs’ notation: continuations, npx / node bin/…, comments, [optional] brackets, …, redirects', () => {
    const pages = [{ path: 'x.md', text: '```sh\nnpx dcv-resolver serve --sessions s.json \\\n  [--host 127.0.0.1] [--port 9000]   # a comment\nnode bin/dcv-resolver.mjs token revoke TOKEN|ID…\nexport X=1 && dcv-resolver gateway-config --url http://h > out.conf\n```\nProse `npx dcv-resolver doctor --json` and `serve --help`.\n' }];
    const found = documentedInvocations(pages);
    expect(found.map((f) => f.where)).toEqual(['x.md:2', 'x.md:4', 'x.md:5', 'x.md:7']);
    expect(found.map((f) => documentedArgs(f.command))).toEqual([
      ['serve', '--sessions', 's.json', '--host', '127.0.0.1', '--port', '9000'],
      ['token', 'revoke', 'TOKEN|ID'],
      ['gateway-config', '--url', 'http://h'],
      ['doctor', '--json'],
    ]);
    expect(found.map((f) => invocationProblem(f.command))).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('refuses an unknown command, subcommand or option, a value-less option, and a stray argument', () => {
    expect(invocationProblem('npx dcv-resolver serv --sessions x')).toMatch(/unknown command 'serv'/);
    expect(invocationProblem('npx dcv-resolver sessions lst --table T')).toMatch(/unknown subcommand 'sessions lst'/);
    expect(invocationProblem('npx dcv-resolver serve --sessionz x')).toMatch(/--sessionz/);
    expect(invocationProblem('npx dcv-resolver token create --session a --user')).toMatch(/--user/);
    expect(invocationProblem('npx dcv-resolver discover extra --table T')).toMatch(/extra/);
    expect(invocationProblem('npx dcv-resolver token list --all --tokens-dir d')).toBeUndefined();
    expect(invocationProblem('npx dcv-resolver sessions <subcommand> --help')).toBeUndefined();
  });
});

describe('every dcv-resolver command in README.md and docs/', () => {
  it('uses a real command, subcommand and options (each command is shown at least once)', () => {
    const found = documentedInvocations(docPages());
    const shown = new Set(found.map((f) => documentedArgs(f.command)[0]));
    expect(Object.keys(COMMANDS).filter((name) => !shown.has(name))).toEqual([]);
    expect(found.length).toBeGreaterThan(40);
    expect(problems()).toEqual([]);
  });

  it('npm start’s command (package.json) parses too', () => {
    const start = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts.start as string;
    expect(start).toMatch(/^node bin\/dcv-resolver\.mjs /);
    expect(invocationProblem(start)).toBeUndefined();
  });

  it('would fail if a serve option the docs use were renamed in the CLI (the docs still showing the old name)', () => {
    const used = documentedInvocations(docPages())
      .map((f) => documentedArgs(f.command))
      .filter((args) => args[0] === 'serve')
      .flatMap((args) => args.filter((a) => a.startsWith('--')).map((a) => a.slice(2)));
    const name = used.find((option) => Object.hasOwn(SERVE_OPTIONS, option))!;
    expect(name, 'a documented serve option').toBeDefined();
    const { [name]: renamed, ...rest } = SERVE_OPTIONS as Record<string, (typeof SERVE_OPTIONS)[keyof typeof SERVE_OPTIONS]>;
    const grammar: Grammar = { ...CLI_GRAMMAR, serve: { options: { ...rest, [`${name}-renamed`]: renamed! }, positionals: false } };
    const found = problems(grammar);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((p) => / serve /.test(p) && p.includes(`Unknown option '--${name}'`))).toBe(true);
  });
});

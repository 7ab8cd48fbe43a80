import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DISCOVER_OPTIONS } from '../../lambda/cli/discover-command';
import { POWER_OPTIONS } from '../../lambda/cli/power-command';
import { DOCTOR_OPTIONS } from '../../lambda/cli/doctor-command';
import { GATEWAY_CONFIG_OPTIONS } from '../../lambda/cli/gateway-config-command';
import { PROXY_OPTIONS } from '../../lambda/cli/proxy-command';
import { RESOLVE_OPTIONS } from '../../lambda/cli/resolve-command';
import { SERVE_OPTIONS } from '../../lambda/cli/serve-command';
import { STORE_FLAGS, SUB_FLAGS } from '../../lambda/cli/sessions-command';
import { STORE_PARSE_OPTIONS, TOKEN_SUB_OPTIONS } from '../../lambda/cli/token-command';
import { codeBlocks, stripComment, withoutCodeBlocks, type DocPage } from './markdown';

/**
 * The CLI's grammar, from its own option definitions (the objects each command hands to parseArgs), so a
 * documented command is checked against exactly what the CLI accepts: rename a flag there and the docs fail.
 */
type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parser {
  readonly options: Options;
  readonly positionals: boolean;
}

export type Grammar = Record<string, Parser | { readonly subcommands: Record<string, Parser> }>;

export const CLI_GRAMMAR: Grammar = {
  serve: { options: SERVE_OPTIONS, positionals: false },
  proxy: { options: PROXY_OPTIONS, positionals: false },
  token: {
    subcommands: {
      create: { options: { ...STORE_PARSE_OPTIONS, ...TOKEN_SUB_OPTIONS.create }, positionals: false },
      list: { options: { ...STORE_PARSE_OPTIONS, ...TOKEN_SUB_OPTIONS.list }, positionals: false },
      revoke: { options: { ...STORE_PARSE_OPTIONS, ...TOKEN_SUB_OPTIONS.revoke }, positionals: true },
    },
  },
  discover: { options: DISCOVER_OPTIONS, positionals: false },
  power: { options: POWER_OPTIONS, positionals: false },
  // sessions parses positionals for every subcommand and counts them afterwards (ID, FILE).
  sessions: { subcommands: Object.fromEntries(Object.entries(SUB_FLAGS).map(([sub, flags]) => [sub, { options: { ...STORE_FLAGS, ...flags }, positionals: true }])) },
  resolve: { options: RESOLVE_OPTIONS, positionals: false },
  'gateway-config': { options: GATEWAY_CONFIG_OPTIONS, positionals: false },
  doctor: { options: DOCTOR_OPTIONS, positionals: false },
};

/** Where the CLI starts in a line: `dcv-resolver`, `npx dcv-resolver`, or `node …bin/dcv-resolver.mjs`. */
const PROGRAM = /(?:^|[\s;&|(`])(?:npx\s+)?(?:node\s+\S*bin\/dcv-resolver\.mjs|dcv-resolver)(?=\s|$)/;

export interface Invocation {
  readonly where: string;
  readonly command: string;
}

/**
 * Every `dcv-resolver …` command the pages show: in shell code blocks (continuations joined, comments
 * dropped) and in inline code spans of the prose that start with the program's name.
 */
export function documentedInvocations(pages: readonly DocPage[]): Invocation[] {
  const found: Invocation[] = [];
  for (const page of pages) {
    for (const block of codeBlocks(page.text)) {
      if (!['sh', 'bash', 'shell', 'console', ''].includes(block.lang)) continue;
      // A `\` at the end of a line continues the command on the next; it is reported at its first line.
      const lines = block.body.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const first = i;
        let line = lines[i]!;
        while (/\\\s*$/.test(line) && i + 1 < lines.length) line = `${line.replace(/\\\s*$/, ' ')}${lines[++i]!.trim()}`;
        line = stripComment(line);
        const at = PROGRAM.exec(line);
        if (at) found.push({ where: `${page.path}:${block.line + 1 + first}`, command: line.slice(at.index).trim() });
      }
    }
    withoutCodeBlocks(page.text)
      .split('\n')
      .forEach((line, i) => {
        for (const span of line.matchAll(/`([^`]+)`/g)) {
          if (/^(?:npx\s+)?(?:node\s+\S*bin\/dcv-resolver\.mjs|dcv-resolver)(?:\s|$)/.test(span[1]!)) {
            found.push({ where: `${page.path}:${i + 1}`, command: span[1]! });
          }
        }
      });
  }
  return found;
}

/** Shell words up to the first unquoted `>`, `|`, `&` or `;` that starts a word; quotes removed, `$(…)` and `<placeholder>` kept whole. */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (c === "'" || c === '"') {
      const end = command.indexOf(c, i + 1);
      word += command.slice(i + 1, end === -1 ? undefined : end);
      inWord = true;
      i = end === -1 ? command.length : end;
    } else if (c === '<' && command.indexOf('>', i) !== -1) {
      // A <placeholder> (the docs' notation), not a redirect.
      const end = command.indexOf('>', i);
      word += command.slice(i, end + 1);
      inWord = true;
      i = end;
    } else if (c === '$' && command[i + 1] === '(') {
      const end = command.indexOf(')', i);
      word += command.slice(i, end === -1 ? undefined : end + 1);
      inWord = true;
      i = end === -1 ? command.length : end;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (!inWord && ('>|&;'.includes(c) || (c === '2' && command[i + 1] === '>'))) {
      // An operator starts after a space; inside a word (`TOKEN|ID`, a URL's `&`) it is the word's.
      break;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * The arguments after the program's name, with the docs' usage notation taken off: `[--opt VALUE]` brackets
 * (the option is checked as if given), and `…` / `...` repetition marks.
 */
export function documentedArgs(command: string): string[] {
  const words = shellWords(command);
  const program = words.findIndex((w) => /(?:^|\/)dcv-resolver(?:\.mjs)?$/.test(w));
  const args: string[] = [];
  let optional = 0;
  for (let word of words.slice(program + 1)) {
    if (word.startsWith('[-')) {
      word = word.slice(1);
      optional++;
    }
    word = word.replace(/(?:…|\.\.\.)$/, '');
    while (optional > 0 && word.endsWith(']')) {
      word = word.slice(0, -1);
      optional--;
    }
    if (word !== '') args.push(word);
  }
  return args;
}

const isHelp = (arg: string) => arg === '--help' || arg === '-h';
const isPlaceholder = (arg: string) => /^<.*>$/.test(arg);

/** Why the CLI would refuse this command line's shape (unknown command, subcommand or option; a missing value), or undefined. */
export function invocationProblem(command: string, grammar: Grammar = CLI_GRAMMAR): string | undefined {
  const [name, ...rest] = documentedArgs(command);
  if (name === undefined || isHelp(name)) return undefined;
  const entry = Object.hasOwn(grammar, name) ? grammar[name]! : undefined;
  if (!entry) return `unknown command '${name}' (commands: ${Object.keys(grammar).join(', ')})`;
  let parser: Parser;
  let args = rest;
  if ('subcommands' in entry) {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || (isHelp(sub) && subArgs.length === 0)) return undefined;
    if (isPlaceholder(sub) && subArgs.some(isHelp)) return undefined;
    if (!Object.hasOwn(entry.subcommands, sub)) return `unknown subcommand '${name} ${sub}' (subcommands: ${Object.keys(entry.subcommands).join(', ')})`;
    parser = entry.subcommands[sub]!;
    args = subArgs;
  } else {
    parser = entry;
  }
  // The CLI answers --help before parsing anything else.
  if (args.some(isHelp)) return undefined;
  try {
    parseArgs({ args, options: parser.options, strict: true, allowPositionals: parser.positionals });
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

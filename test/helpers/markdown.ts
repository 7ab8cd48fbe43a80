import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { REPO_ROOT } from './run-cli';

/**
 * The documentation as the tests read it: README.md and docs/*.md, their fenced code blocks, headings (with
 * GitHub's anchors), links and sections. Plain line scanning, enough for the Markdown these pages use.
 */

export interface DocPage {
  /** Relative to the repository root, with forward slashes: `README.md`, `docs/sessions.md`. */
  readonly path: string;
  readonly text: string;
}

export function docPages(): DocPage[] {
  const docs = readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)].map((path) => ({ path, text: readFileSync(join(REPO_ROOT, path), 'utf8') }));
}

export function readDoc(path: string): string {
  return readFileSync(join(REPO_ROOT, path), 'utf8');
}

export interface CodeBlock {
  /** The info string's first word (`sh`, `ts`, `toml`), '' when none. */
  readonly lang: string;
  /** The block's lines, with the fence's own indentation removed. */
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

/** Fenced code blocks (``` or ~~~, possibly indented inside a list item). */
export function codeBlocks(text: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !new RegExp(`^ *${fence![0]}{${fence!.length},}\\s*$`).test(lines[j]!); j++) {
      body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!.trimStart());
    }
    blocks.push({ lang: lang ?? '', body: body.join('\n'), line: i + 1 });
    i = j;
  }
  return blocks;
}

/** The text with fenced code blocks blanked (line numbers kept), so headings and links are not read inside them. */
export function withoutCodeBlocks(text: string): string {
  const lines = text.split('\n');
  for (const block of codeBlocks(text)) {
    const count = block.body === '' ? 0 : block.body.split('\n').length;
    for (let k = block.line - 1; k <= block.line + count && k < lines.length; k++) lines[k] = '';
  }
  return lines.join('\n');
}

/** The text a heading shows: inline code, links, images and emphasis reduced to their words (as GitHub renders it). */
export function headingText(markdown: string): string {
  return markdown
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/\*\*(.*?)\*\*/g, '$1')
    .replace(/\*(.*?)\*/g, '$1')
    .trim();
}

/**
 * GitHub's heading anchor (github-slugger): lowercase; drop every character that is not a letter, mark, number,
 * connector punctuation (`_`), space or hyphen; each space becomes a hyphen (runs are not collapsed). A repeated
 * slug gets `-1`, `-2`, … in order of appearance; `seen` carries that count across one page's headings.
 */
export function githubSlug(text: string, seen: Map<string, number> = new Map()): string {
  const base = headingText(text).toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
  // github-slugger's own loop: bump the base's count until the suffixed slug is free, then claim it.
  let slug = base;
  while (seen.has(slug)) {
    seen.set(base, seen.get(base)! + 1);
    slug = `${base}-${seen.get(base)}`;
  }
  seen.set(slug, 0);
  return slug;
}

export interface Heading {
  readonly level: number;
  readonly text: string;
  readonly slug: string;
  readonly line: number;
}

/** ATX headings (`#` to `######`) outside code blocks, each with its GitHub anchor. */
export function headings(text: string): Heading[] {
  const seen = new Map<string, number>();
  const result: Heading[] = [];
  withoutCodeBlocks(text)
    .split('\n')
    .forEach((line, i) => {
      const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      if (m) result.push({ level: m[1]!.length, text: m[2]!, slug: githubSlug(m[2]!, seen), line: i + 1 });
    });
  return result;
}

export interface Link {
  readonly target: string;
  readonly line: number;
}

/** Inline links and images, `[text](target)` / `![alt](target)`, outside code blocks and inline code. */
export function links(text: string): Link[] {
  const result: Link[] = [];
  withoutCodeBlocks(text)
    .split('\n')
    .forEach((line, i) => {
      const prose = line.replace(/`[^`]*`/g, '``');
      for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) result.push({ target: m[1]!, line: i + 1 });
    });
  return result;
}

/**
 * One section of a page: from the heading whose text is `heading` to the next heading of the same or a higher
 * level (or the end). Throws when the page has no such heading, so a renamed section fails the test that reads it.
 */
export function section(path: string, heading: string): string {
  const text = readDoc(path);
  const all = headings(text);
  const start = all.find((h) => h.text === heading);
  if (!start) throw new Error(`${path}: no heading '${heading}' (headings: ${all.map((h) => h.text).join(' | ')})`);
  const end = all.find((h) => h.line > start.line && h.level <= start.level);
  return text.split('\n').slice(start.line - 1, end ? end.line - 1 : undefined).join('\n');
}

/** Shell lines of the sh/bash blocks: continuations joined, comments and blank lines dropped. */
export function shellCommands(text: string): string[] {
  return codeBlocks(text)
    .filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.lang))
    .flatMap((b) => b.body.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((line) => stripComment(line).trim())
    .filter((line) => line !== '');
}

/** A shell line without its trailing `# comment` (a `#` inside quotes, or inside a word like `…#agent1`, stays). */
export function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return line;
}

/**
 * Every relative link and `#anchor` in `pages` that does not resolve: the file (or folder) must exist, and an
 * anchor must be one of the target page's heading anchors. Links with a scheme (https:, mailto:) are not followed.
 * `exists` answers for files that are not among `pages` (images, source files).
 */
export function linkProblems(pages: readonly DocPage[], exists: (path: string) => boolean): string[] {
  const anchors = new Map(pages.map((p) => [p.path, new Set(headings(p.text).map((h) => h.slug))]));
  const problems: string[] = [];
  for (const page of pages) {
    for (const link of links(page.text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue;
      const [rawPath, rawAnchor] = link.target.split('#', 2) as [string, string | undefined];
      const target = rawPath === '' ? page.path : posix.normalize(posix.join(posix.dirname(page.path), decodeURIComponent(rawPath)));
      const where = `${page.path}:${link.line}: ${link.target}`;
      if (target.startsWith('../') || target === '..') {
        problems.push(`${where}: leaves the repository`);
        continue;
      }
      const known = anchors.get(target);
      if (!known && !exists(target)) {
        problems.push(`${where}: no file ${target}`);
        continue;
      }
      if (rawAnchor === undefined) continue;
      if (!known) problems.push(`${where}: #${rawAnchor} points into ${target}, which is not a Markdown page`);
      else if (!known.has(decodeURIComponent(rawAnchor))) problems.push(`${where}: ${target} has no heading with anchor #${rawAnchor}`);
    }
  }
  return problems;
}

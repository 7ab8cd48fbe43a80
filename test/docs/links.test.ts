import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { docPages, githubSlug, headings, linkProblems, links, type DocPage } from '../helpers/markdown';
import { REPO_ROOT } from '../helpers/run-cli';

const exists = (path: string) => existsSync(join(REPO_ROOT, path));

describe('GitHub heading anchors', () => {
  it('lowercase, punctuation dropped except - and _, each space a hyphen', () => {
    expect(githubSlug('Quick start (no AWS needed)')).toBe('quick-start-no-aws-needed');
    expect(githubSlug('`network` mode')).toBe('network-mode');
    expect(githubSlug("The DCV servers' side")).toBe('the-dcv-servers-side');
    expect(githubSlug('Running it on your own host (`serve`)')).toBe('running-it-on-your-own-host-serve');
    expect(githubSlug('What registers, what is written, and who wins')).toBe('what-registers-what-is-written-and-who-wins');
    expect(githubSlug('snake_case and kebab-case: 1.5×')).toBe('snake_case-and-kebab-case-15');
    expect(githubSlug('a  b')).toBe('a--b');
    expect(githubSlug('Über **bold** and [a link](x.md)')).toBe('über-bold-and-a-link');
  });

  it('a repeated heading gets -1, -2, … in order, and a literal "x-1" heading then takes the next free one', () => {
    const seen = new Map<string, number>();
    expect(['Tags', 'Tags', 'Tags', 'Tags 1'].map((h) => githubSlug(h, seen))).toEqual(['tags', 'tags-1', 'tags-2', 'tags-1-1']);
    expect(headings('# A\n\n```sh\n# not a heading\n```\n\n## A\n').map((h) => h.slug)).toEqual(['a', 'a-1']);
  });
});

describe('link checking catches what it should', () => {
  const pages: DocPage[] = [
    { path: 'README.md', text: '# Top\n\nSee [a](docs/a.md#the-part), [self](#top), [pic](docs/pic.png), [web](https://example.com/x#y).\n' },
    { path: 'docs/a.md', text: '# A\n\n## The part\n\nBack to [top](../README.md#top); `[not](a link)`.\n\n```md\n[ignored](nowhere.md)\n```\n' },
  ];
  const files = new Set(['docs/pic.png']);

  it('passes a set of pages whose links all resolve', () => {
    expect(links(pages[1]!.text).map((l) => l.target)).toEqual(['../README.md#top']);
    expect(linkProblems(pages, (p) => files.has(p))).toEqual([]);
  });

  it('reports a missing file, a missing anchor, an anchor into a non-page, and a link out of the repository', () => {
    const broken: DocPage[] = [
      { path: 'README.md', text: '# Top\n\n[x](docs/b.md) [y](docs/a.md#the-parts) [z](#nope) [p](docs/pic.png#frag) [o](../outside.md)\n' },
      pages[1]!,
    ];
    expect(linkProblems(broken, (p) => files.has(p))).toEqual([
      'README.md:3: docs/b.md: no file docs/b.md',
      'README.md:3: docs/a.md#the-parts: docs/a.md has no heading with anchor #the-parts',
      'README.md:3: #nope: README.md has no heading with anchor #nope',
      'README.md:3: docs/pic.png#frag: #frag points into docs/pic.png, which is not a Markdown page',
      'README.md:3: ../outside.md: leaves the repository',
    ]);
  });
});

describe('README.md and docs/', () => {
  const all = docPages();

  it('every relative link and #anchor resolves', () => {
    expect(all.map((p) => p.path)).toContain('docs/cli.md');
    expect(all.reduce((n, p) => n + links(p.text).length, 0)).toBeGreaterThan(50);
    expect(linkProblems(all, exists)).toEqual([]);
  });

  it('the README stays the way in: at most 250 lines, and it links every docs page', () => {
    const readme = all.find((p) => p.path === 'README.md')!;
    expect(readme.text.split('\n').length, 'README.md lines: move detail to a page under docs/').toBeLessThanOrEqual(250);
    const linked = new Set(links(readme.text).map((l) => l.target.split('#')[0]));
    expect(all.filter((p) => p.path !== 'README.md' && !linked.has(p.path)).map((p) => p.path)).toEqual([]);
  });

  it('each docs page says who it is for first and ends with where to go next', () => {
    for (const page of all.filter((p) => p.path.startsWith('docs/'))) {
      const hs = headings(page.text);
      expect(hs[0], page.path).toMatchObject({ level: 1 });
      const afterTitle = page.text.split('\n').slice(hs[0]!.line).find((l) => l.trim() !== '');
      expect(afterTitle, `${page.path}: the first paragraph says who the page is for`).toMatch(/^For /);
      expect(hs.filter((h) => h.level === 2).at(-1)?.text, page.path).toBe('Where to go next');
    }
  });
});

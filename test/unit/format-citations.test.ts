// The code cites its rules as docs/format.md#<anchor>: every cited anchor must exist there, as must
// the headings cited on the other docs/ pages, and no citation of the old out-of-repository
// references (`spec §…`, `cnpg-usage §…`) may come back.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : /\.(ts|mjs|md)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
const sources = [...walk(join(ROOT, 'src')), ...walk(join(ROOT, 'test')), ...walk(join(ROOT, 'docs'))].filter((f) => !f.endsWith('format-citations.test.ts'));
const anchors = new Set([...readFileSync(join(ROOT, 'docs', 'format.md'), 'utf8').matchAll(/<a id="([a-z0-9-]+)"><\/a>/g)].map((m) => m[1]));

describe('docs/format.md citations', () => {
  it('every anchor cited in src/, test/ and docs/ exists in docs/format.md', () => {
    const missing: string[] = [];
    let cited = 0;
    for (const file of sources) {
      // `format.md#a, #b, #c`: the first anchor and those listed after it.
      for (const m of readFileSync(file, 'utf8').matchAll(/format\.md#([a-z0-9-]+)((?:, #[a-z0-9-]+)*)/g)) {
        for (const name of [m[1]!, ...[...m[2]!.matchAll(/#([a-z0-9-]+)/g)].map((x) => x[1]!)]) {
          cited++;
          if (!anchors.has(name)) missing.push(`${relative(ROOT, file)}: #${name}`);
        }
      }
    }
    expect(cited).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it('every other docs/ page cited with an anchor (`configuration.md#proxies`) has that heading or anchor', () => {
    // GitHub's heading ids: lower case, punctuation dropped, spaces as '-', a repeated one suffixed -1, -2…
    const slug = (h: string) => h.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
    const pages = new Map(walk(join(ROOT, 'docs')).map((f) => [f.slice(f.lastIndexOf('/') + 1), f]));
    const anchorsOf = new Map<string, Set<string>>();
    const anchorsIn = (page: string) => {
      if (!anchorsOf.has(page)) {
        const text = readFileSync(page, 'utf8').replace(/```[\s\S]*?```/g, '');
        const seen = new Map<string, number>();
        const ids = new Set([...text.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]!));
        for (const m of text.matchAll(/^#{1,6} (.*)$/gm)) {
          const s = slug(m[1]!.replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
          const n = seen.get(s) ?? 0;
          seen.set(s, n + 1);
          ids.add(n ? `${s}-${n}` : s);
        }
        anchorsOf.set(page, ids);
      }
      return anchorsOf.get(page)!;
    };
    const missing: string[] = [];
    let cited = 0;
    for (const file of [...sources, join(ROOT, 'README.md')]) {
      for (const m of readFileSync(file, 'utf8').matchAll(/([a-z0-9-]+\.md)#([a-z0-9-]+)/g)) {
        if (m[1] === 'format.md') continue; // the test above
        cited++;
        const page = pages.get(m[1]!);
        if (!page || !anchorsIn(page).has(m[2]!)) missing.push(`${relative(ROOT, file)}: ${m[0]}`);
      }
    }
    expect(cited).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });

  it('a section cited by its words (`docs/architecture.md#decisions, "Bundled build"`) is a heading or bold title on that page', () => {
    const pages = new Map(walk(join(ROOT, 'docs')).map((f) => [f.slice(f.lastIndexOf('/') + 1), f]));
    const missing: string[] = [];
    let cited = 0;
    for (const file of [...sources, join(ROOT, 'README.md')]) {
      for (const m of readFileSync(file, 'utf8').matchAll(/([a-z0-9-]+\.md)(?:#[a-z0-9-]+)?\)?,? "([^"\n]{3,120})"/g)) {
        cited++;
        const page = pages.get(m[1]!);
        // The words are in a heading or a bold item's title, not merely somewhere in the text.
        const titles = page ? [...readFileSync(page, 'utf8').matchAll(/^#{1,6} .*$|\*\*[^*\n]+\*\*/gm)].map((t) => t[0]) : [];
        if (!titles.some((t) => t.includes(m[2]!))) missing.push(`${relative(ROOT, file)}: ${m[0]}`);
      }
    }
    expect(cited).toBeGreaterThan(5);
    expect(missing).toEqual([]);
  });

  it('no file cites an out-of-repository reference by section (the barman spec, the CloudNativePG notes)', () => {
    const stale = sources.filter((f) => /(spec|cnpg-usage) §|shared\/reference\//i.test(readFileSync(f, 'utf8')));
    expect(stale.map((f) => relative(ROOT, f))).toEqual([]);
  });
});

// The code cites its rules as docs/format.md#<anchor>: every cited anchor must exist there, and no
// citation of the old out-of-repository reference (`spec §…`) may come back.
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

  it('no file cites the out-of-repository reference by section', () => {
    const stale = sources.filter((f) => /spec §/i.test(readFileSync(f, 'utf8')));
    expect(stale.map((f) => relative(ROOT, f))).toEqual([]);
  });
});

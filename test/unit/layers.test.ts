// The layer rules of docs/architecture.md, checked on the source text: imports point down only
// (cli → wal | backup | retention | verify → catalog → storage, compression, with xlog.ts, errors.ts
// and log.ts below them all), nothing below src/cli/ reads the environment or picks an exit code, and
// WAL names and LSNs are parsed and written in src/xlog.ts only.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

const SRC = join(ROOT, 'src');
const files = (readdirSync(SRC, { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ path: `src/${f}`, text: readFileSync(join(SRC, f), 'utf8') }));
const below = (dirs: string[]) => files.filter((f) => !dirs.some((d) => f.path.startsWith(`src/${d}/`)));
/** The src/ paths a file imports (static and dynamic), resolved from its own directory. */
const importsOf = (f: { path: string; text: string }) =>
  [...f.text.matchAll(/(?:from |import\()\s*'(\.[^']+)'/g)].map((m) => relative(ROOT, join(ROOT, f.path, '..', m[1]!)));
/** Code without comments, so that a comment may name what the code must not do. */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

describe('layers (docs/architecture.md)', () => {
  it('imports point down: catalog, storage, compression, encryption and the leaf modules never import the layers above them', () => {
    const upper = /^src\/(cli|wal|backup|retention|verify)\//;
    const offenders = below(['cli', 'wal', 'backup', 'retention', 'verify']).flatMap((f) =>
      importsOf(f).filter((i) => upper.test(i)).map((i) => `${f.path} → ${i}`));
    expect(offenders).toEqual([]);
  });

  it('nothing outside src/cli imports src/cli', () => {
    const offenders = below(['cli']).flatMap((f) => importsOf(f).filter((i) => i.startsWith('src/cli/')).map((i) => `${f.path} → ${i}`));
    expect(offenders).toEqual([]);
  });

  it('nothing below src/cli reads process.env or decides an exit code', () => {
    const offenders = below(['cli'])
      .filter((f) => f.path !== 'src/errors.ts')
      .flatMap((f) => {
        const c = code(f.text);
        return [
          ...(/process\.env\b/.test(c) ? [`${f.path}: process.env`] : []),
          ...(/\bEXIT\./.test(c) || /process\.exit(Code)?\b/.test(c) || /\.exitCode\s*=[^=]/.test(c) ? [`${f.path}: exit code`] : []),
          // A literal exit code of its own (`… .exitCode : 4`, `exitCode ?? 1`, `{ exitCode: 4 }`).
          ...(/\bexitCode\s*(?::|\?\?|\|\|)\s*\d/.test(c) ? [`${f.path}: literal exit code`] : []),
        ];
      });
    expect(offenders).toEqual([]);
  });

  it('WAL names and LSNs are encoded and parsed in src/xlog.ts only', () => {
    const encoders = files
      .filter((f) => f.path !== 'src/xlog.ts')
      .flatMap((f) => [...code(f.text).matchAll(/.*(\.toString\(16\)\.toUpperCase\(\)\.padStart\(8|parseInt\(\w+(\.\w+)*\.slice\(0, 8\), 16\)|BigInt\(`0x).*/g)]
        .map((m) => `${f.path}: ${m[0].trim()}`));
    expect(encoders).toEqual([]);
  });
});

// `npm run bench NAME` rewrites docs/benchmarks.md: the introduction from its own text, the generated
// section NAME, and nothing else. Run here on a copy of the document, with a stand-in section and
// a build script that does nothing, so that no benchmark runs and the real document is untouched.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

const work = mkdtempSync(join(tmpdir(), 'bench-doc-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm run bench, rewriting docs/benchmarks.md', () => {
  it('replaces only the section it ran and keeps the hand-written parts before and after the generated ones', () => {
    mkdirSync(join(work, 'test', 'bench'), { recursive: true });
    mkdirSync(join(work, 'scripts'));
    mkdirSync(join(work, 'docs'));
    copyFileSync(join(ROOT, 'test', 'bench', 'run.mjs'), join(work, 'test', 'bench', 'run.mjs'));
    writeFileSync(join(work, 'scripts', 'build.mjs'), '');
    writeFileSync(
      join(work, 'test', 'bench', 'verify.mjs'),
      "export const title = 'stand-in';\nexport async function run() { return { headers: ['what'], rows: [['42']], notes: ['stand-in note'] }; }\n",
    );
    const before = readFileSync(join(ROOT, 'docs', 'benchmarks.md'), 'utf8');
    writeFileSync(join(work, 'docs', 'benchmarks.md'), before);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BENCH_')));
    execFileSync(process.execPath, ['test/bench/run.mjs', 'verify'], { cwd: work, env, stdio: 'ignore' });
    const after = readFileSync(join(work, 'docs', 'benchmarks.md'), 'utf8');

    const open = '<!-- bench:verify -->\n';
    const close = '<!-- /bench:verify -->\n';
    // Everything before the section (introduction, "Where each target stands", the other generated
    // sections) and everything after it (the notes on method) is as it was, byte for byte.
    expect(before).toContain('\n## Where each target stands\n');
    expect(after.slice(0, after.indexOf(open))).toBe(before.slice(0, before.indexOf(open)));
    expect(after.slice(after.indexOf(close))).toBe(before.slice(before.indexOf(close)));
    const section = after.slice(after.indexOf(open), after.indexOf(close));
    expect(section).toContain('### stand-in\n');
    expect(section).toContain('| 42 |');
  });
});

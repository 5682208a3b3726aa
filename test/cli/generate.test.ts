// scripts/generate.mjs --check (run by pretest): a committed generated file that differs from what
// the generator writes fails the check with one line naming it, and nothing is written. Runs on a
// copy of bin/, completions/ and the script, with dist/ linked, so the repository is never touched.
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanEnv } from '../helpers/run-bin.ts';
import { ROOT } from '../helpers/servers.ts';

let copy: string;

beforeEach(() => {
  copy = mkdtempSync(join(tmpdir(), 'bc-generate-'));
  for (const dir of ['bin', 'completions']) cpSync(join(ROOT, dir), join(copy, dir), { recursive: true });
  mkdirSync(join(copy, 'scripts'));
  cpSync(join(ROOT, 'scripts', 'generate.mjs'), join(copy, 'scripts', 'generate.mjs'));
  symlinkSync(join(ROOT, 'dist'), join(copy, 'dist'));
});
afterEach(() => rmSync(copy, { recursive: true, force: true }));

const generate = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(copy, 'scripts', 'generate.mjs'), ...args], { env: cleanEnv(), encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('scripts/generate.mjs --check', () => {
  it('passes on the committed files', () => {
    const r = generate('--check');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it.each([['bin/barman-cloud-wal-archive'], ['bin/barman-cloud-wal-restore'], ['completions/_barman-cloud'], ['completions/barman-cloud.bash']])(
    'fails on a hand-edited %s, names it and the command, and writes nothing',
    (path) => {
      appendFileSync(join(copy, path), '# edited by hand\n');
      const edited = readFileSync(join(copy, path), 'utf8');
      const r = generate('--check');
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`generate: ${path} is stale (not what the generator writes): run \`npm run generate\` and commit it\n`);
      expect(readFileSync(join(copy, path), 'utf8')).toBe(edited);
      // Without --check the generator puts it back.
      expect(generate().code).toBe(0);
      expect(readFileSync(join(copy, path), 'utf8')).toBe(readFileSync(join(ROOT, path), 'utf8'));
      expect(generate('--check').code).toBe(0);
    },
  );

  it('fails on a WAL front that lost its executable bit', () => {
    chmodSync(join(copy, 'bin', 'barman-cloud-wal-restore'), 0o644);
    const r = generate('--check');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^generate: bin\/barman-cloud-wal-restore is stale/);
  });
});

// `node scripts/install-check.mjs`: does `npm install -g` of our packed tarball work on a machine
// without a C/C++ toolchain? Packs the checkout, installs the tarball into a fresh prefix with a
// PATH holding only node, npm and basic tools (no cc, c++, gcc, g++, make, python3), then runs the
// installed wal-archive: --version, a real archive into a file store with each native codec, and
// a wal-restore of the zstd one. Exit 0 when all of it works. Needs the npm registry (or a warm
// npm cache); takes ~1 min. `--no-build` packs without running `prepare` (dist/ already built:
// the integration test's case).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'bc-install-check-'));
const TOOLS = ['node', 'npm', 'npx', 'sh', 'ls', 'cat', 'mkdir', 'rm', 'cp', 'mv', 'ln', 'chmod', 'readlink', 'dirname', 'basename', 'uname', 'tar', 'gzip', 'env', 'sed', 'grep'];
const HIDDEN = ['cc', 'c++', 'gcc', 'g++', 'make', 'python3', 'python'];
let failed = false;
const step = (what, ok, detail = '') => {
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}\n`);
  if (!ok) failed = true;
  return ok;
};
try {
  const noBuild = process.argv.includes('--no-build');
  execFileSync('npm', ['pack', ...(noBuild ? ['--ignore-scripts'] : []), '--pack-destination', work], { cwd: root, stdio: ['ignore', 'ignore', noBuild ? 'ignore' : 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  step('npm pack', Boolean(tarball), tarball);

  const bin = join(work, 'tools');
  mkdirSync(bin);
  for (const t of TOOLS) {
    const found = spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
    if (found) symlinkSync(found, join(bin, t));
  }
  const env = { ...process.env, PATH: bin };
  const visible = HIDDEN.filter((t) => spawnSync(join(bin, 'sh'), ['-c', `command -v ${t}`], { env }).status === 0);
  step('toolchain hidden from PATH', visible.length === 0, visible.join(' '));

  const prefix = join(work, 'prefix');
  const install = spawnSync(join(bin, 'npm'), ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, join(work, tarball)], { env, encoding: 'utf8' });
  step('npm install -g of the tarball', install.status === 0, install.status === 0 ? '' : install.stderr.split('\n').filter((l) => /error/.test(l)).slice(-4).join(' | '));

  const exe = join(prefix, 'bin', 'barman-cloud-wal-archive');
  if (existsSync(exe)) {
    const v = spawnSync(exe, ['--version'], { env, encoding: 'utf8' });
    step('barman-cloud-wal-archive --version', v.status === 0 && v.stdout.startsWith('barman-cloud-wal-archive '), v.stdout.trim() || v.stderr.trim());
    const store = join(work, 'store');
    const pgwal = join(work, 'pg_wal');
    mkdirSync(store);
    mkdirSync(pgwal);
    const segment = Buffer.alloc(16 * 1024 * 1024, 7);
    for (let i = 0; i < segment.length; i += 4096) segment.write(`page ${i}`, i);
    // restore refuses a segment without its own long page header (docs/format.md#segment-header):
    // the page address of segment 1 (16 MiB) and the segment size are what it reads
    segment.fill(0, 0, 40);
    segment.writeUInt16LE(0x0002, 2);
    segment.writeBigUInt64LE(16n * 1024n * 1024n, 8);
    segment.writeUInt32LE(16 * 1024 * 1024, 32);
    segment.writeUInt32LE(8192, 36);
    writeFileSync(join(pgwal, '000000010000000000000001'), segment);
    for (const codec of ['--zstd', '--lz4', '--xz', '--snappy']) {
      const a = spawnSync(exe, [codec, `file://${store}`, `srv${codec}`, join(pgwal, '000000010000000000000001')], { env, encoding: 'utf8' });
      step(`barman-cloud-wal-archive ${codec} into the file store`, a.status === 0, a.stderr.trim());
    }
    const restored = join(work, 'restored');
    const r = spawnSync(join(prefix, 'bin', 'barman-cloud-wal-restore'), [`file://${store}`, 'srv--zstd', '000000010000000000000001', restored], { env, encoding: 'utf8' });
    step('barman-cloud-wal-restore of the zstd segment gives the same bytes', r.status === 0 && existsSync(restored) && readFileSync(restored).equals(segment), r.stderr.trim());
  } else step('installed executable present', false, exe);
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

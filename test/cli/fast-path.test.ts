// The shell fronts of barman-cloud-wal-archive and -wal-restore (src/cli/fast-path.ts): the committed
// files match the generator, a spool hit is answered by the shell alone, and everything else goes
// to the Node program. "Answered by the shell" is proven by a NODE_OPTIONS that makes any Node start
// fail: with it, only the shell can succeed.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { walArchiveScript, walRestoreScript } from '../../src/cli/fast-path.ts';
import { spoolDirFor } from '../../src/wal/spool.ts';
import { cleanEnv } from '../helpers/run-bin.ts';
import { ROOT } from '../helpers/servers.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const ARCHIVE = join(ROOT, 'bin', 'barman-cloud-wal-archive');
const RESTORE = join(ROOT, 'bin', 'barman-cloud-wal-restore');
const NO_NODE = { NODE_OPTIONS: '--require /nonexistent/no-node-allowed.js' };

let tmp: string;
let store: string;
let spoolRoot: string;
let walDir: string;

function run(bin: string, args: string[], extra: Record<string, string | undefined> = {}) {
  // Run the file itself, as PostgreSQL's shell does: not through `node <file>`.
  const r = spawnSync(bin, args, { env: cleanEnv(extra), encoding: 'utf8', cwd: tmp });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const seg = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fast-path-'));
  store = `file://${join(tmp, 'store')}`;
  mkdirSync(join(tmp, 'store'));
  spoolRoot = join(tmp, 'spool');
  walDir = join(tmp, 'pg_wal');
  mkdirSync(join(walDir, 'archive_status'), { recursive: true });
  for (let i = 1; i <= 6; i++) {
    // Different content per segment, not zeros.
    const data = Buffer.alloc(16 << 20);
    for (let off = 0; off < data.length; off += 4096) data.writeUInt32LE((i * 7919 + off) >>> 0, off);
    writeFileSync(join(walDir, seg(i)), withLongPageHeader(data, seg(i)));
    writeFileSync(join(walDir, 'archive_status', `${seg(i)}.ready`), '');
  }
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('generated files', () => {
  it('bin/barman-cloud-wal-archive and -wal-restore are what the generator writes (regenerate with npm run generate)', () => {
    expect(readFileSync(ARCHIVE, 'utf8')).toBe(walArchiveScript());
    expect(readFileSync(RESTORE, 'utf8')).toBe(walRestoreScript());
  });

  it('are valid shell and still run under node directly', () => {
    for (const bin of [ARCHIVE, RESTORE]) {
      // The shell part (up to the end of the JavaScript comment) parses; the shell never reads on.
      const text = readFileSync(bin, 'utf8');
      execFileSync('sh', ['-n'], { input: text.slice(0, text.lastIndexOf('*/')) });
      const out = execFileSync(process.execPath, [bin, '--version'], { env: cleanEnv(), encoding: 'utf8' });
      expect(out).toMatch(/^barman-cloud-wal-(archive|restore) 3\.17\.0\n$/);
    }
  });
});

describe('wal-archive', () => {
  const args = (path: string, extra: string[] = []) => [...extra, '--max-parallel', '3', '--spool-dir', spoolRoot, store, 'srv', path];
  const marker = (name: string) => join(spoolDirFor(spoolRoot, store, 'srv'), 'archive', name);

  beforeAll(() => {
    // The first call uploads seg 1 and two more .ready segments, leaving markers for them.
    const r = run(ARCHIVE, args(join(walDir, seg(1))));
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(marker(seg(2)))).toBe(true);
    expect(existsSync(marker(seg(3)))).toBe(true);
  });

  it('answers a spool hit in the shell: no Node, exit 0, marker consumed', () => {
    const r = run(ARCHIVE, args(join(walDir, seg(2)), ['--cloud-provider=aws-s3', '--endpoint-url', 'http://unused', '-q']), NO_NODE);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toBe('');
    expect(existsSync(marker(seg(2)))).toBe(false);
  });

  it('leaves a file changed since its upload to Node', () => {
    const path = join(walDir, seg(3));
    const later = new Date(Date.now() + 5000);
    utimesSync(path, later, later);
    const blocked = run(ARCHIVE, args(path), NO_NODE);
    expect(blocked.code).not.toBe(0);
    expect(existsSync(marker(seg(3)))).toBe(true);
    // Node then compares the content: same bytes, so it is recognised as archived.
    const r = run(ARCHIVE, args(path));
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(marker(seg(3)))).toBe(false);
  });

  it('leaves calls it does not fully understand to Node', () => {
    // PostgreSQL marks archived files .done: the next call's extra uploads are the later ones.
    for (let i = 1; i <= 3; i++) rmSync(join(walDir, 'archive_status', `${seg(i)}.ready`));
    const ready = run(ARCHIVE, args(join(walDir, seg(4))));
    expect(ready.code, ready.stderr).toBe(0);
    const m = readFileSync(marker(seg(5)), 'utf8');
    for (const extra of [['-v'], ['--max-par', '3'], ['--tags', 'a,b']]) {
      writeFileSync(marker(seg(5)), m);
      expect(run(ARCHIVE, args(join(walDir, seg(5)), extra), NO_NODE).code).not.toBe(0);
    }
    // Without parallel archiving the marker is not consulted at all.
    const plain = [store, 'srv', join(walDir, seg(5))];
    expect(run(ARCHIVE, ['--spool-dir', spoolRoot, ...plain], NO_NODE).code).not.toBe(0);
    // And the environment variable turns it on, as for Node.
    expect(run(ARCHIVE, ['--spool-dir', spoolRoot, ...plain], { ...NO_NODE, BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL: '3' }).code).toBe(0);
  });

  it('answers a hit with find and rm alone (the file is looked at by the same find; the spool found in the names file Node wrote)', () => {
    // Each program started costs a few ms of CPU per call here: a PATH of exactly these two.
    const m = readFileSync(marker(seg(6)), 'utf8');
    const programs = (dir: string, names: string[]) => {
      mkdirSync(dir);
      for (const p of names) symlinkSync(execFileSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).trim(), join(dir, p));
      return dir;
    };
    const two = programs(join(tmp, 'two-programs'), ['find', 'rm']);
    const r = run(ARCHIVE, args(join(walDir, seg(6))), { ...NO_NODE, PATH: two });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(marker(seg(6)))).toBe(false);
    // Without the names file, sha256sum finds it as before.
    writeFileSync(marker(seg(6)), m);
    const names = readFileSync(join(spoolRoot, 'names'));
    rmSync(join(spoolRoot, 'names'));
    expect(run(ARCHIVE, args(join(walDir, seg(6))), { ...NO_NODE, PATH: two }).code).not.toBe(0);
    const three = programs(join(tmp, 'three-programs'), ['find', 'sha256sum', 'rm']);
    expect(run(ARCHIVE, args(join(walDir, seg(6))), { ...NO_NODE, PATH: three }).code).toBe(0);
    writeFileSync(join(spoolRoot, 'names'), names, { mode: 0o600 });
    // A WAL path that is a symbolic link shows find the link, not the file the marker describes: Node's.
    writeFileSync(marker(seg(6)), m);
    const linked = join(tmp, 'linked');
    mkdirSync(linked);
    symlinkSync(join(walDir, seg(6)), join(linked, seg(6)));
    expect(run(ARCHIVE, args(join(linked, seg(6))), NO_NODE).code).not.toBe(0);
    expect(existsSync(marker(seg(6)))).toBe(true);
  });
});

describe('wal-restore', () => {
  const spoolArgs = () => ['--parallel', '3', '--spool-dir', spoolRoot, store, 'srv'];
  const spooled = (name: string) => join(spoolDirFor(spoolRoot, store, 'srv'), 'restore', name);
  let out: string;

  beforeAll(() => {
    out = join(tmp, 'restore-out');
    mkdirSync(out);
    const r = run(RESTORE, [...spoolArgs(), seg(1), join(out, 'RECOVERYXLOG')]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(spooled(seg(2)))).toBe(true);
  });

  it('serves a prefetched segment in the shell: no Node, renamed into place', () => {
    const dest = join(out, 'RECOVERYXLOG');
    const r = run(RESTORE, [...spoolArgs(), seg(2), dest], NO_NODE);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(readFileSync(join(walDir, seg(2))))).toBe(true);
    expect(existsSync(spooled(seg(2)))).toBe(false);
  });

  it('serves only the spool of the same store and server (found by the hash of both)', () => {
    const dest = join(out, 'RECOVERYXLOG');
    expect(existsSync(spooled(seg(3)))).toBe(true);
    expect(run(RESTORE, ['--parallel', '3', '--spool-dir', spoolRoot, store, 'other', seg(3), dest], NO_NODE).code).not.toBe(0);
    expect(run(RESTORE, ['--parallel', '3', '--spool-dir', spoolRoot, `${store}/`, 'srv', seg(3), dest], NO_NODE).code).not.toBe(0);
    expect(existsSync(spooled(seg(3)))).toBe(true);
  });

  it('finds the spool of a server name with shell-special characters by the same hash as Node', () => {
    const odd = 'srv \\$x`%s\'"';
    const dest = join(out, 'RECOVERYXLOG');
    const args = (name: string) => ['--parallel', '3', '--spool-dir', spoolRoot, store, odd, name, dest];
    // Nothing archived under that name: Node finds nothing (exit 1) but the spool is made for it.
    expect(run(RESTORE, args(seg(1))).code).toBe(1);
    const restoreDir = join(spoolDirFor(spoolRoot, store, odd), 'restore');
    expect(existsSync(restoreDir)).toBe(true);
    cpSync(join(walDir, seg(5)), join(restoreDir, seg(5)));
    const r = run(RESTORE, args(seg(5)), NO_NODE);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(readFileSync(join(walDir, seg(5))))).toBe(true);
  });

  it('leaves a stale prefetched file, a missing one and an odd name to Node', () => {
    const dest = join(out, 'RECOVERYXLOG');
    const old = new Date(Date.now() - 20 * 60_000);
    utimesSync(spooled(seg(3)), old, old);
    expect(run(RESTORE, [...spoolArgs(), seg(3), dest], NO_NODE).code).not.toBe(0);
    expect(run(RESTORE, [...spoolArgs(), seg(6), dest], NO_NODE).code).not.toBe(0);
    cpSync(spooled(seg(3)), join(spoolDirFor(spoolRoot, store, 'srv'), 'restore', '..x'));
    expect(run(RESTORE, [...spoolArgs(), '..x', dest], NO_NODE).code).not.toBe(0);
    // Node fetches the stale one again from the store.
    const r = run(RESTORE, [...spoolArgs(), seg(3), dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(readFileSync(join(walDir, seg(3))))).toBe(true);
  });
});

describe('--async without a count: the shell assumes the same default as Node', () => {
  const dest = () => join(tmp, 'restore-out', 'RECOVERYXLOG');
  const base = () => ['--spool-dir', spoolRoot, store, 'srv', seg(6), dest()];
  const restoreDir = () => join(spoolDirFor(spoolRoot, store, 'srv'), 'restore');

  it('wal-restore --async (or its variable) alone serves a prefetched segment; an explicit --parallel 1 or an empty count goes to Node', () => {
    // Prefetched, as the prefetcher leaves it (the spool and its segment size exist from the tests above).
    const place = () => cpSync(join(walDir, seg(6)), join(restoreDir(), seg(6)));
    place();
    for (const refused of [['--async', '--parallel', '1'], ['--async', '--parallel=']]) {
      expect(run(RESTORE, [...refused, ...base()], NO_NODE).code, refused.join(' ')).not.toBe(0);
      expect(existsSync(join(restoreDir(), seg(6)))).toBe(true);
    }
    expect(run(RESTORE, base(), { ...NO_NODE, BARMAN_CLOUD_WAL_RESTORE_ASYNC: '1', BARMAN_CLOUD_WAL_RESTORE_PARALLEL: '1' }).code).not.toBe(0);
    const r = run(RESTORE, ['--async', ...base()], NO_NODE);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest()).equals(readFileSync(join(walDir, seg(6))))).toBe(true);
    place();
    const viaEnv = run(RESTORE, base(), { ...NO_NODE, BARMAN_CLOUD_WAL_RESTORE_ASYNC: 'on' });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(existsSync(join(restoreDir(), seg(6)))).toBe(false);
  });
});

describe('default spool location: beside the WAL file PostgreSQL names', () => {
  // PostgreSQL runs both commands in PGDATA with %p in pg_wal: the default root is pg_wal's.
  let pgdata: string;
  let defaultStore: string;
  const uid = process.getuid!();
  const spoolOf = (sub: string, name: string) =>
    join(spoolDirFor(join(pgdata, 'pg_wal', `.barman-cloud-spool-${uid}`), defaultStore, 'srv'), sub, name);
  const runIn = (bin: string, args: string[], extra: Record<string, string | undefined> = {}) => {
    const r = spawnSync(bin, args, { env: cleanEnv(extra), encoding: 'utf8', cwd: pgdata });
    return { code: r.status, stderr: r.stderr };
  };

  beforeAll(() => {
    pgdata = join(tmp, 'pgdata');
    mkdirSync(join(pgdata, 'pg_wal', 'archive_status'), { recursive: true });
    defaultStore = `file://${join(tmp, 'default-store')}`;
    mkdirSync(join(tmp, 'default-store'));
    for (let i = 1; i <= 3; i++) {
      const data = withLongPageHeader(Buffer.alloc(1 << 20, i), seg(i));
      writeFileSync(join(pgdata, 'pg_wal', seg(i)), data);
      writeFileSync(join(pgdata, 'pg_wal', 'archive_status', `${seg(i)}.ready`), '');
    }
  });

  it('archive: markers in pg_wal/.barman-cloud-spool-<uid>, a later call answered by the shell', () => {
    const first = runIn(ARCHIVE, ['--max-parallel', '3', defaultStore, 'srv', `pg_wal/${seg(1)}`]);
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(spoolOf('archive', seg(2)))).toBe(true);
    const hit = runIn(ARCHIVE, ['--max-parallel', '3', defaultStore, 'srv', `pg_wal/${seg(2)}`], NO_NODE);
    expect(hit.code, hit.stderr).toBe(0);
    expect(existsSync(spoolOf('archive', seg(2)))).toBe(false);
  });

  it('restore: prefetched into pg_wal/.barman-cloud-spool-<uid>, served by the shell', () => {
    const first = runIn(RESTORE, ['--parallel', '3', defaultStore, 'srv', seg(1), 'pg_wal/RECOVERYXLOG']);
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(spoolOf('restore', seg(2)))).toBe(true);
    const hit = runIn(RESTORE, ['--parallel', '3', defaultStore, 'srv', seg(2), 'pg_wal/RECOVERYXLOG'], NO_NODE);
    expect(hit.code, hit.stderr).toBe(0);
    expect(readFileSync(join(pgdata, 'pg_wal', 'RECOVERYXLOG')).equals(readFileSync(join(pgdata, 'pg_wal', seg(2))))).toBe(true);
  });
});

describe('wal-archive --async: the worker, not the call, removes the marker', () => {
  // Under --async the shell front answers a hit without rm (one program less per call); the worker
  // removes the marker once PostgreSQL has dropped the segment's .ready status.
  let dir: string;
  let root: string;
  let pgWal: string;
  const names = [seg(0x41), seg(0x42), seg(0x43), seg(0x44)];
  const sub = () => join(spoolDirFor(root, store, 'srv-async'), 'archive');
  const args = (name: string, extra: string[]) => [...extra, '--spool-dir', root, store, 'srv-async', join(pgWal, name)];
  const done = (name: string) => cpSync(join(pgWal, 'archive_status', `${name}.ready`), join(pgWal, 'archive_status', `${name}.done`));

  beforeAll(() => {
    dir = join(tmp, 'async-markers');
    root = join(dir, 'spool');
    pgWal = join(dir, 'pg_wal');
    mkdirSync(join(pgWal, 'archive_status'), { recursive: true });
    for (const [i, n] of names.entries()) {
      writeFileSync(join(pgWal, n), Buffer.alloc(1 << 20, 0x41 + i));
      writeFileSync(join(pgWal, 'archive_status', `${n}.ready`), '');
    }
  });

  afterAll(() => {
    const pid = Number(readFileSync(join(sub(), 'worker.pid'), { encoding: 'utf8', flag: 'a+' }));
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });

  it('a hit under --async starts find alone and leaves the marker', () => {
    // A parallel call uploads the first two and leaves a marker for the second.
    const first = run(ARCHIVE, args(names[0], ['--max-parallel', '2']));
    expect(first.code, first.stderr).toBe(0);
    done(names[0]);
    rmSync(join(pgWal, 'archive_status', `${names[0]}.ready`));
    expect(existsSync(join(sub(), names[1]))).toBe(true);
    const bin = join(dir, 'find-only');
    mkdirSync(bin);
    symlinkSync(execFileSync('sh', ['-c', 'command -v find'], { encoding: 'utf8' }).trim(), join(bin, 'find'));
    const r = run(ARCHIVE, args(names[1], ['--async', '--max-parallel', '2']), { ...NO_NODE, PATH: bin });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(sub(), names[1]))).toBe(true);
  });

  it('the worker removes a marker once the .ready status is gone, and only then', async () => {
    done(names[1]);
    rmSync(join(pgWal, 'archive_status', `${names[1]}.ready`));
    // A Node call starts the worker, which uploads the third and fourth segments.
    const r = run(ARCHIVE, args(names[2], ['--async', '--max-parallel', '2']));
    expect(r.code, r.stderr).toBe(0);
    const marker = join(sub(), names[3]);
    for (let i = 0; i < 200 && !existsSync(marker); i++) await new Promise((res) => setTimeout(res, 50));
    expect(existsSync(marker)).toBe(true);
    const hit = run(ARCHIVE, args(names[3], ['--async', '--max-parallel', '2']), NO_NODE);
    expect(hit.code, hit.stderr).toBe(0);
    await new Promise((res) => setTimeout(res, 300));
    expect(existsSync(marker)).toBe(true); // still .ready: kept
    rmSync(join(pgWal, 'archive_status', `${names[3]}.ready`));
    for (let i = 0; i < 100 && existsSync(marker); i++) await new Promise((res) => setTimeout(res, 50));
    expect(existsSync(marker)).toBe(false);
  }, 30_000);
});

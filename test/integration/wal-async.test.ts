// --async (issue #14): the detached archive worker and the restore prefetcher, through bin/ as
// PostgreSQL runs them. A real PostgreSQL 15 archives under pgbench load into the file store and
// moto at once and recovers across a timeline switch; a worker killed mid-upload (a throttling
// proxy in front of moto) loses nothing and acknowledges nothing early; a worker's failure reaches
// PostgreSQL's call for that segment as exit 1.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { existsSync, readdirSync, readFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startMoto, createS3Bucket, ROOT, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import {
  requireTool, postgresAvailable, startCluster, baseBackup, recoveryCluster, toolCommand, pgTempDir, shellQuote,
  type PgCluster,
} from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const skipPg = requireTool('PostgreSQL 15', postgresAvailable());
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SEGMENT_RE = /^[0-9A-F]{24}$/;

/** The per-store spool directories under a spool root (one per store URL and server). */
/** The per-store directories of a spool root (beside them, the names file of src/wal/spool.ts). */
const spoolDirs = (root: string) => (existsSync(root) ? readdirSync(root).filter((d) => d !== 'names').map((d) => join(root, d)) : []);

const readOr = (path: string, fallback: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
};

/** Kill the workers whose locks are under `root` (they would otherwise idle for 30 s). */
function killWorkers(root: string): void {
  for (const d of spoolDirs(root)) {
    for (const sub of ['archive', 'restore']) {
      const pid = Number(readOr(join(d, sub, 'worker.pid'), '0').trim()) || 0;
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
  }
}

describe.skipIf(skipPg)('--async with PostgreSQL 15: archive under load, recovery across a timeline switch', () => {
  let moto: ServerHandle;
  let primary: PgCluster;
  let copies: string; // every segment PostgreSQL handed to archive_command, copied before archiving
  let fileStore: string;
  const clusters: PgCluster[] = [];
  const motoArgs = () => ['--endpoint-url', moto.url, 's3://pgasync/cluster', 'srv'];
  const fileArgs = () => [`file://${fileStore}`, 'srv'];
  const serverEnv = () => ({ ...MOTO_ENV, HOME: '/tmp' });
  const spoolRoot = (dataDir: string) => join(dataDir, 'pg_wal', `.barman-cloud-spool-${statSync(dataDir).uid}`);
  const asyncFlags = ['--async', '--lz4', '--max-parallel', '4'];
  const archiveCommand = () =>
    `cp %p ${shellQuote(copies)}/%f && ${toolCommand('barman-cloud-wal-archive', [...asyncFlags, ...fileArgs()])} %p && ` +
    `${toolCommand('barman-cloud-wal-archive', [...asyncFlags, ...motoArgs()])} %p`;

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'pgasync');
    copies = pgTempDir('bc-asynccopies-');
    fileStore = pgTempDir('bc-asyncstore-');
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: archiveCommand(), archive_timeout: '0' },
      serverEnv: serverEnv(),
    });
    clusters.push(primary);
  });

  afterAll(async () => {
    for (const c of clusters) {
      killWorkers(spoolRoot(c.dataDir));
      await c.remove();
    }
    await moto?.stop();
  });

  it('archives every segment of a pgbench load through the worker into both stores; each restores byte-identical', async () => {
    await primary.pgbench(['-i', '-s', '2', '-q']);
    let last = '';
    for (let round = 0; round < 6; round++) {
      // Load and switches together: segments pile up as .ready, as when PostgreSQL outruns a slow archiver.
      const load = primary.pgbench(['-c', '4', '-T', '1', '-n']);
      for (let i = 0; i < 4; i++) last = await primary.switchWal();
      await load;
    }
    last = await primary.switchWal();
    await primary.waitForArchived(last, 120_000);
    expect(Number(await primary.psql('SELECT failed_count FROM pg_stat_archiver'))).toBe(0);

    // A worker ran for each store (it was started, with its log in that store's spool, and said nothing wrong).
    const dirs = spoolDirs(spoolRoot(primary.dataDir));
    expect(dirs.length).toBe(2);
    for (const d of dirs) {
      expect(existsSync(join(d, 'archive', 'worker.log'))).toBe(true);
      expect(readOr(join(d, 'archive', 'worker.log'), '')).not.toMatch(/WARNING|ERROR/);
      expect(readdirSync(join(d, 'archive')).filter((n) => n.endsWith('.error'))).toEqual([]);
    }

    const archived = readdirSync(copies).filter((n) => SEGMENT_RE.test(n)).sort();
    expect(archived.length).toBeGreaterThanOrEqual(24);
    const out = mkdtempSync(join(tmpdir(), 'bc-asynccheck-'));
    try {
      for (const [label, args] of [['file', fileArgs()], ['moto', motoArgs()]] as const) {
        for (const name of archived) {
          const dest = join(out, `${label}-${name}`);
          const r = await runBin('barman-cloud-wal-restore', [...args, name, dest], { env: cleanEnv(MOTO_ENV) });
          expect({ label, name, code: r.code, stderr: r.stderr }).toEqual({ label, name, code: 0, stderr: '' });
          expect(sha(readFileSync(dest))).toBe(sha(readFileSync(join(copies, name))));
        }
      }
      // The worker's frames, read by another decoder than ours too: lz4(1).
      for (const name of archived) {
        const plain = execFileSync('lz4', ['-dc', join(fileStore, 'srv', 'wals', name.slice(0, 16), `${name}.lz4`)], { maxBuffer: 64 << 20 });
        expect({ name, sha: sha(plain) }).toEqual({ name, sha: sha(readFileSync(join(copies, name))) });
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 400_000);

  it('recovers with the --async prefetcher across a promotion to the next timeline', async () => {
    await primary.psql('CREATE TABLE IF NOT EXISTS t (id int primary key, phase text)');
    const base = await baseBackup(primary);
    await primary.psql("INSERT INTO t SELECT g, 'after-backup' FROM generate_series(1, 1000) g");
    await primary.pgbench(['-c', '2', '-T', '2', '-n']);
    for (let i = 0; i < 4; i++) await primary.switchWal();
    await primary.psql("INSERT INTO t VALUES (1001, 'last on primary')");
    await primary.waitForArchived(await primary.switchWal(), 120_000);
    const expected = await primary.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts');

    // Timeline 2: a copy of the backup recovers (plain restore), is promoted, and archives with --async.
    const copy1 = join(mkdtempSync(join(tmpdir(), 'bc-asyncbase1-')), 'data');
    const { execFileSync } = await import('node:child_process');
    execFileSync('cp', ['-a', base, copy1]);
    const r1 = await recoveryCluster(copy1, {
      restoreCommand: `${toolCommand('barman-cloud-wal-restore', fileArgs())} %f %p`,
      signal: 'recovery',
      conf: {
        recovery_target_action: 'promote', archive_mode: 'on', archive_timeout: '0',
        archive_command: `${toolCommand('barman-cloud-wal-archive', [...asyncFlags, ...fileArgs()])} %p`,
      },
      serverEnv: serverEnv(),
    });
    clusters.push(r1);
    await r1.start();
    await r1.waitFor('SELECT pg_is_in_recovery()', 'f', 120_000);
    expect(await r1.psql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('2');
    await r1.psql("INSERT INTO t VALUES (2001, 'on timeline 2')");
    await r1.pgbench(['-c', '2', '-T', '1', '-n']);
    for (let i = 0; i < 3; i++) await r1.switchWal();
    await r1.psql("INSERT INTO t VALUES (2002, 'later on timeline 2')");
    await r1.waitForArchived(await r1.switchWal(), 120_000);
    await r1.waitForArchived('00000002.history', 60_000);
    const expected2 = await r1.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts');
    expect(expected2).not.toBe(expected);

    // The same base backup, recovered through the prefetcher, follows the history file to timeline 2.
    const r2 = await recoveryCluster(base, {
      restoreCommand: `${toolCommand('barman-cloud-wal-restore', ['--async', '--parallel', '4', ...fileArgs()])} %f %p`,
      signal: 'recovery',
      conf: { recovery_target_action: 'promote', recovery_target_timeline: 'latest', archive_mode: 'off' },
      serverEnv: serverEnv(),
    });
    clusters.push(r2);
    await r2.start();
    await r2.waitFor('SELECT pg_is_in_recovery()', 'f', 180_000);
    expect(await r2.psql('SELECT phase FROM t WHERE id = 2002')).toBe('later on timeline 2');
    expect(await r2.psql('SELECT count(*) FROM t')).toBe('1003');
    expect(await r2.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts')).toBe(expected2);
    expect(await r2.psql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('3');
    expect(r2.logTail(600)).toMatch(/restored log file "000000020000000000000/);
    // The prefetcher ran: its log in the spool, and recovery took prefetched files (nothing left
    // of timeline 1 at or after the switch can have been served: PostgreSQL would have failed above).
    const [dir] = spoolDirs(spoolRoot(r2.dataDir));
    expect(existsSync(join(dir!, 'restore', 'worker.log'))).toBe(true);
    expect(readOr(join(dir!, 'restore', 'worker.log'), '')).not.toMatch(/ERROR/);
  }, 400_000);
});

// ---- without PostgreSQL: PostgreSQL's view of a pg_wal, a .ready file per segment ---------------

/** A pg_wal with `name` marked .ready, holding `content`. */
function pgWal(name: string, content: Buffer): { walDir: string; path: string } {
  const walDir = join(mkdtempSync(join(tmpdir(), 'bc-asyncwal-')), 'pg_wal');
  mkdirSync(join(walDir, 'archive_status'), { recursive: true });
  writeFileSync(join(walDir, name), content);
  writeFileSync(join(walDir, 'archive_status', `${name}.ready`), '');
  return { walDir, path: join(walDir, name) };
}

/** The shell-front environment PostgreSQL gives our tools: node on PATH. */
const toolEnv = () => cleanEnv({ ...MOTO_ENV, PATH: `${dirname(process.execPath)}:${process.env.PATH}` });

/** Run an executable itself (its shell front), as PostgreSQL does. */
function runFile(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr, ms: Date.now() - started }));
  });
}

/** A TCP proxy that forwards uploads at `bytesPerSecond`, downloads at full speed. */
async function throttlingProxy(targetUrl: string, bytesPerSecond: number): Promise<{ url: string; uploaded: () => number; close: () => Promise<void> }> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let uploaded = 0;
  const server: Server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk: Buffer) => {
      client.pause();
      setTimeout(() => {
        uploaded += chunk.length;
        upstream.write(chunk);
        client.resume();
      }, (chunk.length / bytesPerSecond) * 1000);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    uploaded: () => uploaded,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('--async worker without PostgreSQL: kill, shell wait, failure', () => {
  let moto: ServerHandle;
  const roots: string[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'asyncfail');
  });

  afterAll(async () => {
    for (const r of roots) killWorkers(r);
    await moto?.stop();
  });

  it('a worker killed mid-upload acknowledges nothing early; the next worker stores the segment', async () => {
    const name = '000000010000000000000007';
    const content = withLongPageHeader(randomBytes(16 * 1024 * 1024), name);
    const { walDir, path: earlier } = pgWal('000000010000000000000006', randomBytes(64 * 1024));
    const path = join(walDir, name);
    const root = join(walDir, `.barman-cloud-spool-${process.geteuid!()}`);
    roots.push(root);
    const proxy = await throttlingProxy(moto.url, 4 * 1024 * 1024); // ~4 s per upload
    const via = (url: string) => ['--endpoint-url', url, 's3://asyncfail/killed', 'srv'];
    try {
      // A worker already runs (a first call archives its own file beside the worker it starts):
      // the call for the segment waits for it.
      const first = await runFile(join(ROOT, 'bin', 'barman-cloud-wal-archive'), ['--async', ...via(proxy.url), earlier], toolEnv());
      expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
      writeFileSync(path, content);
      writeFileSync(join(walDir, 'archive_status', `${name}.ready`), '');
      const started = Date.now();
      const call = spawn(join(ROOT, 'bin', 'barman-cloud-wal-archive'), ['--async', ...via(proxy.url), path], { env: toolEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      call.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; at: number }>((r) => call.on('close', (code) => r({ code, at: Date.now() })));
      // Wait until the worker is uploading: its lock, its claim on the segment, bytes moving.
      let pid = 0;
      for (let i = 0; i < 600 && !(pid && proxy.uploaded() > 1024 * 1024); i++) {
        await sleep(50);
        const [dir] = spoolDirs(root);
        if (dir && existsSync(join(dir, 'archive', `${name}.lock`))) pid = Number(readOr(join(dir, 'archive', 'worker.pid'), '0'));
      }
      expect(pid).toBeGreaterThan(0);
      expect(proxy.uploaded()).toBeLessThan(content.length); // mid-upload
      process.kill(pid, 'SIGKILL');
      // Nothing acknowledged: the call has not exited, and the object is not in the store.
      expect(call.exitCode).toBeNull();
      const check = await runBin('barman-cloud-wal-restore', [...via(moto.url), name, join(dirname(walDir), 'check-early')], { env: cleanEnv(MOTO_ENV) });
      expect(check.code).toBe(1);
      const result = await exited;
      expect({ code: result.code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(result.at - started).toBeLessThan(60_000);
      // A second worker finished it (the killed one's claim was taken over), and it restores intact.
      const [dir] = spoolDirs(root);
      const now = Number(readOr(join(dir!, 'archive', 'worker.pid'), '0'));
      expect(now).not.toBe(pid);
      const dest = join(dirname(walDir), 'restored');
      const r = await runBin('barman-cloud-wal-restore', [...via(moto.url), name, dest], { env: cleanEnv(MOTO_ENV) });
      expect(r.code).toBe(0);
      expect(sha(readFileSync(dest))).toBe(sha(content));
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('a call that finds no worker archives its own file beside the one it starts, which leaves that file alone', async () => {
    const store = mkdtempSync(join(tmpdir(), 'bc-asyncstore-'));
    const names = ['000000010000000000000031', '000000010000000000000032'];
    const contents = names.map(() => randomBytes(64 * 1024));
    const { walDir, path } = pgWal(names[0]!, contents[0]!);
    const root = join(walDir, `.barman-cloud-spool-${process.geteuid!()}`);
    roots.push(root);
    // The worker is held at its start until `go` exists: the call cannot be waiting for it.
    const hold = mkdtempSync(join(tmpdir(), 'bc-asynchold-'));
    const go = join(hold, 'go');
    const heldPid = join(hold, 'pid');
    writeFileSync(join(hold, 'hold.cjs'), [
      `if (process.env.BARMAN_CLOUD_ASYNC_WORKER === 'archive') {`,
      `  const fs = require('fs');`,
      `  fs.writeFileSync(${JSON.stringify(heldPid)}, String(process.pid));`,
      `  const cell = new Int32Array(new SharedArrayBuffer(4));`,
      `  while (!fs.existsSync(${JSON.stringify(go)})) Atomics.wait(cell, 0, 0, 20);`,
      `}`,
    ].join('\n'));
    const env = { ...toolEnv(), NODE_OPTIONS: `--require ${join(hold, 'hold.cjs')}` };
    const bin = join(ROOT, 'bin', 'barman-cloud-wal-archive');
    const args = ['--async', `file://${store}`, 'srv'];
    const objectOf = (n: string) => join(store, 'srv', 'wals', n.slice(0, 16), n);
    try {
      const r = await runFile(bin, [...args, path], env);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(readFileSync(objectOf(names[0]!)).equals(contents[0]!)).toBe(true);
      // A worker was started, and is held.
      for (let i = 0; i < 600 && !existsSync(heldPid); i++) await sleep(50);
      expect(existsSync(heldPid)).toBe(true);
      // Until PostgreSQL sees the exit and drops the .ready status, the file looks like work for the
      // worker: the call's marker says it is done. Were the worker to upload it again, the object
      // removed here would come back.
      rmSync(objectOf(names[0]!));
      writeFileSync(join(walDir, names[1]!), contents[1]!);
      writeFileSync(join(walDir, 'archive_status', `${names[1]}.ready`), '');
      writeFileSync(go, '');
      const [dir] = spoolDirs(root);
      for (let i = 0; i < 600 && !existsSync(join(dir!, 'archive', names[1]!)); i++) await sleep(50);
      expect(readFileSync(objectOf(names[1]!)).equals(contents[1]!)).toBe(true);
      expect(existsSync(objectOf(names[0]!))).toBe(false);
      // Once the status goes, the worker removes the call's marker as it does its own.
      rmSync(join(walDir, 'archive_status', `${names[0]}.ready`));
      for (let i = 0; i < 600 && existsSync(join(dir!, 'archive', names[0]!)); i++) await sleep(50);
      expect(existsSync(join(dir!, 'archive', names[0]!))).toBe(false);
    } finally {
      writeFileSync(go, '');
    }
  }, 90_000);

  it('the shell front waits for the marker of a file the worker is uploading, without starting Node', async () => {
    const names = ['000000010000000000000011', '000000010000000000000012'];
    const contents = names.map((n) => withLongPageHeader(randomBytes(2 * 1024 * 1024), n));
    const { walDir, path: first } = pgWal(names[0]!, contents[0]!);
    roots.push(join(walDir, `.barman-cloud-spool-${process.geteuid!()}`));
    const proxy = await throttlingProxy(moto.url, 1024 * 1024); // ~2 s per file, one at a time
    const bin = join(ROOT, 'bin', 'barman-cloud-wal-archive');
    const args = ['--async', '--max-parallel', '1', '--endpoint-url', proxy.url, 's3://asyncfail/shellwait', 'srv'];
    try {
      // Not spawnSync: the proxy runs in this process and must keep forwarding. The first call
      // archives its own file and leaves a worker running.
      const r1 = await runFile(bin, [...args, first], toolEnv());
      expect({ code: r1.code, stderr: r1.stderr }).toEqual({ code: 0, stderr: '' });
      writeFileSync(join(walDir, names[1]!), contents[1]!);
      writeFileSync(join(walDir, 'archive_status', `${names[1]}.ready`), '');
      // The worker now uploads the second file; the call for it may not start Node at all.
      const r2 = await runFile(bin, [...args, join(walDir, names[1]!)], { ...toolEnv(), NODE_OPTIONS: '--require /nonexistent/no-node-allowed.js' });
      expect({ code: r2.code, stderr: r2.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r2.ms).toBeGreaterThan(300); // it waited for the upload
      const dest = join(dirname(walDir), 'second');
      const r = await runBin('barman-cloud-wal-restore', ['--endpoint-url', moto.url, 's3://asyncfail/shellwait', 'srv', names[1]!, dest], { env: cleanEnv(MOTO_ENV) });
      expect(r.code).toBe(0);
      expect(sha(readFileSync(dest))).toBe(sha(contents[1]!));
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('--async without --max-parallel uploads several .ready segments at once while the call for the first waits', async () => {
    const names = ['000000010000000000000041', '000000010000000000000042', '000000010000000000000043', '000000010000000000000044'];
    const size = 2 * 1024 * 1024;
    const contents = names.map(() => randomBytes(size));
    const { walDir, path: first } = pgWal(names[0]!, contents[0]!);
    for (const [i, n] of names.entries()) {
      writeFileSync(join(walDir, n), contents[i]!);
      writeFileSync(join(walDir, 'archive_status', `${n}.ready`), '');
    }
    roots.push(join(walDir, `.barman-cloud-spool-${process.geteuid!()}`));
    // ~2 s per segment on each connection: one at a time, the first call would return with
    // little more than its own segment uploaded.
    const proxy = await throttlingProxy(moto.url, 1024 * 1024);
    const bin = join(ROOT, 'bin', 'barman-cloud-wal-archive');
    const args = ['--async', '--endpoint-url', proxy.url, 's3://asyncfail/default', 'srv'];
    try {
      const r1 = await runFile(bin, [...args, first], toolEnv());
      expect({ code: r1.code, stderr: r1.stderr }).toEqual({ code: 0, stderr: '' });
      expect(proxy.uploaded()).toBeGreaterThan(2 * size);
      // The others were stored by the worker meanwhile: their calls are answered without Node.
      for (const n of names.slice(1)) {
        const r = await runFile(bin, [...args, join(walDir, n)], { ...toolEnv(), NODE_OPTIONS: '--require /nonexistent/no-node-allowed.js' });
        expect({ n, code: r.code, stderr: r.stderr }).toEqual({ n, code: 0, stderr: '' });
      }
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('BARMAN_CLOUD_WAL_ARCHIVE_ASYNC turns --async on; a value that is not a boolean word is exit 3', async () => {
    const store = mkdtempSync(join(tmpdir(), 'bc-asyncstore-'));
    const content = randomBytes(64 * 1024);
    const { walDir, path } = pgWal('000000010000000000000015', content);
    const root = join(walDir, `.barman-cloud-spool-${process.geteuid!()}`);
    roots.push(root);
    const bin = join(ROOT, 'bin', 'barman-cloud-wal-archive');
    const bad = await runFile(bin, [`file://${store}`, 'srv', path], { ...toolEnv(), BARMAN_CLOUD_WAL_ARCHIVE_ASYNC: 'maybe' });
    expect(bad.code).toBe(3);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/BARMAN_CLOUD_WAL_ARCHIVE_ASYNC/);
    const ok = await runFile(bin, [`file://${store}`, 'srv', path], { ...toolEnv(), BARMAN_CLOUD_WAL_ARCHIVE_ASYNC: 'on' });
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    // A worker archived it: its log is in the spool.
    const [dir] = spoolDirs(root);
    expect(existsSync(join(dir!, 'archive', 'worker.log'))).toBe(true);
  }, 60_000);

  it('the prefetcher stops at a segment missing from the archive and finds it once archived; a miss is exit 1', async () => {
    const store = mkdtempSync(join(tmpdir(), 'bc-asyncstore-'));
    const names = ['000000010000000000000021', '000000010000000000000022', '000000010000000000000023', '000000010000000000000024'];
    const contents = names.map((n) => withLongPageHeader(randomBytes(16 * 1024 * 1024), n));
    const src = mkdtempSync(join(tmpdir(), 'bc-asyncsrc-'));
    const archive = async (i: number) => {
      writeFileSync(join(src, names[i]!), contents[i]!);
      expect((await runBin('barman-cloud-wal-archive', [`file://${store}`, 'srv', join(src, names[i]!)], { env: cleanEnv() })).code).toBe(0);
    };
    for (let i = 0; i < 3; i++) await archive(i);
    const walDir = join(mkdtempSync(join(tmpdir(), 'bc-asyncrec-')), 'pg_wal');
    mkdirSync(walDir);
    roots.push(join(walDir, `.barman-cloud-spool-${process.geteuid!()}`));
    const bin = join(ROOT, 'bin', 'barman-cloud-wal-restore');
    const restore = (i: number) => runFile(bin, ['--async', '--parallel', '4', `file://${store}`, 'srv', names[i]!, join(walDir, 'RECOVERYXLOG')], toolEnv());
    const check = (i: number) => expect(sha(readFileSync(join(walDir, 'RECOVERYXLOG')))).toBe(sha(contents[i]!));
    for (let i = 0; i < 3; i++) {
      const r = await restore(i);
      expect({ i, code: r.code, stderr: r.stderr }).toEqual({ i, code: 0, stderr: '' });
      check(i);
    }
    // Not archived yet: not found, and nothing stands in for it.
    const miss = await restore(3);
    expect({ code: miss.code, stderr: miss.stderr }).toEqual({ code: 1, stderr: '' });
    await archive(3);
    const hit = await restore(3);
    expect({ code: hit.code, stderr: hit.stderr }).toEqual({ code: 0, stderr: '' });
    check(3);
  }, 120_000);

  it("a worker's upload failure reaches PostgreSQL's call for that segment as exit 1, every time", async () => {
    const name = '000000010000000000000009';
    const store = mkdtempSync(join(tmpdir(), 'bc-asyncstore-'));
    // The archive already holds different content under this name.
    const other = pgWal(name, randomBytes(64 * 1024));
    const first = await runBin('barman-cloud-wal-archive', [`file://${store}`, 'srv', other.path], { env: cleanEnv() });
    expect(first.code).toBe(0);
    const { walDir, path } = pgWal(name, randomBytes(64 * 1024));
    const root = join(walDir, `.barman-cloud-spool-${process.geteuid!()}`);
    roots.push(root);
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await runBin('barman-cloud-wal-archive', ['--async', '--lz4', `file://${store}`, 'srv', path], { env: toolEnv() });
      expect(r.code).toBe(1);
      // barman's one line, the worker's own reason (not a timeout), well before the 60 s wait ends.
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/already archived with different content/);
      expect(r.ms).toBeLessThan(30_000);
    }
    // Never a marker for it (nothing a later call could take for success); each call that consumed
    // the failure made the worker try once more, so at most the latest verdict waits.
    const [dir] = spoolDirs(root);
    const left = readdirSync(join(dir!, 'archive'));
    expect(left.filter((n) => SEGMENT_RE.test(n))).toEqual([]);
    expect(left.filter((n) => n.endsWith('.error')).length).toBeLessThanOrEqual(1);
  }, 120_000);

  it('a conflicting copy placed after the worker listed the WAL directory is still refused, under another suffix or the same key', async () => {
    // The worker shares its listings between uploads; the pre-check may answer from one made
    // before the conflicting copy existed, so the settle after its create must list afresh.
    const store = mkdtempSync(join(tmpdir(), 'bc-asyncstore-'));
    const first = '000000010000000000000020';
    const { walDir, path } = pgWal(first, randomBytes(64 * 1024));
    const root = join(walDir, `.barman-cloud-spool-${process.geteuid!()}`);
    roots.push(root);
    const args = (p: string) => ['--async', '--lz4', `file://${store}`, 'srv', p];
    // The first call archives its own segment and starts the worker, which archives the next one:
    // its listing of wals/0000000100000000/ then holds those two only.
    expect((await runBin('barman-cloud-wal-archive', args(path), { env: toolEnv() })).code).toBe(0);
    const byWorker = '00000001000000000000001F';
    writeFileSync(join(walDir, byWorker), randomBytes(64 * 1024));
    writeFileSync(join(walDir, 'archive_status', `${byWorker}.ready`), '');
    expect((await runBin('barman-cloud-wal-archive', args(join(walDir, byWorker)), { env: toolEnv() })).code).toBe(0);
    const dir = join(store, 'srv', 'wals', '0000000100000000');
    const placed = [
      { name: '000000010000000000000021', key: '000000010000000000000021', pattern: /archived concurrently with different content/ },
      { name: '000000010000000000000022', key: '000000010000000000000022.lz4', pattern: /already archived with different content/ },
    ];
    for (const { name, key, pattern } of placed) {
      // Another archiver stores different content for the next segment, while the worker idles.
      const theirs = randomBytes(64 * 1024);
      writeFileSync(join(dir, key), theirs);
      writeFileSync(join(walDir, name), randomBytes(64 * 1024));
      writeFileSync(join(walDir, 'archive_status', `${name}.ready`), '');
      const r = await runBin('barman-cloud-wal-archive', args(join(walDir, name)), { env: toolEnv() });
      expect({ code: r.code, lines: r.stderr.trim().split('\n').length }).toEqual({ code: 1, lines: 1 });
      expect(r.stderr).toMatch(pattern);
      // Their copy stays as it was; ours was never left beside it.
      expect(readFileSync(join(dir, key)).equals(theirs)).toBe(true);
      expect(readdirSync(dir).filter((n) => n.startsWith(name))).toEqual([key]);
    }
  }, 120_000);
});

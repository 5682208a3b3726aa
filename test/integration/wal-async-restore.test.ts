// The --async prefetcher of wal-restore (issues #14, #16) through bin/ as PostgreSQL runs it:
// encrypted WAL (the prefetcher decrypts with the call's identities; without one, exit 1 and no
// file), a download that trickles forever (abandoned at its deadline; the call is not held up and
// the prefetcher leaves), the shell front waiting for a segment in flight instead of starting
// Node, a spool entry of the wrong size never handed to PostgreSQL, and a refused object not
// downloaded again until it changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, createS3Bucket, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { archiveSegments, cleanEnv, runProcess } from '../helpers/run-bin.ts';
import { startS3Proxy, startTcpProxy } from '../helpers/proxy.ts';
import { MOTO_ENV, openMotoStore } from '../helpers/moto.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const ageMissing = spawnSync('age-keygen', ['--version']).error !== undefined;
if (ageMissing && process.env.CI === 'true') throw new Error('age-keygen missing in CI');

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;
/** 1 MiB segments: a valid segment size, learned by the calls as with any other. */
const names = ['000000010000000000000031', '000000010000000000000032', '000000010000000000000033', '000000010000000000000034'];
const bin = join(ROOT, 'bin', 'barman-cloud-wal-restore');
/** node on PATH, as PostgreSQL's environment has it. */
const toolEnv = (extra: Record<string, string> = {}) => cleanEnv({ ...MOTO_ENV, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...extra });
/** Any Node start fails: what the shell front answers alone still works. */
const NO_NODE = { NODE_OPTIONS: '--require /nonexistent/no-node-allowed.js' };

/** A pg_wal to recover into, its default spool's restore directory (once a call made it), and the worker's pid. */
function recoveryDir() {
  const walDir = join(mkdtempSync(join(tmpdir(), 'bc-asyncrest-')), 'pg_wal');
  mkdirSync(walDir);
  const root = join(walDir, `.barman-cloud-spool-${process.geteuid!()}`);
  const restoreDir = () => {
    const [d] = existsSync(root) ? readdirSync(root).filter((n) => n !== 'names') : [];
    return d ? join(root, d, 'restore') : null;
  };
  const workerPid = () => {
    const d = restoreDir();
    return d && existsSync(join(d, 'worker.pid')) ? Number(readFileSync(join(d, 'worker.pid'), 'utf8')) : 0;
  };
  return { walDir, dest: join(walDir, 'RECOVERYXLOG'), restoreDir, workerPid };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

/** Start the prefetcher as an --async call would (detached, its log in `log`), here with options of the test's choosing. */
function startPrefetcher(args: string[], log: string): number {
  const fd = openSync(log, 'w');
  try {
    const child = spawn(process.execPath, [bin, ...args], { detached: true, stdio: ['ignore', fd, fd], env: toolEnv({ BARMAN_CLOUD_ASYNC_WORKER: 'restore' }) });
    child.unref();
    return child.pid!;
  } finally {
    closeSync(fd);
  }
}

const workers: number[] = [];
afterAll(() => {
  for (const pid of workers) if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
});

describe.skipIf(ageMissing)('--async restore of encrypted WAL (directory store)', () => {
  const work = mkdtempSync(join(tmpdir(), 'bc-asyncrest-age-'));
  const store = join(work, 'store');
  const contents = names.map((n) => withLongPageHeader(randomBytes(MiB), n));

  beforeAll(async () => {
    mkdirSync(store);
    execFileSync('age-keygen', ['-o', join(work, 'id.key')], { stdio: 'ignore' });
    writeFileSync(join(work, 'id.pub'), execFileSync('age-keygen', ['-y', join(work, 'id.key')]));
    const archived = await archiveSegments(['--lz4', '--encryption-recipient-file', join(work, 'id.pub'), `file://${store}`, 'srv'], names, contents, cleanEnv());
    for (const r of archived) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('the prefetcher decrypts with the identity of the call that started it; every segment byte-identical, the later ones without Node', async () => {
    const rec = recoveryDir();
    const args = (n: string) => ['--async', '--parallel', '4', '--encryption-identity-file', join(work, 'id.key'), `file://${store}`, 'srv', n, rec.dest];
    const first = await runProcess(bin, args(names[0]!), { env: toolEnv() });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(readFileSync(rec.dest))).toBe(sha(contents[0]!));
    workers.push(rec.workerPid());
    // The prefetcher fetches the three that follow (it could not decrypt them without the identity).
    await until('the next three segments prefetched', () => names.slice(1).every((n) => existsSync(join(rec.restoreDir()!, n))), 30_000);
    for (const [i, n] of names.entries()) {
      if (i === 0) continue;
      const r = await runProcess(bin, args(n), { env: toolEnv(NO_NODE) });
      expect({ n, code: r.code, stderr: r.stderr }).toEqual({ n, code: 0, stderr: '' });
      expect(sha(readFileSync(rec.dest))).toBe(sha(contents[i]!));
    }
    expect(readFileSync(join(rec.restoreDir()!, 'worker.log'), 'utf8')).not.toMatch(/WARNING|ERROR/);
  }, 60_000);

  it('without the identity: exit 1 naming what is missing, no destination file, nothing prefetched', async () => {
    const rec = recoveryDir();
    const r = await runProcess(bin, ['--async', '--parallel', '4', `file://${store}`, 'srv', names[0]!, rec.dest], { env: toolEnv() });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/encrypted.*--encryption-identity-file/);
    expect(existsSync(rec.dest)).toBe(false);
    expect(readdirSync(rec.walDir).filter((f) => f !== `.barman-cloud-spool-${process.geteuid!()}`)).toEqual([]);
    const pid = rec.workerPid();
    workers.push(pid);
    // The prefetcher started by that call cannot decrypt either: it leaves no segment in the spool.
    await sleep(2_000);
    expect(readdirSync(rec.restoreDir()!).filter((f) => /^[0-9A-F]{24}$/.test(f))).toEqual([]);
  }, 60_000);
});

describe('--async restore through a slow or trickling server (moto behind a TCP proxy)', () => {
  let moto: ServerHandle;
  const contents = names.map((n) => withLongPageHeader(randomBytes(MiB), n));
  const url = 's3://asyncrest/cluster';

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'asyncrest');
    for (const r of await archiveSegments(['--endpoint-url', moto.url, url, 'srv'], names, contents, cleanEnv(MOTO_ENV))) {
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it('the shell front waits for a segment the prefetcher is downloading, without starting Node', async () => {
    const proxy = await startTcpProxy(moto.url, 'slow-download', 1 * MiB); // ~1 s per segment
    const rec = recoveryDir();
    try {
      // The first call starts the prefetcher, which goes through the slow proxy (its command line).
      const first = await runProcess(bin, ['--async', '--parallel', '3', '--endpoint-url', proxy.url, url, 'srv', names[0]!, rec.dest], { env: toolEnv(), timeoutMs: 60_000 });
      expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
      workers.push(rec.workerPid());
      await until('the prefetcher downloads the next segment', () => existsSync(join(rec.restoreDir()!, `${names[1]}.fetching`)), 20_000);
      const second = await runProcess(bin, ['--async', '--parallel', '3', '--endpoint-url', proxy.url, url, 'srv', names[1]!, rec.dest], { env: toolEnv(NO_NODE) });
      expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
      expect(sha(readFileSync(rec.dest))).toBe(sha(contents[1]!));
    } finally {
      await proxy.close();
    }
  }, 90_000);

  it('a download that trickles forever is abandoned: the call for it is answered, the prefetcher leaves nothing behind and exits', async () => {
    const proxy = await startTcpProxy(moto.url, 'slow-download', 2_000); // 1 MiB would take ~9 minutes
    const rec = recoveryDir();
    try {
      // The prefetcher talks to the trickling proxy (2 s read timeout: never tripped, data keeps
      // coming), recovery's own calls to moto directly; same store URL and server, so same spool.
      const direct = (n: string) => ['--async', '--parallel', '3', '--endpoint-url', moto.url, url, 'srv', n, rec.dest];
      const log = join(dirname(rec.walDir), 'worker.log');
      const pid = startPrefetcher(['--async', '--parallel', '3', '--read-timeout', '2', '-vv', '--endpoint-url', proxy.url, url, 'srv', names[0]!, rec.dest], log);
      workers.push(pid);
      await until('the prefetcher holds its lock', () => rec.workerPid() === pid, 20_000);
      // Recovery's first call finds it running, so starts none of its own.
      const first = await runProcess(bin, direct(names[0]!), { env: toolEnv(), timeoutMs: 60_000 });
      expect(first.code).toBe(0);
      await until('the prefetcher downloads the next segment', () => existsSync(join(rec.restoreDir()!, `${names[1]}.fetching`)), 20_000);
      const started = Date.now();
      const second = await runProcess(bin, direct(names[1]!), { env: toolEnv(), timeoutMs: 60_000 });
      expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
      expect(sha(readFileSync(rec.dest))).toBe(sha(contents[1]!));
      expect(Date.now() - started).toBeLessThan(20_000);
      // Abandoned at its deadline (4 read timeouts), not when the prefetcher gives up on recovery.
      await until('the download abandoned', () => /not finished after 8 s; abandoned/.test(readFileSync(log, 'utf8')), 30_000)
        .catch((e: Error) => { throw new Error(`${e.message}\n${readFileSync(log, 'utf8').slice(-3000)}`); });
      // Recovery asks for nothing more: the prefetcher leaves after its 30 s idle time, downloads in flight or not.
      await until('the prefetcher exits', () => !alive(pid), 45_000);
      const left = readdirSync(rec.restoreDir()!).filter((f) => f !== 'worker.log' && f !== 'want' && f !== 'segment-size');
      expect(left).toEqual([]);
    } finally {
      await proxy.close();
    }
  }, 150_000);

  it('a prefetcher that goes idle with a download in flight cuts it off and exits, leaving no temp file', async () => {
    const proxy = await startTcpProxy(moto.url, 'slow-download', 2_000);
    const rec = recoveryDir();
    try {
      const direct = (n: string) => ['--async', '--parallel', '2', '--endpoint-url', moto.url, url, 'srv', n, rec.dest];
      // A 30 s read timeout puts the download's deadline (2 minutes) past the 30 s idle time.
      const pid = startPrefetcher(['--async', '--parallel', '2', '--read-timeout', '30', '--endpoint-url', proxy.url, url, 'srv', names[0]!, rec.dest], join(dirname(rec.walDir), 'worker.log'));
      workers.push(pid);
      await until('the prefetcher holds its lock', () => rec.workerPid() === pid, 20_000);
      expect((await runProcess(bin, direct(names[0]!), { env: toolEnv(), timeoutMs: 60_000 })).code).toBe(0);
      await until('the prefetcher downloads the next segment', () => existsSync(join(rec.restoreDir()!, `${names[1]}.fetching`)), 20_000);
      const lastCall = Date.now();
      await until('the prefetcher exits', () => !alive(pid), 60_000);
      expect(Date.now() - lastCall).toBeLessThan(45_000);
      expect(readdirSync(rec.restoreDir()!).filter((f) => f !== 'want' && f !== 'segment-size')).toEqual([]);
    } finally {
      await proxy.close();
    }
  }, 150_000);
});

describe('a prefetched segment of the wrong size (directory store)', () => {
  it('is not handed over, neither by the shell front nor by Node; the archived segment is fetched instead', async () => {
    const store = mkdtempSync(join(tmpdir(), 'bc-asyncrest-size-'));
    const contents = names.map((n) => withLongPageHeader(randomBytes(MiB), n));
    for (const r of await archiveSegments([`file://${store}`, 'srv'], names, contents, cleanEnv())) expect(r.code).toBe(0);
    const rec = recoveryDir();
    const args = (n: string) => ['--parallel', '3', `file://${store}`, 'srv', n, rec.dest];
    expect((await runProcess(bin, args(names[0]!), { env: toolEnv() })).code).toBe(0);
    const entry = join(rec.restoreDir()!, names[1]!);
    expect(readFileSync(entry).equals(contents[1]!)).toBe(true);
    // Cut short in the spool (as a crash before the data reached the disk might leave it).
    writeFileSync(entry, contents[1]!.subarray(0, MiB / 2));
    const shellOnly = await runProcess(bin, args(names[1]!), { env: toolEnv(NO_NODE) });
    expect(shellOnly.code).not.toBe(0); // the shell did not serve it: it ran Node, which may not start here
    expect(existsSync(rec.dest) && readFileSync(rec.dest).length).toBe(MiB); // still the first segment
    const r = await runProcess(bin, args(names[1]!), { env: toolEnv() });
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toMatch(/does not have the segment size/);
    expect(sha(readFileSync(rec.dest))).toBe(sha(contents[1]!));
  }, 60_000);
});

describe('--async without a count (directory store)', () => {
  const store = mkdtempSync(join(tmpdir(), 'bc-asyncrest-default-'));
  const contents = names.map((n) => withLongPageHeader(randomBytes(MiB), n));

  beforeAll(async () => {
    for (const r of await archiveSegments([`file://${store}`, 'srv'], names, contents, cleanEnv())) expect(r.code).toBe(0);
  });

  it('prefetches ahead by default: the calls that follow are answered by the shell front, Node blocked', async () => {
    const rec = recoveryDir();
    const args = (n: string) => ['--async', `file://${store}`, 'srv', n, rec.dest];
    const first = await runProcess(bin, args(names[0]!), { env: toolEnv() });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    workers.push(rec.workerPid());
    const spooled = (n: string) => rec.restoreDir() !== null && existsSync(join(rec.restoreDir()!, n));
    await until('the next three segments prefetched', () => names.slice(1).every(spooled), 30_000);
    for (const [i, n] of names.entries()) {
      if (i === 0) continue;
      const r = await runProcess(bin, args(n), { env: toolEnv(NO_NODE) });
      expect({ n, code: r.code, stderr: r.stderr }).toEqual({ n, code: 0, stderr: '' });
      expect(sha(readFileSync(rec.dest))).toBe(sha(contents[i]!));
    }
  }, 60_000);

  it('the call that starts the prefetcher returns once the next segment is taken up: the call right after it is the shell front\'s', async () => {
    // Without the wait, PostgreSQL's next call came before the new prefetcher (a Node start of its
    // own) had marked anything, and started Node for a segment about to be prefetched.
    const rec = recoveryDir();
    const args = (n: string) => ['--async', `file://${store}`, 'srv', n, rec.dest];
    const first = await runProcess(bin, args(names[0]!), { env: toolEnv() });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    workers.push(rec.workerPid());
    const second = await runProcess(bin, args(names[1]!), { env: toolEnv(NO_NODE) });
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(readFileSync(rec.dest))).toBe(sha(contents[1]!));
  }, 60_000);

  it('an explicit --parallel 1 is kept: a one-shot call, no prefetcher, no spool', async () => {
    const rec = recoveryDir();
    const r = await runProcess(bin, ['--async', '--parallel', '1', `file://${store}`, 'srv', names[0]!, rec.dest], { env: toolEnv() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(readFileSync(rec.dest))).toBe(sha(contents[0]!));
    expect(rec.restoreDir()).toBeNull();
  }, 60_000);
});

describe('a segment whose object is refused (moto behind a proxy counting its GETs)', () => {
  let moto: ServerHandle;
  const contents = names.map((n) => withLongPageHeader(randomBytes(MiB), n));
  const url = 's3://asyncrefused/cluster';
  const damaged = names[2]!;
  const key = `cluster/srv/wals/0000000100000000/${damaged}`;
  /** The segment after it under its name: the page header names another segment (docs/format.md#segment-header). */
  const wrong = withLongPageHeader(randomBytes(MiB), names[3]!);
  let gets = 0;
  /** GETs of the segment before it are refused (403) while this is set: a failing store, not a refused object. */
  let denyNext = false;
  let getsNext = 0;
  const keyNext = `cluster/srv/wals/0000000100000000/${names[1]}`;
  let proxy: { url: string; close: () => Promise<void> };

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'asyncrefused');
    for (const r of await archiveSegments(['--endpoint-url', moto.url, url, 'srv'], names, contents, cleanEnv(MOTO_ENV))) {
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
    const store = await openMotoStore(moto, 'asyncrefused');
    try {
      await store.put(key, wrong);
    } finally {
      await store.close();
    }
    const port = Number(new URL(moto.url).port);
    const isGet = (r: { method: string; url: string }, k: string) => r.method === 'GET' && r.url.split('?')[0]!.endsWith(`/${k}`);
    proxy = await startS3Proxy(port, (r) => denyNext && isGet(r, keyNext), undefined, {
      // Counted as asked for: a refused download is cut off, so its answer may never end.
      hold: (r) => {
        if (isGet(r, key)) gets++;
        if (isGet(r, keyNext)) getsNext++;
        return undefined;
      },
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await moto?.stop();
  });

  const args = (rec: ReturnType<typeof recoveryDir>, n: string) => ['--async', '--parallel', '4', '--endpoint-url', proxy.url, url, 'srv', n, rec.dest];
  const workerLog = (rec: ReturnType<typeof recoveryDir>) => readFileSync(join(rec.restoreDir()!, 'worker.log'), 'utf8');

  it('the prefetcher downloads it once, says so once, and not again while it is unchanged; the call for it gets the refusal (exit 4)', async () => {
    const rec = recoveryDir();
    const first = await runProcess(bin, args(rec, names[0]!), { env: toolEnv(), timeoutMs: 60_000 });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const pid = rec.workerPid();
    workers.push(pid);
    const spooled = (n: string) => existsSync(join(rec.restoreDir()!, n));
    await until('the segments around it prefetched', () => spooled(names[1]!) && spooled(names[3]!), 20_000);
    await until('the refusal', () => gets > 0, 20_000);
    const before = gets;
    // Recovery stays on the segment before it: the prefetcher keeps the refused segment in its window.
    await sleep(10_000);
    expect(alive(pid)).toBe(true);
    expect({ before, after: gets }).toEqual({ before: 1, after: 1 });
    expect(spooled(damaged)).toBe(false);
    expect(workerLog(rec).match(/WARNING.*/g)?.filter((l) => l.includes(damaged))).toEqual([expect.stringMatching(/is another segment/)]);
    // PostgreSQL's call for it downloads it itself and gets the refusal, as from a one-shot call.
    const call = await runProcess(bin, args(rec, damaged), { env: toolEnv(), timeoutMs: 60_000 });
    expect(call.code).toBe(4);
    expect(call.stderr.trim().split('\n')).toHaveLength(1);
    expect(call.stderr).toMatch(/is another segment/);
    expect(sha(readFileSync(rec.dest))).toBe(sha(contents[0]!));
    process.kill(pid, 'SIGKILL');
  }, 90_000);

  it('once archived again correctly it is fetched and handed over byte-identical', async () => {
    const rec = recoveryDir();
    const first = await runProcess(bin, args(rec, names[0]!), { env: toolEnv(), timeoutMs: 60_000 });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    workers.push(rec.workerPid());
    await until('the refusal logged', () => existsSync(join(rec.restoreDir()!, 'worker.log')) && workerLog(rec).includes('is another segment'), 20_000);
    // A later last-modified time (whole seconds on some stores) and the right content.
    await sleep(1_100);
    const store = await openMotoStore(moto, 'asyncrefused');
    try {
      await store.delete(key);
      await store.put(key, contents[2]!);
    } finally {
      await store.close();
    }
    await until('the segment prefetched', () => existsSync(join(rec.restoreDir()!, damaged)), 15_000);
    for (const [i, n] of names.entries()) {
      if (i === 0) continue;
      const r = await runProcess(bin, args(rec, n), { env: toolEnv(NO_NODE) });
      expect({ n, code: r.code, stderr: r.stderr }).toEqual({ n, code: 0, stderr: '' });
      expect(sha(readFileSync(rec.dest))).toBe(sha(contents[i]!));
    }
  }, 90_000);

  it('a download that fails is tried again less and less often, and the segment arrives once the store answers', async () => {
    const rec = recoveryDir();
    denyNext = true;
    getsNext = 0;
    try {
      const first = await runProcess(bin, args(rec, names[0]!), { env: toolEnv(), timeoutMs: 60_000 });
      expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
      workers.push(rec.workerPid());
      await until('the first failure', () => getsNext > 0, 20_000);
      // Every second for 12 s before; now after 1, 2, 4 and 8 s.
      await sleep(12_000);
      expect(getsNext).toBeGreaterThanOrEqual(3);
      expect(getsNext).toBeLessThanOrEqual(5);
      expect(workerLog(rec)).toMatch(new RegExp(`Prefetch of ${names[1]} failed: .*; tried again in 4 s`));
    } finally {
      denyNext = false;
    }
    await until('the segment prefetched', () => existsSync(join(rec.restoreDir()!, names[1]!)), 20_000);
    const r = await runProcess(bin, args(rec, names[1]!), { env: toolEnv(NO_NODE) });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(readFileSync(rec.dest))).toBe(sha(contents[1]!));
  }, 90_000);
});

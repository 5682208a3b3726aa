// What wal-restore guarantees about the file it puts at WAL_DEST (docs/format.md#restore-durability),
// on moto and the file store, through the real executable: a run killed part-way through the
// download leaves nothing under WAL_DEST (atomic, whatever the destination); the file is synced
// before its rename except at PostgreSQL's own pg_wal/RECOVERYXLOG, which PostgreSQL syncs itself
// (durable_rename) or removes before asking again. The syncs are seen with strace (-y names the
// file behind each descriptor).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandExists, createS3Bucket, ROOT, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { cleanEnv, exitOf, runBin, runProcess } from '../helpers/run-bin.ts';
import { startTcpProxy } from '../helpers/proxy.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { segmentFor, writeWalFile, SEGMENT_SIZE } from '../helpers/wal-segment.ts';
import { isOurTempName } from '../../src/wal/temp-files.ts';

const SEG = '000000010000000000000007';
const NEXT = '000000010000000000000008';
let moto: ServerHandle;
let work: string;
let seq = 0;
const segments = new Map<string, Buffer>();

const env = () => cleanEnv(MOTO_ENV);
const motoArgs = (bucket: string) => ['--endpoint-url', moto.url, `s3://${bucket}/pfx`, 'srv'];

/** A fresh PGDATA-like directory with pg_wal/; returns pg_wal's path. */
function pgWal(): string {
  const dir = join(work, `pgdata-${++seq}`, 'pg_wal');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs the wal-restore executable under strace; returns its exit code and the synced files' paths. */
async function restoreTraced(args: string[]): Promise<{ code: number | null; synced: string[]; stderr: string }> {
  const out = join(work, `strace-${++seq}.txt`);
  const r = await runProcess('strace', ['-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync', '-o', out,
    process.execPath, join(ROOT, 'bin', 'barman-cloud-wal-restore'), ...args], { env: env(), timeoutMs: 60_000 });
  const synced = [...readFileSync(out, 'utf8').matchAll(/f(?:data)?sync\(\d+<([^>]*)>\)/g)].map((m) => m[1]!);
  return { code: r.code, synced, stderr: r.stderr };
}

beforeAll(async () => {
  moto = await startMoto();
  work = mkdtempSync(join(tmpdir(), 'bc-wal-durable-'));
  // One archive on each store, two consecutive segments (the second for the prefetch case).
  await createS3Bucket(moto.url, 'durable');
  mkdirSync(join(work, 'store'));
  for (const name of [SEG, NEXT]) {
    const data = segmentFor(name, SEGMENT_SIZE, name);
    segments.set(name, data);
    const path = writeWalFile(join(work, 'src'), name, data);
    for (const target of [motoArgs('durable'), [`file://${join(work, 'store')}`, 'srv']]) {
      const r = await runBin('barman-cloud-wal-archive', [...target, path], { env: env() });
      expect(r.code, r.stderr).toBe(0);
    }
  }
}, 120_000);
afterAll(async () => {
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('wal-restore killed during the download', () => {
  it('leaves no file under WAL_DEST, only its temp file; the next run restores it whole', async () => {
    // The proxy passes the first 4 MiB of the answer on, then nothing: the run is mid-download.
    const proxy = await startTcpProxy(moto.url, 'stall-download', 4 << 20);
    try {
      const dir = pgWal();
      const dest = join(dir, 'RECOVERYXLOG');
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'barman-cloud-wal-restore'),
        '--endpoint-url', proxy.url, 's3://durable/pfx', 'srv', SEG, dest], { env: env(), stdio: 'ignore' });
      const ended = exitOf(child);
      // Wait until a file in pg_wal holds part of the segment (the temp file beside WAL_DEST).
      const partial = await new Promise<string>((resolve, reject) => {
        const t0 = Date.now();
        const look = setInterval(() => {
          const written = readdirSync(dir).find((n) => statSync(join(dir, n)).size > 0);
          if (written) {
            clearInterval(look);
            resolve(written);
          } else if (Date.now() - t0 > 30_000) {
            clearInterval(look);
            reject(new Error('nothing written within 30 s'));
          }
        }, 20);
      });
      expect(statSync(join(dir, partial)).size).toBeLessThan(SEGMENT_SIZE);
      child.kill('SIGKILL');
      expect(await ended).toBe('SIGKILL');
      expect(existsSync(dest)).toBe(false);
      expect(readdirSync(dir)).toEqual([partial]);
      expect(isOurTempName(partial)).toBe(true);

      const again = await runBin('barman-cloud-wal-restore', [...motoArgs('durable'), SEG, dest], { env: env() });
      expect(again.code, again.stderr).toBe(0);
      expect(readFileSync(dest).equals(segments.get(SEG)!)).toBe(true);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

describe.skipIf(!commandExists('strace'))('wal-restore syncs WAL_DEST unless PostgreSQL does', () => {
  const stores: [string, () => string[]][] = [
    ['moto', () => motoArgs('durable')],
    ['the file store', () => [`file://${join(work, 'store')}`, 'srv']],
  ];

  it.each(stores)('%s: pg_wal/RECOVERYXLOG is renamed into place whole and not synced', async (_store, target) => {
    const dir = pgWal();
    const dest = join(dir, 'RECOVERYXLOG');
    const r = await restoreTraced([...target(), SEG, dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(segments.get(SEG)!)).toBe(true);
    expect(readdirSync(dir)).toEqual(['RECOVERYXLOG']);
    expect(r.synced.filter((p) => p.startsWith(dir))).toEqual([]);
  }, 60_000);

  it.each(stores)('%s: a spool file (CloudNativePG\'s <spool>/<WAL>.tmp) is synced before its rename', async (_store, target) => {
    const spool = join(work, `cnpg-spool-${++seq}`);
    mkdirSync(spool);
    const dest = join(spool, `${SEG}.tmp`);
    const r = await restoreTraced([...target(), SEG, dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(segments.get(SEG)!)).toBe(true);
    // The temp file beside it, by the descriptor written through: synced before it got the name.
    expect(r.synced.some((p) => p.startsWith(`${dest}.tmp-barman-cloud-`)), r.synced.join('\n')).toBe(true);
  }, 60_000);

  it('a file pg_rewind names (pg_wal/<WAL>) is synced, and so is our prefetch spool\'s next segment', async () => {
    const dir = pgWal();
    const dest = join(dir, SEG);
    const r = await restoreTraced([...motoArgs('durable'), '--parallel', '2', SEG, dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(segments.get(SEG)!)).toBe(true);
    expect(r.synced.some((p) => p.startsWith(`${dest}.tmp-barman-cloud-`)), r.synced.join('\n')).toBe(true);
    // The prefetched segment lies in the spool under pg_wal, and was synced before its rename.
    expect(r.synced.some((p) => p.includes('/restore/') && p.includes(`${NEXT}.tmp-barman-cloud-`)), r.synced.join('\n')).toBe(true);
  }, 60_000);
});

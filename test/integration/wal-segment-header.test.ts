// A segment (or .partial) whose first page is not its own long page header is refused by every path
// that writes a restored WAL file: one-shot, --parallel prefetch, the --async prefetcher. Zeros of
// the right size, random bytes, an HTML page a proxy answered with: PostgreSQL would take each for
// the end of WAL and end recovery there, promoting without the later data
// (docs/commands/wal-restore.md#what-postgresql-does-with-a-failed-restore). Real WAL of a later
// PostgreSQL (another magic, a new flag bit, a larger page) is still restored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, type ServerHandle } from '../helpers/servers.ts';
import { cleanEnv, runProcess } from '../helpers/run-bin.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { segmentFor } from '../helpers/wal-segment.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const MiB = 1 << 20;
const DIR = 'srv/wals/0000000100000000';
const bin = join(ROOT, 'bin', 'barman-cloud-wal-restore');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 1 MiB segments 0x41-0x49: two sound ones around the damaged ones, as recovery would ask for them. */
const FIRST = '000000010000000000000041';
const LAST = '000000010000000000000049';
const FUTURE = '000000010000000000000048';
const html = Buffer.from('<!DOCTYPE html>\n<html><head><title>Login required</title></head><body>Please sign in.</body></html>\n');
/** The damaged objects: WAL name, object key suffix, content. */
const damaged: [string, string, Buffer][] = [
  ['000000010000000000000042', '', Buffer.alloc(MiB)],
  ['000000010000000000000043', '', randomBytes(MiB)],
  ['000000010000000000000044', '', html],
  ['000000010000000000000045', '.gz', gzipSync(Buffer.alloc(16 * MiB))],
  ['000000010000000000000046', '', Buffer.from('0123456789')], // too short to hold a header
  ['000000010000000000000047', '.partial', Buffer.alloc(MiB)],
];
/** A sound segment as a later PostgreSQL might write it: new magic, a new xlp_info bit, 64 KiB pages. */
const future = (() => {
  const b = segmentFor(FUTURE, MiB);
  b.writeUInt16LE(0xd2ff, 0);
  b.writeUInt16LE(0x0102, 2);
  b.writeUInt32LE(65536, 36);
  return b;
})();
const sound = new Map([[FIRST, segmentFor(FIRST, MiB)], [FUTURE, future], [LAST, segmentFor(LAST, MiB)]]);

const refusal = (name: string, suffix: string) => new RegExp(
  `^[^\\n]* ERROR: Barman cloud WAL restore exception: WAL object ${DIR}/${name}${suffix.replace('.', '\\.')} ` +
    `is not WAL segment ${name} \\(it does not start with a long page header stating a segment size\\)\\n$`,
);
/** The ERROR lines of a call's stderr (a call that prefetches also warns about the next segments). */
const errors = (stderr: string) => stderr.split(/(?<=\n)/).filter((l) => / ERROR: /.test(l));

/** Every file under `dir`, recursively (names only). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

interface Target {
  url: string;
  env: NodeJS.ProcessEnv;
  extra: string[];
  close(): Promise<void>;
}

async function seed(store: ObjectStore): Promise<void> {
  for (const [name, data] of sound) await store.put(`${DIR}/${name}`, data);
  for (const [name, suffix, data] of damaged) await store.put(`${DIR}/${name}${suffix}`, data);
}

const targets: [string, () => Promise<Target>][] = [
  ['directory store', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bc-seghead-store-'));
    const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    await seed(store);
    await store.close();
    return { url: `file://${root}`, env: cleanEnv(), extra: [], close: async () => rmSync(root, { recursive: true, force: true }) };
  }],
  ['moto', async () => {
    const bucket = `seghead-${process.pid}`;
    const { moto, store }: { moto: ServerHandle; store: ObjectStore } = await startMotoBucket(bucket);
    await seed(store);
    await store.close();
    return { url: `s3://${bucket}`, env: cleanEnv(MOTO_ENV), extra: ['--endpoint-url', moto.url], close: () => moto.stop() };
  }],
];

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-seghead-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(targets)('wal-restore of a segment without its long page header (%s)', (_label, start) => {
  let t: Target;
  beforeAll(async () => {
    t = await start();
  }, 120_000);
  afterAll(() => t?.close());

  /** A fresh pg_wal; `args` go before the store URL. */
  const restore = (name: string, args: string[] = [], spool?: string) => {
    const walDir = mkdtempSync(join(work, 'pg_wal-'));
    const env = { ...t.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...(spool ? { BARMAN_CLOUD_SPOOL_DIR: spool } : {}) };
    return runProcess(bin, [...args, ...t.extra, t.url, 'srv', name, join(walDir, 'RECOVERYXLOG')], { env, timeoutMs: 60_000 })
      .then((r) => ({ ...r, walDir }));
  };

  it('one-shot: zeros, random bytes, an HTML page, compressed zeros, a few bytes, a zero .partial: exit 4, one line, nothing written', async () => {
    for (const [name, suffix] of damaged) {
      const r = await restore(name);
      expect({ name, code: r.code }).toEqual({ name, code: 4 });
      expect(r.stderr).toMatch(refusal(name, suffix));
      expect(readdirSync(r.walDir)).toEqual([]);
    }
  }, 120_000);

  it('one-shot: sound segments, a later version\'s too, are restored byte for byte', async () => {
    for (const [name, data] of sound) {
      const r = await restore(name);
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: '' });
      expect(readFileSync(join(r.walDir, 'RECOVERYXLOG')).equals(data)).toBe(true);
    }
  }, 60_000);

  it('--parallel: the damaged segments are not prefetched, and each call for one is refused', async () => {
    const spool = mkdtempSync(join(work, 'spool-'));
    const first = await restore(FIRST, ['--parallel', '9'], spool);
    expect(first.code, first.stderr).toBe(0);
    // the window's sound segments are spooled; the damaged ones are not (each prefetch warned)
    expect(filesUnder(spool).filter((n) => /^[0-9A-F]{24}/.test(n)).sort()).toEqual([FUTURE, LAST]);
    for (const [name, suffix] of damaged) if (suffix !== '.partial') expect(first.stderr).toContain(`Prefetch of ${name} failed`);
    for (const [name, suffix] of damaged) {
      if (suffix === '.partial') continue; // prefetch never takes a .partial
      const r = await restore(name, ['--parallel', '9'], spool);
      expect({ name, code: r.code }).toEqual({ name, code: 4 });
      expect(errors(r.stderr)).toHaveLength(1);
      expect(errors(r.stderr)[0]).toMatch(refusal(name, suffix));
      expect(readdirSync(r.walDir)).toEqual([]);
    }
    const last = await restore(LAST, ['--parallel', '9'], spool);
    expect(last.code, last.stderr).toBe(0);
    expect(readFileSync(join(last.walDir, 'RECOVERYXLOG')).equals(sound.get(LAST)!)).toBe(true);
  }, 120_000);

  it('--async: the prefetcher leaves the damaged segments out of the spool, and each call for one is refused', async () => {
    const spool = mkdtempSync(join(work, 'spool-'));
    const first = await restore(FIRST, ['--async', '--parallel', '9'], spool);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    // a refused download is a hole the prefetcher does not look past (src/wal/async.ts): it tries the
    // first damaged segment, and leaves it out of the spool
    const log = () => {
      const at = readdirSync(spool, { recursive: true }).map(String).find((p) => p.endsWith('worker.log'));
      return at ? readFileSync(join(spool, at), 'utf8') : '';
    };
    const [hole] = damaged[0]!;
    const end = Date.now() + 30_000;
    while (!(filesUnder(spool).includes(hole) || log().includes(`Prefetch of ${hole} refused`))) {
      if (Date.now() > end) throw new Error(`the prefetcher did not try ${hole}: ${filesUnder(spool).join(' ')}`);
      await sleep(50);
    }
    await sleep(500); // what else it started meanwhile
    expect(filesUnder(spool).filter((n) => /^[0-9A-F]{24}/.test(n))).toEqual([]);
    for (const [name, suffix] of damaged) {
      if (suffix === '.partial') continue;
      const r = await restore(name, ['--async', '--parallel', '9'], spool);
      expect({ name, code: r.code }).toEqual({ name, code: 4 });
      expect(errors(r.stderr)).toHaveLength(1);
      expect(errors(r.stderr)[0]).toMatch(refusal(name, suffix));
      expect(readdirSync(r.walDir)).toEqual([]);
    }
    // the prefetcher lists the hole again each second until idle: stopped here, before its spool is removed
    const pidFile = readdirSync(spool, { recursive: true }).map(String).find((p) => p.endsWith('worker.pid'));
    const pid = pidFile ? Number(readFileSync(join(spool, pidFile), 'utf8')) : 0;
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, 120_000);
});

// A .partial with a sound header is checked against the segment size that header states, as a segment is.
describe('wal-restore of a .partial longer than the segment its header states', () => {
  it('is stopped there (exit 4, one line), nothing written', async () => {
    const root = mkdtempSync(join(work, 'store-'));
    mkdirSync(join(root, DIR), { recursive: true });
    const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    const name = '000000010000000000000051';
    await store.put(`${DIR}/${name}.partial`, Buffer.concat([segmentFor(name, MiB), Buffer.alloc(MiB)]));
    await store.close();
    const walDir = mkdtempSync(join(work, 'pg_wal-'));
    const r = await runProcess(bin, [`file://${root}`, 'srv', name, join(walDir, 'RECOVERYXLOG')], { env: cleanEnv(), timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`^[^\\n]* ${DIR}/${name}\\.partial is too long \\(more than the ${MiB}-byte segment its first page states\\)\\n$`));
    expect(readdirSync(walDir)).toEqual([]);
  }, 60_000);
});

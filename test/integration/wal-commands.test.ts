// wal-archive, wal-restore and check-wal-archive as executables, against moto and the file store,
// with synthetic segments (the PostgreSQL-driven tests are in postgres-wal.test.ts).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, ROOT, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { segmentFor, walSegmentBytes, withLongPageHeader, writeWalFile } from '../helpers/wal-segment.ts';
import { MOTO_ENV, openMotoStore } from '../helpers/moto.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const MiB = 1024 * 1024;
let moto: ServerHandle;
let s3: ObjectStore;
let work: string;
let bucketSeq = 0;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function newBucket(): Promise<string> {
  const name = `wal-${process.pid}-${++bucketSeq}`;
  await createS3Bucket(moto.url, name);
  return name;
}

function s3Args(bucket: string): string[] {
  return ['--endpoint-url', moto.url, `s3://${bucket}/pfx`, 'srv'];
}

const env = () => cleanEnv(MOTO_ENV);

async function keys(bucket: string, prefix = ''): Promise<string[]> {
  const store = await openMotoStore(moto, bucket);
  const out: string[] = [];
  for await (const e of store.list(prefix)) if (e.kind === 'object') out.push(e.key);
  await store.close();
  return out;
}

beforeAll(async () => {
  moto = await startMoto();
  work = mkdtempSync(join(tmpdir(), 'bc-wal-'));
  s3 = await openMotoStore(moto, 'unused');
});
afterAll(async () => {
  await s3?.close();
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('wal-archive and wal-restore round trips', () => {
  it.each([
    ['none', [], ''], ['gzip', ['-z'], '.gz'], ['bzip2', ['-j'], '.bz2'], ['xz', ['--xz'], '.xz'],
    ['snappy', ['--snappy'], '.snappy'], ['zstd', ['--zstd'], '.zst'], ['lz4', ['--lz4'], '.lz4'],
  ])('%s: barman key layout, byte-identical restore', async (_codec, flags, suffix) => {
    const bucket = await newBucket();
    const name = '0000000100000000000000A1';
    const data = segmentFor(name);
    const path = writeWalFile(join(work, `pgwal-${bucket}`), name, data);
    const a = await runBin('barman-cloud-wal-archive', [...flags, ...s3Args(bucket), path], { env: env() });
    expect({ code: a.code, stderr: a.stderr, stdout: a.stdout }).toEqual({ code: 0, stderr: '', stdout: '' });
    expect(await keys(bucket)).toEqual([`pfx/srv/wals/0000000100000000/${name}${suffix}`]);
    const dest = join(work, `restored-${bucket}`);
    const r = await runBin('barman-cloud-wal-restore', [...s3Args(bucket), name, dest], { env: env() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(readFileSync(dest))).toBe(sha(data));
  });

  it('stores history files directly under wals/, with history tags instead of tags', async () => {
    const bucket = await newBucket();
    const path = writeWalFile(join(work, 'hist'), '00000002.history', Buffer.from('1\t0/5000000\tno recovery target specified\n'));
    const a = await runBin('barman-cloud-wal-archive', ['--tag', 'kind,wal', '--history-tag', 'kind,history', ...s3Args(bucket), path], { env: env() });
    expect(a.code).toBe(0);
    expect(await keys(bucket)).toEqual(['pfx/srv/wals/00000002.history']);
    const store = await openMotoStore(moto, bucket);
    expect(await store.getTags('pfx/srv/wals/00000002.history')).toEqual([['kind', 'history']]);
    await store.close();
  });

  it('exits 1 silently for a missing WAL file, and never leaves a partial wal_dest', async () => {
    const bucket = await newBucket();
    const dest = join(work, 'missing-dest');
    const r = await runBin('barman-cloud-wal-restore', [...s3Args(bucket), '000000010000000000000077', dest], { env: env() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: '' });
    expect(existsSync(dest)).toBe(false);
    // A corrupt compressed object: exit 4, one log line, nothing at wal_dest.
    const store = await openMotoStore(moto, bucket);
    await store.put('pfx/srv/wals/0000000100000000/000000010000000000000078.gz', Buffer.from('not gzip at all'));
    await store.close();
    const bad = await runBin('barman-cloud-wal-restore', [...s3Args(bucket), '000000010000000000000078', dest], { env: env() });
    expect(bad.code).toBe(4);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(work).filter((n) => n.startsWith('missing-dest'))).toEqual([]);
  });

  it('follows barman candidate rules for .partial files and --no-partial', async () => {
    const bucket = await newBucket();
    const name = '000000020000000000000005';
    const full = segmentFor(name, MiB);
    const partial = withLongPageHeader(walSegmentBytes(64 << 10), name, MiB); // cut short by the switch
    writeWalFile(join(work, 'partial'), name, full);
    writeWalFile(join(work, 'partial'), `${name}.partial`, partial);
    for (const f of [name, `${name}.partial`]) {
      expect((await runBin('barman-cloud-wal-archive', [...s3Args(bucket), join(work, 'partial', f)], { env: env() })).code).toBe(0);
    }
    const dest = join(work, 'partial-dest');
    expect((await runBin('barman-cloud-wal-restore', [...s3Args(bucket), name, dest], { env: env() })).code).toBe(0);
    expect(readFileSync(dest)).toEqual(partial); // barman: X.partial wins over X (docs/format.md#wal-restore)
    rmSync(dest);
    expect((await runBin('barman-cloud-wal-restore', ['--no-partial', ...s3Args(bucket), name, dest], { env: env() })).code).toBe(0);
    expect(readFileSync(dest)).toEqual(full);
  });
});

describe('never overwrite a different segment', () => {
  it('succeeds for identical content under any suffix, refuses different content, --overwrite replaces', async () => {
    const bucket = await newBucket();
    const name = '000000010000000000000010';
    const data = segmentFor(name, 2 * MiB);
    const dir = join(work, 'dup');
    const path = writeWalFile(dir, name, data);
    expect((await runBin('barman-cloud-wal-archive', ['-z', ...s3Args(bucket), path], { env: env() })).code).toBe(0);
    // Same content, other codec: already archived, nothing new stored.
    const again = await runBin('barman-cloud-wal-archive', ['--lz4', ...s3Args(bucket), path], { env: env() });
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await keys(bucket)).toEqual([`pfx/srv/wals/0000000100000000/${name}.gz`]);
    // Different content: refused, exit 1, one line, archive untouched.
    writeFileSync(path, segmentFor(name, 2 * MiB));
    const conflict = await runBin('barman-cloud-wal-archive', [...s3Args(bucket), path], { env: env() });
    expect(conflict.code).toBe(1);
    expect(conflict.stderr.trim().split('\n')).toHaveLength(1);
    expect(conflict.stderr).toMatch(/already archived with different content/);
    expect(await keys(bucket)).toEqual([`pfx/srv/wals/0000000100000000/${name}.gz`]);
    // Explicit overwrite: replaced, and only one copy remains.
    const over = await runBin('barman-cloud-wal-archive', ['--overwrite', ...s3Args(bucket), path], { env: env() });
    expect(over.code).toBe(0);
    expect(await keys(bucket)).toEqual([`pfx/srv/wals/0000000100000000/${name}`]);
    const dest = join(work, 'dup-dest');
    expect((await runBin('barman-cloud-wal-restore', [...s3Args(bucket), name, dest], { env: env() })).code).toBe(0);
    expect(readFileSync(dest)).toEqual(readFileSync(path));
  });

  it('gives barman exit codes and one-line messages for bad input', async () => {
    const bucket = await newBucket();
    const dir = join(work, 'bad');
    mkdirSync(dir, { recursive: true });
    const cases: [string[], number, RegExp][] = [
      [[...s3Args(bucket), join(dir, 'not-a-wal-name')], 3, /invalid name for a WAL file/],
      [[...s3Args(bucket), join(dir, '000000010000000000000099')], 4, /ENOENT|no such file/i],
      [['--endpoint-url', moto.url, 's3://no-such-bucket-here/x', 'srv', writeWalFile(dir, '000000010000000000000098', Buffer.from('x'))], 4, /NoSuchBucket|does not exist/],
      // A whole segment to compress: the missing bucket's answer arrives while the body is still
      // being made, and must be reported like the uncompressed case (it once crashed with a stack).
      ...(['--lz4', '--gzip'] as const).map((codec): [string[], number, RegExp] =>
        [[codec, '--endpoint-url', moto.url, 's3://no-such-bucket-here/x', 'srv', writeWalFile(dir, '000000010000000000000097', walSegmentBytes(16 * MiB))], 4, /does not exist/]),
    ];
    for (const [args, code, message] of cases) {
      const r = await runBin('barman-cloud-wal-archive', args, { env: env() });
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const wrongKey = await runBin('barman-cloud-wal-archive', [...s3Args(bucket), join(dir, '000000010000000000000098')], {
      env: cleanEnv({ ...MOTO_ENV, AWS_ACCESS_KEY_ID: 'unknown-key', AWS_SECRET_ACCESS_KEY: 'wrong' }),
    });
    // moto accepts any key; what matters is that the command did not crash.
    expect([0, 4]).toContain(wrongKey.code);
  });
});

describe('check-wal-archive', () => {
  it('creates a missing bucket, passes on an empty archive, fails on WAL files', async () => {
    const name = `created-${process.pid}`;
    const c = await runBin('barman-cloud-check-wal-archive', ['--endpoint-url', moto.url, `s3://${name}/p`, 'srv'], { env: env() });
    expect({ code: c.code, stderr: c.stderr }).toEqual({ code: 0, stderr: '' });
    const path = writeWalFile(join(work, 'chk'), '000000020000000000000003', Buffer.from('x'));
    expect((await runBin('barman-cloud-wal-archive', ['--endpoint-url', moto.url, `s3://${name}/p`, 'srv', path], { env: env() })).code).toBe(0);
    const full = await runBin('barman-cloud-check-wal-archive', ['--endpoint-url', moto.url, `s3://${name}/p`, 'srv'], { env: env() });
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/WAL archive check failed for server srv: Expected empty archive/);
    expect((await runBin('barman-cloud-check-wal-archive', ['--timeline', '3', '--endpoint-url', moto.url, `s3://${name}/p`, 'srv'], { env: env() })).code).toBe(0);
    const tl = await runBin('barman-cloud-check-wal-archive', ['--timeline', '2', '--endpoint-url', moto.url, `s3://${name}/p`, 'srv'], { env: env() });
    expect(tl.code).toBe(1);
    expect(tl.stderr).toMatch(/Found 1 file in WAL archive equal to or newer than timeline 2/);
    // Another server name in the same bucket is a different archive.
    expect((await runBin('barman-cloud-check-wal-archive', ['--endpoint-url', moto.url, `s3://${name}/p`, 'other'], { env: env() })).code).toBe(0);
  });

  it('works on the local directory store', async () => {
    const dir = join(work, 'filestore-check');
    expect((await runBin('barman-cloud-check-wal-archive', [`file://${dir}`, 'srv'])).code).toBe(0);
    expect(existsSync(dir)).toBe(true);
    const path = writeWalFile(join(work, 'chk2'), '000000010000000000000003', Buffer.from('x'));
    expect((await runBin('barman-cloud-wal-archive', [`file://${dir}`, 'srv', path])).code).toBe(0);
    expect(existsSync(join(dir, 'srv', 'wals', '0000000100000000', '000000010000000000000003'))).toBe(true);
    expect((await runBin('barman-cloud-check-wal-archive', [`file://${dir}`, 'srv'])).code).toBe(1);
  });
});

describe('parallel archiving through the spool', () => {
  it('uploads .ready files ahead, answers later calls from the spool without loading an SDK', async () => {
    const bucket = await newBucket();
    const pgwal = join(work, `pg_wal-${bucket}`);
    const spool = join(work, `spool-${bucket}`);
    mkdirSync(join(pgwal, 'archive_status'), { recursive: true });
    const names = Array.from({ length: 6 }, (_, i) => `0000000100000000000000${(0x20 + i).toString(16).toUpperCase()}`);
    const contents = new Map<string, Buffer>();
    for (const n of names) {
      contents.set(n, segmentFor(n, MiB));
      writeWalFile(pgwal, n, contents.get(n)!);
      writeFileSync(join(pgwal, 'archive_status', `${n}.ready`), '');
    }
    const args = (n: string) => ['--lz4', '--max-parallel', '4', '--spool-dir', spool, ...s3Args(bucket), join(pgwal, n)];
    const first = await runBin('barman-cloud-wal-archive', args(names[0]), { env: env() });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    expect((await keys(bucket)).length).toBe(4);

    // PostgreSQL marks the first .done and asks for the next one: answered from the spool.
    rmSync(join(pgwal, 'archive_status', `${names[0]}.ready`));
    const trace = join(work, `trace-${bucket}.txt`);
    writeFileSync(trace, '');
    const second = await runBin('barman-cloud-wal-archive', args(names[1]), {
      env: cleanEnv({ ...MOTO_ENV, BC_TRACE_MODULES: trace }),
      nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')],
    });
    expect(second.code).toBe(0);
    expect(readFileSync(trace, 'utf8')).not.toMatch(/@aws-sdk|lz4-napi/);

    // A file whose content changed after its upload is not taken as archived.
    writeFileSync(join(pgwal, names[2]), walSegmentBytes(MiB));
    const changed = await runBin('barman-cloud-wal-archive', args(names[2]), { env: env() });
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/different content/);

    // Every segment ends up archived exactly once and byte-identical.
    for (const n of [names[3], names[4], names[5]]) {
      rmSync(join(pgwal, 'archive_status', `${n}.ready`), { force: true });
      expect((await runBin('barman-cloud-wal-archive', args(n), { env: env() })).code).toBe(0);
    }
    expect((await keys(bucket)).sort()).toEqual(names.map((n) => `pfx/srv/wals/0000000100000000/${n}.lz4`));
    for (const n of [names[0], names[1], names[3], names[5]]) {
      const dest = join(work, `par-dest-${n}`);
      expect((await runBin('barman-cloud-wal-restore', [...s3Args(bucket), n, dest], { env: env() })).code).toBe(0);
      expect(sha(readFileSync(dest))).toBe(sha(contents.get(n)!));
    }
  });
});

describe('restore prefetch', () => {
  it('prefetches the next segments with the learned segment size, serves them from the spool, never caches a miss', async () => {
    const bucket = await newBucket();
    const src = join(work, `prefetch-src-${bucket}`);
    const spool = join(work, `prefetch-spool-${bucket}`);
    // 1 MiB segments across a log-id boundary: ...FFE, ...FFF, then log 1 segment 0.
    const names = ['000000010000000000000FFE', '000000010000000000000FFF', '000000010000000100000000'];
    const data = new Map(names.map((n) => [n, segmentFor(n, MiB)]));
    for (const n of names) {
      const p = writeWalFile(src, n, data.get(n)!);
      expect((await runBin('barman-cloud-wal-archive', ['--zstd', ...s3Args(bucket), p], { env: env() })).code).toBe(0);
    }
    const restore = (n: string, dest: string, extraEnv: Record<string, string> = {}, nodeArgs: string[] = []) =>
      runBin('barman-cloud-wal-restore', ['--parallel', '4', '--spool-dir', spool, ...s3Args(bucket), n, dest], {
        env: cleanEnv({ ...MOTO_ENV, ...extraEnv }), nodeArgs,
      });
    const d0 = join(work, `pf-${names[0]}`);
    expect((await restore(names[0], d0)).code).toBe(0);
    expect(sha(readFileSync(d0))).toBe(sha(data.get(names[0])!));

    const trace = join(work, `pf-trace-${bucket}.txt`);
    writeFileSync(trace, '');
    for (const n of names.slice(1)) {
      const d = join(work, `pf-${n}`);
      const r = await restore(n, d, { BC_TRACE_MODULES: trace }, ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')]);
      expect(r.code).toBe(0);
      expect(sha(readFileSync(d))).toBe(sha(data.get(n)!));
    }
    expect(readFileSync(trace, 'utf8')).not.toMatch(/@aws-sdk|zstd/);

    // The next segment is not archived yet: exit 1; archived later: found.
    const next = '000000010000000100000001';
    const dn = join(work, `pf-${next}`);
    expect((await restore(next, dn)).code).toBe(1);
    const p = writeWalFile(src, next, segmentFor(next, MiB));
    expect((await runBin('barman-cloud-wal-archive', ['--zstd', ...s3Args(bucket), p], { env: env() })).code).toBe(0);
    expect((await restore(next, dn)).code).toBe(0);
    expect(readFileSync(dn)).toEqual(readFileSync(p));
  });

  it('never serves a segment prefetched on another timeline after a switch', async () => {
    const bucket = await newBucket();
    const src = join(work, `tl-src-${bucket}`);
    const spool = join(work, `tl-spool-${bucket}`);
    const tl1 = ['000000010000000000000005', '000000010000000000000006', '000000010000000000000007'];
    const tl2 = '000000020000000000000006';
    for (const n of [...tl1, tl2]) {
      const p = writeWalFile(src, n, segmentFor(n, MiB, n));
      expect((await runBin('barman-cloud-wal-archive', [...s3Args(bucket), p], { env: env() })).code).toBe(0);
    }
    const restore = (n: string, dest: string) =>
      runBin('barman-cloud-wal-restore', ['--parallel', '3', '--spool-dir', spool, ...s3Args(bucket), n, dest], { env: env() });
    expect((await restore(tl1[0], join(work, 'tl-a'))).code).toBe(0);
    // Recovery switches to timeline 2 at segment 6: it asks for 000000020000000000000006.
    const d = join(work, 'tl-b');
    expect((await restore(tl2, d)).code).toBe(0);
    expect(readFileSync(d)).toEqual(readFileSync(join(src, tl2)));
    const spoolFiles = readdirSync(spool, { recursive: true }).map(String);
    expect(spoolFiles.filter((f) => /00000001000000000000000[67]$/.test(f))).toEqual([]);
  });
});

describe('zstd on the WAL hot path', () => {
  it('wal-archive --zstd and its restore load the zstd binding and nothing of the other codecs, the SDKs or its WebAssembly fallback', async () => {
    const dir = join(work, 'filestore-zstd');
    mkdirSync(dir);
    const name = '000000010000000000000007';
    const data = segmentFor(name);
    const path = writeWalFile(join(work, 'zstd-pgwal'), name, data);
    const trace = join(work, 'trace-zstd.txt');
    writeFileSync(trace, '');
    const traced = { env: cleanEnv({ BC_TRACE_MODULES: trace }), nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')] };
    expect((await runBin('barman-cloud-wal-archive', ['--zstd', `file://${dir}`, 'srv', path], traced)).code).toBe(0);
    const dest = join(work, 'zstd-restored');
    expect((await runBin('barman-cloud-wal-restore', [`file://${dir}`, 'srv', name, dest], traced)).code).toBe(0);
    expect(sha(readFileSync(dest))).toBe(sha(data));
    const loaded = readFileSync(trace, 'utf8');
    expect(loaded).toMatch(/@cloudpss\/zstd\/dist\/napi\.js/);
    expect(loaded).not.toMatch(/@cloudpss\/zstd\/(dist\/wasm\.js|prebuilds\/zstd\.js)|lz4-napi|snappy|lzma-native|compressjs|bzip2|@aws-sdk|@azure|@google-cloud/);
  });
});

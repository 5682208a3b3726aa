// Base-backup tar production and extraction (docs/format.md#tar-members, #restore, #compression), checked against Python's
// tarfile (the library barman uses on both sides) and GNU tar.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, truncateSync } from 'node:fs';
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  truncate,
  open as openFile,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { extractArchive, extractArchiveParts, UnsafeArchiveMemberError } from '../../src/backup/extract.ts';
import { BackupManifestBuilder, crc32cHex } from '../../src/backup/manifest.ts';
import { parseBackupManifest } from '../../src/backup/manifest-reader.ts';
import {
  ArchiveSourceError,
  backupLabelMember,
  externalConfigMember,
  produceArchive,
  type ArchivePart,
  type ArchiveResult,
  type PartSink,
  type ProduceArchiveOptions,
} from '../../src/backup/tar-producer.ts';
import { encodeTarHeader, pythonMtime, roundHalfEven, TarType } from '../../src/backup/tar-header.ts';
import { loadCodec, type CodecName } from '../../src/compression/index.ts';
import { floatRepr } from '../../src/catalog/python-literal.ts';

const PY = '/usr/bin/python3';
const HAVE_PY = existsSync(PY);
const IS_ROOT = typeof process.geteuid === 'function' && process.geteuid() === 0;
const KiB = 1024;
const MiB = 1024 * 1024;

let tmp: string;

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], input?: Buffer | string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

// Python helpers (only tarfile from the standard library).
const PY_LIST = `
import sys, tarfile, json, hashlib
out = []
with tarfile.open(fileobj=sys.stdin.buffer, mode=sys.argv[1]) as t:
    for m in t:
        d = dict(name=m.name, type=m.type.decode(), size=m.size, mode=m.mode, uid=m.uid, gid=m.gid,
                 uname=m.uname, gname=m.gname, mtime=m.mtime, linkname=m.linkname, pax=m.pax_headers)
        if m.isreg():
            d['sha256'] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
        out.append(d)
print(json.dumps(out))
`;

// Re-creates an archive part with Python's tarfile (PAX, stream mode) from a member list.
const PY_BUILD = `
import sys, tarfile, json, io
members = json.load(open(sys.argv[1]))
with open(sys.argv[2], 'wb') as f:
    t = tarfile.open(fileobj=f, mode='w|', format=tarfile.PAX_FORMAT, bufsize=65536)
    for m in members:
        if m['kind'] == 'buffer':
            ti = t.tarinfo(m['name'])
            data = m['data'].encode('utf-8')
            ti.size = len(data)
            ti.mode = 0o644
            ti.gid = m['gid']
            t.addfile(ti, io.BytesIO(data))
        else:
            t.add(m['path'], arcname=m['name'], recursive=False)
    t.close()
`;

const PY_EXTRACT = `
import sys, tarfile
for p in sys.argv[2:]:
    with tarfile.open(p, 'r:*') as t:
        t.extractall(sys.argv[1])
`;

interface PyMember {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  linkname: string;
  pax: Record<string, string>;
  sha256?: string;
}

async function pyList(tar: Buffer, mode = 'r|*'): Promise<PyMember[]> {
  const r = await run(PY, ['-c', PY_LIST, mode], tar);
  if (r.code !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout.toString()) as PyMember[];
}

async function decompress(codec: CodecName | null, data: Buffer): Promise<Buffer> {
  if (!codec) return data;
  return (await loadCodec(codec)).decompress(data);
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Sink writing each part into `dir`. */
function fileSink(dir: string): PartSink {
  return async (part: ArchivePart) => {
    await pipeline(part.stream, createWriteStream(join(dir, part.name)));
  };
}

/** Sink that only counts. */
const discardSink: PartSink = async (part) => {
  for await (const chunk of part.stream) void chunk;
};

/** Sink keeping every part's bytes in `chunks`, in order. */
function memorySink(chunks: Buffer[]): PartSink {
  return async (part) => {
    for await (const chunk of part.stream as AsyncIterable<Buffer>) chunks.push(chunk);
  };
}

/** `root` archived as the data tar of a PostgreSQL 15 cluster, in one part unless `more` says otherwise. */
function dataTar(root: string, more: Partial<ProduceArchiveOptions> & Pick<ProduceArchiveOptions, 'onPart'>): Promise<ArchiveResult> {
  return produceArchive({ root, kind: 'pgdata', name: 'data', maxArchiveSize: 1024 * MiB, exclusion: { majorVersion: '15' }, ...more });
}

/** A backup_manifest member for the archive, its WAL range 0/2000028–0/2000100 on timeline 1. */
function withManifest(): Pick<ProduceArchiveOptions, 'manifest' | 'manifestMember'> {
  return {
    manifest: new BackupManifestBuilder(),
    manifestMember: { walRanges: () => [{ timeline: 1, startLsn: '0/2000028', endLsn: '0/2000100' }], uid: 0, gid: 0 },
  };
}

// ---- the synthetic cluster -------------------------------------------------------------------------

let pgdata: string;
let tbs: string;
let confDir: string;
const content = new Map<string, Buffer>();

async function put(rel: string, data: Buffer | string, root = pgdata): Promise<void> {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const p = join(root, rel);
  await mkdir(join(p, '..'), { recursive: true });
  await writeFile(p, buf);
  content.set(`${root === pgdata ? '' : `${root}:`}${rel}`, buf);
}

const LONG_NAME = `base/16384/${'x'.repeat(120)}`;
const UNICODE_NAME = 'base/1/ü-名前';
const LABEL = 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: Barman backup cloud 20240101T000000\n';

async function buildCluster(): Promise<void> {
  pgdata = join(tmp, 'pgdata');
  tbs = join(tmp, 'tbs');
  confDir = join(tmp, 'conf');
  await mkdir(pgdata, { recursive: true, mode: 0o700 });
  await put('PG_VERSION', '15\n');
  await put('backup_label.old', 'old label\n');
  await put('current_logfiles', 'stderr log/postgresql.log\n');
  await put('current_logfiles.tmp', 'x');
  await put('pg_hba.conf', 'local all all trust\n');
  await put('postgresql.auto.conf', '# auto\n');
  await put('postgresql.auto.conf.tmp', 'tmp');
  await put('postgresql.conf', "port = 5432\n");
  await chmod(join(pgdata, 'postgresql.conf'), 0o600);
  await put('postmaster.opts', 'opts');
  await put('postmaster.pid', '1234\n');
  await put('recovery.conf', 'old');
  await put('recovery.signal', '');
  await put('standby.signal', '');
  await symlink('nowhere', join(pgdata, 'dangling'));
  await symlink('postgresql.conf', join(pgdata, 'linked.conf'));

  await put('base/1/1234', randomBytes(100 * KiB));
  await put('base/1/1259', randomBytes(64 * KiB));
  await put('base/1/hl_a', randomBytes(10 * KiB));
  await link(join(pgdata, 'base/1/hl_a'), join(pgdata, 'base/1/hl_b'));
  await put('base/1/pg_internal.init', 'cache');
  await put('base/1/t3_1234', randomBytes(KiB));
  await put('base/1/t3_1234_fsm', randomBytes(KiB));
  await put(UNICODE_NAME, 'unicode name\n');
  await chmod(join(pgdata, 'base/1'), 0o750);
  await put('base/16384/big', randomBytes(3 * MiB));
  for (let i = 0; i < 8; i++) await put(`base/16384/f${i}`, randomBytes(512 * KiB));
  await put(LONG_NAME, 'long name\n');
  await put('base/pgsql_tmp/pgsql_tmp123.0', randomBytes(KiB));
  await put('global/1262', randomBytes(8 * KiB));
  await put('global/pg_control', randomBytes(8 * KiB));
  await put('inside_tbs/PG_15_202209061/1/2', 'inside');
  await put('log/postgresql.log', 'log line\n');
  await put('pg_dynshmem/x', 'x');
  await put('pg_notify/0000', 'x');
  await put('pg_replslot/slot1/state', 'state');
  await put('pg_serial/0000', 'x');
  await mkdir(join(pgdata, 'pg_snapshots'));
  await put('pg_stat/pgstat.stat', 'stats');
  await put('pg_stat_tmp/global.stat', 'x');
  await put('pg_subtrans/0000', 'x');
  await put('pg_wal/000000010000000000000001', randomBytes(256 * KiB));
  await put('pg_wal/archive_status/000000010000000000000001.ready', '');
  await put('pg_xact/0000', randomBytes(8 * KiB));
  await mkdir(join(pgdata, 'pg_tblspc'));

  await mkdir(tbs);
  await put('PG_15_202209061/16385/16386', randomBytes(100 * KiB), tbs);
  await put('PG_15_202209061/16385/t4_5', 'temp', tbs);
  await put('PG_15_202209061/pgsql_tmp/pgsql_tmp1.0', 'temp', tbs);
  await put('PG_16_202307071/1/2', 'other major', tbs);
  await put('README', 'stray', tbs);
  await symlink(tbs, join(pgdata, 'pg_tblspc/16384'));
  await symlink(join(tmp, 'missing-tbs'), join(pgdata, 'pg_tblspc/16390'));
  await symlink(join(pgdata, 'inside_tbs'), join(pgdata, 'pg_tblspc/16391'));

  await mkdir(confDir);
  await writeFile(join(confDir, 'pg_ident.conf'), '# ident\n');

  // fixed, fractional mtimes, deepest first so that directories keep theirs
  await setTimes(pgdata, 1_700_000_000.123456);
  await setTimes(tbs, 1_700_000_500.654321);
}

async function setTimes(dir: string, base: number): Promise<void> {
  let i = 0;
  const visit = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p);
      else if (!e.isSymbolicLink()) await utimes(p, base + i, base + i++);
    }
    await utimes(d, base + 1000 + i, base + 1000 + i++);
  };
  await visit(dir);
}

const EXPECTED_DATA_MEMBERS = [
  '.',
  './PG_VERSION',
  './backup_label.old',
  './current_logfiles',
  './dangling',
  './linked.conf',
  './pg_hba.conf',
  './postgresql.auto.conf',
  './postgresql.conf',
  './recovery.signal',
  'base',
  'base/1',
  'base/1/1234',
  'base/1/1259',
  'base/1/hl_a',
  'base/1/hl_b',
  UNICODE_NAME,
  'base/16384',
  'base/16384/big',
  ...Array.from({ length: 8 }, (_, i) => `base/16384/f${i}`),
  LONG_NAME,
  'global',
  'global/1262',
  'log',
  'pg_dynshmem',
  'pg_notify',
  'pg_replslot',
  'pg_serial',
  'pg_snapshots',
  'pg_stat',
  'pg_stat/pgstat.stat',
  'pg_stat_tmp',
  'pg_subtrans',
  'pg_tblspc',
  'pg_wal',
  'pg_xact',
  'pg_xact/0000',
  'global/pg_control',
  'pg_ident.conf',
  'backup_label',
];

const EXPECTED_TBS_MEMBERS = ['PG_15_202209061', 'PG_15_202209061/16385', 'PG_15_202209061/16385/16386'];

const EXCLUSION = {
  majorVersion: '15',
  get pgdata() {
    return pgdata;
  },
  get tablespaces() {
    return [
      { oid: 16384, location: tbs, name: 'tbs' },
      { oid: 16390, location: join(tmp, 'missing-tbs'), name: 'missing' },
      { oid: 16391, location: join(pgdata, 'inside_tbs'), name: 'inside' },
    ];
  },
};

async function produceData(codec: CodecName | null, outDir: string, maxArchiveSize = 1 * MiB): Promise<ArchiveResult> {
  await mkdir(outDir, { recursive: true });
  const pgdataGid = (await stat(pgdata)).gid;
  return produceArchive({
    root: pgdata,
    kind: 'pgdata',
    name: 'data',
    codec,
    maxArchiveSize,
    exclusion: { majorVersion: EXCLUSION.majorVersion, pgdata: EXCLUSION.pgdata, tablespaces: EXCLUSION.tablespaces },
    extraMembers: [externalConfigMember(join(confDir, 'pg_ident.conf'), 'ident_file', true), externalConfigMember(join(confDir, 'absent.conf'), 'ident_file', true)],
    lateMembers: () => [backupLabelMember(LABEL, pgdataGid)],
    onPart: fileSink(outDir),
  });
}

function sourceOf(name: string): string {
  if (name === 'pg_ident.conf') return join(confDir, 'pg_ident.conf');
  return join(pgdata, name);
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'backup-tar-'));
  await chmod(tmp, 0o755);
  await buildCluster();
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// ---- header encoding ---------------------------------------------------------------------------------

describe('header encoding helpers', () => {
  it('python float repr and round-half-even', () => {
    expect(floatRepr(1700000000)).toBe('1700000000.0');
    expect(floatRepr(1700000000.123456)).toBe('1700000000.123456');
    expect(floatRepr(0)).toBe('0.0');
    expect(floatRepr(1e16)).toBe('1e+16');
    expect(floatRepr(1.5e-5)).toBe('1.5e-05');
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(3.5)).toBe(4);
    expect(roundHalfEven(3.4)).toBe(3);
  });

  it.skipIf(!HAVE_PY)('encodes exactly the blocks Python’s tarfile writes', async () => {
    const headers = [
      { name: 'a', type: TarType.FILE, mode: 0o100644, uid: 0, gid: 0, size: 0, mtime: 0 },
      { name: 'dir', type: TarType.DIRECTORY, mode: 0o40755, uid: 1000, gid: 1000, size: 0, mtime: 1700000000.5, mtimeIsFloat: true, uname: 'u', gname: 'g' },
      { name: 'd'.repeat(150), type: TarType.FILE, mode: 0o600, uid: 3000000, gid: 5, size: 0, mtime: 1700000001.25, mtimeIsFloat: true, uname: 'é' },
      { name: 'l', type: TarType.SYMLINK, mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 12, linkname: 'ü'.repeat(60) },
      { name: 'c', type: TarType.CHAR, mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 12, devmajor: 1, devminor: 3 },
    ];
    const script = `
import sys, tarfile, json
for h in json.load(sys.stdin):
    ti = tarfile.TarInfo(h['name'])
    for k in ('mode','uid','gid','size','mtime','uname','gname','linkname','devmajor','devminor'):
        if k in h: setattr(ti, k, h[k])
    ti.type = h['type'].encode()
    sys.stdout.buffer.write(ti.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape'))
`;
    const py = headers.map((h) => ({ ...h, mtime: h.mtimeIsFloat ? h.mtime : Math.trunc(h.mtime) }));
    const r = await run(PY, ['-c', script], JSON.stringify(py));
    expect(r.stderr).toBe('');
    const ours = Buffer.concat(headers.map((h) => encodeTarHeader(h)));
    expect(ours.equals(r.stdout)).toBe(true);
  });
});

// ---- PGDATA archives ---------------------------------------------------------------------------------

const CODECS: (CodecName | null)[] = [null, 'gzip', 'bzip2', 'lz4'];
const results = new Map<string, { dir: string; result: ArchiveResult }>();

describe.each(CODECS)('PGDATA archive, codec %s', (codec) => {
  const key = codec ?? 'none';
  const sfx = codec ? { gzip: '.gz', bzip2: '.bz2', lz4: '.lz4', xz: '.xz', zstd: '.zst', snappy: '.snappy' }[codec] : '';

  it('produces several parts named data.tar…, data_0001.tar…', async () => {
    const dir = join(tmp, `out-${key}`);
    const result = await produceData(codec, dir);
    results.set(key, { dir, result });
    expect(result.parts.length).toBeGreaterThanOrEqual(2);
    expect(result.parts.map((p) => p.name)).toEqual(
      result.parts.map((_, i) => (i === 0 ? `data.tar${sfx}` : `data_${String(i).padStart(4, '0')}.tar${sfx}`)),
    );
    expect((await readdir(dir)).sort()).toEqual(result.parts.map((p) => p.name).sort());
    for (const [i, p] of result.parts.entries()) {
      expect((await stat(join(dir, p.name))).size).toBe(p.bytes);
      if (i < result.parts.length - 1) expect(p.bytes).toBeGreaterThan(1 * MiB);
      expect(p.seconds).toBeGreaterThanOrEqual(0);
      expect(p.endTime.getTime()).toBeGreaterThanOrEqual(p.startTime.getTime());
    }
    expect(result.members).toBe(EXPECTED_DATA_MEMBERS.length);
  });

  it.skipIf(!HAVE_PY)('Python tarfile and GNU tar read every part on its own; names and order as barman', async () => {
    const { dir, result } = results.get(key)!;
    const names: string[] = [];
    const byName = new Map<string, PyMember>();
    for (const p of result.parts) {
      const raw = await readFile(join(dir, p.name));
      const tar = await decompress(codec, raw);
      // each part: a complete tar, ending with two zero blocks padded to a 10240-byte record
      expect(tar.length % 10240).toBe(0);
      expect(tar.subarray(tar.length - 1024).every((b) => b === 0)).toBe(true);
      expect(p.tarBytes).toBe(tar.length);
      // Python reads the compressed stream itself where it can (r|* : none, gz, bz2)
      const members = codec === 'lz4' ? await pyList(tar, 'r|') : await pyList(raw, 'r|*');
      for (const m of members) {
        names.push(m.name);
        byName.set(m.name, m);
      }
      const gnu = await run('tar', ['-tvf', '-'], tar);
      expect(gnu.stderr).toBe('');
      expect(gnu.code).toBe(0);
      const gnuNames = await run('tar', ['-tf', '-'], tar);
      expect(gnuNames.stdout.toString().trimEnd().split('\n')).toEqual(
        members.map((m) => (m.type === '5' ? (m.name === '.' ? './' : `${m.name}/`) : m.name)),
      );
    }
    expect(names).toEqual(EXPECTED_DATA_MEMBERS);

    // metadata from lstat, PAX mtime records
    const root = byName.get('.')!;
    expect(root.type).toBe('5');
    expect(root.mode).toBe(0o700);
    const conf = byName.get('./postgresql.conf')!;
    expect(conf.mode).toBe(0o600);
    expect(conf.uname).toBe(IS_ROOT ? 'root' : conf.uname);
    const confStat = await lstat(join(pgdata, 'postgresql.conf'), { bigint: true });
    expect(conf.pax.mtime).toBe(floatRepr(pythonMtime(confStat.mtimeNs)));
    expect(Math.abs(conf.mtime - Number(confStat.mtimeNs) / 1e9)).toBeLessThan(1e-6);
    expect(byName.get('base/1')!.mode).toBe(0o750);
    expect(byName.get('./dangling')).toMatchObject({ type: '2', linkname: 'nowhere', size: 0 });
    expect(byName.get('./linked.conf')).toMatchObject({ type: '2', linkname: 'postgresql.conf' });
    expect(byName.get('base/1/hl_b')).toMatchObject({ type: '1', linkname: 'base/1/hl_a' });
    expect(byName.get(LONG_NAME)!.pax.path).toBe(LONG_NAME);
    expect(byName.get(UNICODE_NAME)!.pax.path).toBe(UNICODE_NAME);
    expect(byName.get('pg_wal')!.type).toBe('5');
    for (const [name, m] of byName) {
      if (m.type !== '0') continue;
      const src = content.get(name.replace(/^\.\//, '')) ?? (name === 'pg_ident.conf' ? await readFile(sourceOf(name)) : undefined);
      if (name === 'backup_label') continue;
      expect(src, name).toBeDefined();
      expect(m.sha256, name).toBe(sha256(src!));
    }
    // backup_label: built from scratch (docs/format.md#tar-members step 5)
    const label = byName.get('backup_label')!;
    expect(label).toMatchObject({ type: '0', mode: 0o644, uid: 0, gid: (await stat(pgdata)).gid, mtime: 0, uname: '', gname: '', pax: {} });
    expect(label.sha256).toBe(sha256(Buffer.from(LABEL)));
    // backup_label and pg_control are the last members of the last part
    const last = await pyList(await decompress(codec, await readFile(join(dir, result.parts.at(-1)!.name))), 'r|');
    expect(last.slice(-3).map((m) => m.name)).toEqual(['global/pg_control', 'pg_ident.conf', 'backup_label']);
  });

  it('our extractor reproduces the included tree (content, modes, mtimes, symlinks, hard links)', async () => {
    const { dir, result } = results.get(key)!;
    const dest = join(tmp, `restore-${key}`);
    const stats = await extractArchiveParts(
      result.parts.map((p) => () => Promise.resolve(createReadStream(join(dir, p.name)) as Readable)),
      dest,
      { codec },
    );
    expect(stats.members).toBe(EXPECTED_DATA_MEMBERS.length);
    await compareTree(dest, { checkDirTimes: true });
  });
});

async function compareTree(dest: string, opts: { checkDirTimes: boolean }): Promise<void> {
  for (const name of EXPECTED_DATA_MEMBERS) {
    const target = join(dest, name);
    const restored = await lstat(target, { bigint: true });
    if (name === 'backup_label') {
      expect(await readFile(target, 'utf8')).toBe(LABEL);
      expect(Number(restored.mode & 0o7777n)).toBe(0o644);
      expect(restored.mtimeNs).toBe(0n);
      continue;
    }
    const src = await lstat(sourceOf(name), { bigint: true });
    expect(Number(restored.mode), name).toBe(Number(src.mode));
    if (src.isSymbolicLink()) {
      expect(await readlink(target)).toBe(await readlink(sourceOf(name)));
      continue;
    }
    if (src.isFile()) {
      expect((await readFile(target)).equals(await readFile(sourceOf(name))), name).toBe(true);
    }
    if (src.isFile() || opts.checkDirTimes) {
      const diff = restored.mtimeNs - src.mtimeNs;
      // The PAX mtime is a double (~240 ns apart at today's dates) and libuv truncates the time it
      // sets to whole microseconds: up to ~1.12 µs off (a 1 µs bound failed once in CI, 1035 ns).
      expect(diff < 0n ? -diff : diff, `mtime of ${name}`).toBeLessThan(1250n);
    }
    if (IS_ROOT) {
      expect(restored.uid).toBe(src.uid);
      expect(restored.gid).toBe(src.gid);
    }
  }
  const hlA = await stat(join(dest, 'base/1/hl_a'));
  const hlB = await stat(join(dest, 'base/1/hl_b'));
  expect(hlA.ino).toBe(hlB.ino);
  // excluded content is absent, the "contents of" directories exist and are empty
  for (const gone of [
    'postmaster.pid',
    'postmaster.opts',
    'standby.signal',
    'recovery.conf',
    'current_logfiles.tmp',
    'postgresql.auto.conf.tmp',
    'base/1/t3_1234',
    'base/1/t3_1234_fsm',
    'base/1/pg_internal.init',
    'base/pgsql_tmp',
    'pg_wal/archive_status',
    'pg_wal/000000010000000000000001',
    'pg_tblspc/16384',
    'pg_tblspc/16390',
    'pg_tblspc/16391',
    'inside_tbs',
    'log/postgresql.log',
  ]) {
    expect(await lstat(join(dest, gone)).then(() => true, () => false), gone).toBe(false);
  }
  for (const empty of ['pg_wal', 'pg_replslot', 'pg_notify', 'pg_dynshmem', 'pg_serial', 'pg_stat_tmp', 'pg_subtrans', 'pg_snapshots', 'log', 'pg_tblspc']) {
    expect(await readdir(join(dest, empty)), empty).toEqual([]);
  }
}

describe.skipIf(!HAVE_PY)('fidelity to Python tarfile', () => {
  it('uncompressed parts are byte-identical to what Python’s tarfile writes for the same members', async () => {
    const { dir, result } = results.get('none') ?? { dir: join(tmp, 'out-none2'), result: await produceData(null, join(tmp, 'out-none2')) };
    const gid = (await stat(pgdata)).gid;
    for (const p of result.parts) {
      const ours = await readFile(join(dir, p.name));
      const members = (await pyList(ours, 'r|')).map((m) =>
        m.name === 'backup_label' ? { kind: 'buffer', name: m.name, data: LABEL, gid } : { kind: 'path', name: m.name, path: sourceOf(m.name) },
      );
      const spec = join(tmp, `py-${p.name}.json`);
      await writeFile(spec, JSON.stringify(members));
      const pyOut = join(tmp, `py-${p.name}`);
      const r = await run(PY, ['-c', PY_BUILD, spec, pyOut]);
      expect(r.stderr).toBe('');
      const theirs = await readFile(pyOut);
      expect(ours.length).toBe(theirs.length);
      expect(ours.equals(theirs)).toBe(true);
    }
  });

  it('Python extractall of our parts gives the same files as our extractor', async () => {
    const { dir, result } = results.get('gzip')!;
    const dest = join(tmp, 'restore-python');
    await mkdir(dest);
    const r = await run(PY, ['-c', PY_EXTRACT, dest, ...result.parts.map((p) => join(dir, p.name))]);
    expect(r.code, r.stderr).toBe(0);
    await compareTree(dest, { checkDirTimes: false });
  });

  it('our extractor reads an archive written by Python’s tarfile (PAX, w|gz)', async () => {
    const members = EXPECTED_DATA_MEMBERS.filter((n) => n !== 'backup_label').map((n) => ({ kind: 'path', name: n, path: sourceOf(n) }));
    const spec = join(tmp, 'py-all.json');
    await writeFile(spec, JSON.stringify(members));
    const script = PY_BUILD.replace("mode='w|'", "mode='w|gz'");
    const out = join(tmp, 'py-all.tar.gz');
    const r = await run(PY, ['-c', script, spec, out]);
    expect(r.code, r.stderr).toBe(0);
    const dest = join(tmp, 'restore-from-python');
    const stats = await extractArchive(createReadStream(out), dest, { codec: 'gzip' });
    expect(stats.members).toBe(members.length);
    for (const n of ['base/16384/big', UNICODE_NAME, LONG_NAME, './postgresql.conf']) {
      expect((await readFile(join(dest, n))).equals(await readFile(sourceOf(n)))).toBe(true);
      const diff = (await stat(join(dest, n), { bigint: true })).mtimeNs - (await stat(sourceOf(n), { bigint: true })).mtimeNs;
      expect(diff < 0n ? -diff : diff).toBeLessThan(1000n);
    }
  });
});

describe('tablespace archive', () => {
  it('stores only the PG_<major>_* tree, names relative to the location', async () => {
    const dir = join(tmp, 'out-tbs');
    await mkdir(dir);
    const result = await produceArchive({
      root: tbs,
      kind: 'tablespace',
      name: '16384',
      codec: 'gzip',
      maxArchiveSize: 1 * MiB,
      exclusion: { majorVersion: '15' },
      onPart: fileSink(dir),
    });
    expect(result.parts.map((p) => p.name)).toEqual(['16384.tar.gz']);
    const raw = await readFile(join(dir, '16384.tar.gz'));
    if (HAVE_PY) expect((await pyList(raw, 'r|gz')).map((m) => m.name)).toEqual(EXPECTED_TBS_MEMBERS);
    const gnu = await run('tar', ['-tzf', join(dir, '16384.tar.gz')]);
    expect(gnu.stdout.toString().trimEnd().split('\n')).toEqual(['PG_15_202209061/', 'PG_15_202209061/16385/', 'PG_15_202209061/16385/16386']);
    const dest = join(tmp, 'restore-tbs');
    await extractArchive(createReadStream(join(dir, '16384.tar.gz')), dest, { codec: 'gzip' });
    expect(await readdir(dest)).toEqual(['PG_15_202209061']);
    expect((await readFile(join(dest, 'PG_15_202209061/16385/16386'))).equals(content.get(`${tbs}:PG_15_202209061/16385/16386`)!)).toBe(true);
  });
});

// ---- files changing under the walk ------------------------------------------------------------------

describe('backup_manifest member', () => {
  it("replaces a stale backup_manifest found in PGDATA (a restored cluster's) and never lists itself", async () => {
    const root = join(tmp, 'stale-manifest');
    await mkdir(join(root, 'global'), { recursive: true });
    await writeFile(join(root, 'global/pg_control'), 'control');
    await writeFile(join(root, 'PG_VERSION'), '15\n');
    await writeFile(join(root, 'backup_manifest'), 'the manifest of the backup this cluster was restored from');
    const chunks: Buffer[] = [];
    await dataTar(root, { onPart: memorySink(chunks), ...withManifest() });
    const dest = join(tmp, 'restore-stale-manifest');
    await extractArchive(Readable.from([Buffer.concat(chunks)]), dest);
    // the later member wins on extraction: ours, which lists every file but itself
    const manifest = parseBackupManifest(await readFile(join(dest, 'backup_manifest')));
    expect([...manifest.files.keys()].sort()).toEqual(['PG_VERSION', 'global/pg_control']);
  });

  it('writes a manifest of two pieces (1,500 files, ~370 KB) as one member of the size its header says', async () => {
    const root = join(tmp, 'many-files');
    await mkdir(join(root, 'global'), { recursive: true });
    await mkdir(join(root, 'base', '16384'), { recursive: true });
    await writeFile(join(root, 'global/pg_control'), 'control');
    const names: string[] = [];
    for (let i = 0; i < 1500; i++) {
      const name = `base/16384/${String(i).padStart(6, '0')}_${'r'.repeat(100)}`;
      names.push(name);
      await writeFile(join(root, name), String(i));
    }
    const chunks: Buffer[] = [];
    await dataTar(root, { onPart: memorySink(chunks), ...withManifest() });
    const dest = join(tmp, 'restore-many-files');
    // the extractor refuses a member whose data does not end where its header says (docs/format.md#tar-end)
    await extractArchive(Readable.from([Buffer.concat(chunks)]), dest);
    const raw = await readFile(join(dest, 'backup_manifest'));
    expect(raw.length).toBeGreaterThan(256 * 1024);
    const manifest = parseBackupManifest(raw);
    expect(manifest.files.size).toBe(1501);
    expect([...manifest.files.keys()].filter((k) => k.startsWith('base/')).sort()).toEqual(names);
    expect(manifest.files.get(names[1499]!)).toMatchObject({ size: 4, checksum: crc32cHex(crc32c(Buffer.from('1499'))) });
  });
});

describe('changing files', () => {
  it('a file that shrinks while read is zero-padded to its header size (and so recorded in backup_manifest); vanished entries are skipped', async () => {
    const root = join(tmp, 'shrink');
    await mkdir(join(root, 'zz_dir'), { recursive: true });
    const original = randomBytes(8 * MiB);
    await writeFile(join(root, 'big'), original);
    await writeFile(join(root, 'zz_vanish'), 'bye');
    await writeFile(join(root, 'zz_dir/f'), 'bye');
    await mkdir(join(root, 'global'));
    await writeFile(join(root, 'global/pg_control'), 'control');
    const out = join(tmp, 'out-shrink');
    await mkdir(out);
    let truncated = false;
    const sink: PartSink = async (part) => {
      const ws = createWriteStream(join(out, part.name));
      let seen = 0;
      for await (const chunk of part.stream as AsyncIterable<Buffer>) {
        seen += chunk.length;
        if (!truncated && seen > 1 * MiB) {
          // the producer is blocked inside 'big' by back-pressure: change the tree now
          truncated = true;
          truncateSync(join(root, 'big'), 4 * MiB);
          await rm(join(root, 'zz_vanish'));
          await rm(join(root, 'zz_dir'), { recursive: true });
        }
        if (!ws.write(chunk)) await new Promise<void>((r) => ws.once('drain', () => r()));
      }
      await new Promise<void>((resolve, reject) => ws.end((err?: Error | null) => (err ? reject(err) : resolve())));
    };
    const result = await dataTar(root, { onPart: sink, ...withManifest() });
    expect(truncated).toBe(true);
    expect(result.parts).toHaveLength(1);
    const tar = await readFile(join(out, 'data.tar'));
    const expected = Buffer.concat([original.subarray(0, 4 * MiB), Buffer.alloc(4 * MiB)]);
    if (HAVE_PY) {
      const members = await pyList(tar, 'r|');
      expect(members.map((m) => m.name)).toEqual(['.', './big', 'global', 'global/pg_control', 'backup_manifest']);
      expect(members[1]!.size).toBe(8 * MiB);
      expect(members[1]!.sha256).toBe(sha256(expected));
    }
    expect(result.parts[0]!.sha256).toBe(sha256(tar));
    const dest = join(tmp, 'restore-shrink');
    await extractArchive(Readable.from([tar]), dest);
    expect((await readFile(join(dest, 'big'))).equals(expected)).toBe(true);
    expect(existsSync(join(dest, 'zz_vanish'))).toBe(false);
    // The manifest records the bytes stored (zero padding included), not the file's first size.
    const crcHex = (b: Buffer) => {
      const out = Buffer.alloc(4);
      out.writeUInt32LE(crc32c(b) >>> 0);
      return out.toString('hex');
    };
    const manifest = parseBackupManifest(await readFile(join(dest, 'backup_manifest')));
    expect([...manifest.files.keys()]).toEqual(['big', 'global/pg_control']);
    expect(manifest.files.get('big')).toMatchObject({ size: 8 * MiB, algorithm: 'CRC32C', checksum: crcHex(expected) });
    expect(manifest.files.get('global/pg_control')).toMatchObject({ size: 7, checksum: crcHex(Buffer.from('control')) });
    expect(manifest.walRanges).toEqual([{ timeline: 1, startLsn: '0/2000028', endLsn: '0/2000100' }]);
  });

  it('a file that grows while read is stored with the size lstat reported', async () => {
    const root = join(tmp, 'grow');
    await mkdir(join(root, 'global'), { recursive: true });
    await writeFile(join(root, 'global/pg_control'), 'control');
    const original = randomBytes(4 * MiB);
    await writeFile(join(root, 'big'), original);
    let grown = false;
    const chunks: Buffer[] = [];
    await dataTar(root, {
      onPart: async (part) => {
        let seen = 0;
        for await (const chunk of part.stream as AsyncIterable<Buffer>) {
          seen += chunk.length;
          chunks.push(chunk);
          if (!grown && seen > MiB) {
            grown = true;
            await writeFile(join(root, 'big'), randomBytes(MiB), { flag: 'a' });
          }
        }
      },
    });
    expect(grown).toBe(true);
    const dest = join(tmp, 'restore-grow');
    await extractArchive(Readable.from([Buffer.concat(chunks)]), dest);
    expect((await readFile(join(dest, 'big'))).equals(original)).toBe(true);
  });

  it('an unreadable file fails the backup with a clear error', async () => {
    // As root every file is readable: the check then runs with the effective uid of 'nobody'
    // (seteuid applies to the whole process, libuv threads included) and is restored afterwards.
    const root = join(tmp, 'unreadable');
    await mkdir(join(root, 'base'), { recursive: true });
    await writeFile(join(root, 'PG_VERSION'), '15\n');
    await writeFile(join(root, 'base/secret'), 'secret');
    await chmod(join(root, 'base/secret'), 0o000);
    await chmod(root, 0o755);
    await chmod(join(root, 'base'), 0o755);
    const dropped = IS_ROOT && typeof process.seteuid === 'function';
    if (dropped) process.seteuid!(65534);
    let error: unknown;
    try {
      await dataTar(root, { maxArchiveSize: MiB, pgControl: false, onPart: discardSink });
    } catch (err) {
      error = err;
    } finally {
      if (dropped) process.seteuid!(0);
    }
    expect(error).toBeInstanceOf(ArchiveSourceError);
    expect((error as Error).message).toContain(join(root, 'base/secret'));
    expect((error as Error).message).toMatch(/EACCES/);
  });

  it('a missing pg_control (not optional) fails the backup', async () => {
    const root = join(tmp, 'nocontrol');
    await mkdir(root);
    await writeFile(join(root, 'PG_VERSION'), '15\n');
    await expect(
      dataTar(root, { maxArchiveSize: MiB, onPart: discardSink }),
    ).rejects.toThrow(/pg_control/);
  });
});

// ---- sinks, errors, abort ---------------------------------------------------------------------------

describe('a file replaced between its lstat and its open', () => {
  // Whoever can write PGDATA switches one file, as fast as it can, between a regular file and a
  // symbolic link to a file outside it, or a FIFO (docs/format.md#backup-open). The window is the
  // producer's own (lstat, then open): a real race, so many archives are made; before the open
  // refused links and FIFOs, about 1 in 40 archives held the outside file's bytes, and a FIFO held
  // the backup for ever.
  for (const kind of ['symlink', 'fifo'] as const) {
    it(`${kind}: never followed nor waited on, over 200 archives`, async () => {
      const base = await mkdtemp(join(tmp, `replaced-${kind}-`));
      const root = join(base, 'pgdata');
      await mkdir(join(root, 'global'), { recursive: true });
      await mkdir(join(root, 'base/1'), { recursive: true });
      await writeFile(join(root, 'global/pg_control'), 'control');
      for (let i = 0; i < 40; i++) await writeFile(join(root, 'base/1', `f${i}`), 'innocent');
      await writeFile(join(base, 'secret'), 'SECRET outside the data directory');
      const d = join(root, 'base/1');
      const swapper = spawn('python3', ['-c', `
import os
d, secret, kind = ${JSON.stringify(d)}, ${JSON.stringify(join(base, 'secret'))}, ${JSON.stringify(kind)}
while True:
    try:
        os.symlink(secret, d + '/x.tmp') if kind == 'symlink' else os.mkfifo(d + '/x.tmp')
    except FileExistsError:
        pass
    os.rename(d + '/x.tmp', d + '/f20')
    with open(d + '/r.tmp', 'w') as f:
        f.write('innocent')
    os.rename(d + '/r.tmp', d + '/f20')
`], { stdio: 'ignore' });
      let leaked = 0;
      try {
        for (let run = 0; run < 200; run++) {
          const chunks: Buffer[] = [];
          const made = dataTar(root, { onPart: memorySink(chunks) })
            .then(() => 'done', (e: Error) => (/while being read|EINVAL/.test(e.message) ? 'refused' : Promise.reject(e)));
          const outcome = await Promise.race([made, new Promise((r) => setTimeout(() => r('still waiting'), 10_000))]);
          expect(outcome, `archive ${run}`).not.toBe('still waiting');
          if (Buffer.concat(chunks).includes('SECRET')) leaked++;
        }
      } finally {
        swapper.kill();
      }
      expect(leaked, 'archives holding bytes of a file outside the data directory').toBe(0);
    }, 180_000);
  }
});

describe('part sinks', () => {
  it('a failing sink fails the archive', async () => {
    const boom = new Error('upload refused');
    const sink: PartSink = async (part) => {
      let n = 0;
      for await (const chunk of part.stream as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > 256 * KiB) throw boom;
      }
    };
    await expect(
      produceArchive({ root: pgdata, kind: 'pgdata', name: 'data', maxArchiveSize: 1024 * MiB, exclusion: EXCLUSION, onPart: sink }),
    ).rejects.toBe(boom);
  });

  it('a sink that returns without reading is an error, not a hang', async () => {
    await expect(
      produceArchive({ root: pgdata, kind: 'pgdata', name: 'data', maxArchiveSize: 1024 * MiB, exclusion: EXCLUSION, onPart: async () => undefined }),
    ).rejects.toThrow(/returned before consuming/);
  });

  it('abort signal stops the production', async () => {
    const ac = new AbortController();
    const sink: PartSink = async (part) => {
      let n = 0;
      for await (const chunk of part.stream as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > 256 * KiB) ac.abort(new Error('stop now'));
      }
    };
    await expect(
      produceArchive({ root: pgdata, kind: 'pgdata', name: 'data', maxArchiveSize: 1024 * MiB, exclusion: EXCLUSION, onPart: sink, signal: ac.signal }),
    ).rejects.toThrow(/stop now/);
  });

  it('partConcurrency bounds the sinks running at once (1 by default, 2 overlaps) and still yields complete parts', async () => {
    const zstd = await loadCodec('zstd');
    for (const partConcurrency of [undefined, 2]) {
      const dir = join(tmp, `out-concurrent-${partConcurrency ?? 1}`);
      await mkdir(dir);
      let running = 0;
      let peak = 0;
      const result = await produceArchive({
        root: pgdata,
        kind: 'pgdata',
        name: 'data',
        codec: 'zstd',
        maxArchiveSize: 512 * KiB,
        ...(partConcurrency ? { partConcurrency } : {}),
        exclusion: EXCLUSION,
        onPart: async (part) => {
          peak = Math.max(peak, ++running);
          await pipeline(part.stream, createWriteStream(join(dir, part.name)));
          await new Promise((r) => setTimeout(r, 100)); // a slow completion, as an upload's
          running--;
        },
      });
      expect(result.parts.length).toBeGreaterThanOrEqual(3);
      expect(peak).toBe(partConcurrency ?? 1);
      const names: string[] = [];
      for (const p of result.parts) {
        expect(p.name).toMatch(/^data(_\d{4})?\.tar\.zst$/);
        const gnu = await run('tar', ['-tf', '-'], await zstd.decompress(await readFile(join(dir, p.name))));
        expect(gnu.code).toBe(0);
        names.push(...gnu.stdout.toString().trimEnd().split('\n'));
      }
      expect(names.length).toBe(EXPECTED_DATA_MEMBERS.length - 2); // no pg_ident.conf / backup_label here
    }
  });
});

// ---- extraction safety ----------------------------------------------------------------------------

function rawTar(members: { name: string; type?: (typeof TarType)[keyof typeof TarType]; data?: string; linkname?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.data ?? '');
    blocks.push(
      encodeTarHeader({ name: m.name, type: m.type ?? TarType.FILE, mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 1, linkname: m.linkname }),
    );
    blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(10240));
  return Buffer.concat(blocks);
}

describe('extraction safety', () => {
  it.each([['../evil'], ['/abs/evil'], ['a/../../evil']])('refuses member %s', async (name) => {
    const dest = join(tmp, `unsafe-${Math.random().toString(36).slice(2)}`);
    await expect(extractArchive(Readable.from([rawTar([{ name, data: 'x' }])]), dest)).rejects.toBeInstanceOf(UnsafeArchiveMemberError);
    expect(existsSync(join(tmp, 'evil'))).toBe(false);
  });

  it('refuses to write through a symlink extracted earlier', async () => {
    const outside = join(tmp, 'outside');
    await mkdir(outside);
    const dest = join(tmp, 'unsafe-symlink');
    const tar = rawTar([
      { name: 'link', type: TarType.SYMLINK, linkname: outside },
      { name: 'link/evil', data: 'x' },
    ]);
    await expect(extractArchive(Readable.from([tar]), dest)).rejects.toBeInstanceOf(UnsafeArchiveMemberError);
    expect(await readdir(outside)).toEqual([]);
  });

  it('replaces a symlink by a file instead of writing through it', async () => {
    const victim = join(tmp, 'victim');
    await writeFile(victim, 'keep');
    const dest = join(tmp, 'replace-symlink');
    const tar = rawTar([
      { name: 'f', type: TarType.SYMLINK, linkname: victim },
      { name: 'f', data: 'new' },
    ]);
    await extractArchive(Readable.from([tar]), dest);
    expect(await readFile(victim, 'utf8')).toBe('keep');
    expect(await readFile(join(dest, 'f'), 'utf8')).toBe('new');
  });
});

// ---- memory -----------------------------------------------------------------------------------------

describe('bounded memory', () => {
  it('a 200 MiB file goes through gzip with little RSS growth', async () => {
    const root = join(tmp, 'huge');
    await mkdir(join(root, 'global'), { recursive: true });
    await writeFile(join(root, 'global/pg_control'), 'control');
    const file = join(root, 'huge');
    await writeFile(file, '');
    await truncate(file, 200 * MiB);
    const fh = await openFile(file, 'r+');
    for (let off = 0; off < 200 * MiB; off += 16 * MiB) await fh.write(randomBytes(MiB), 0, MiB, off);
    await fh.close();

    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 10);
    let bytes = 0;
    try {
      const result = await dataTar(root, {
        codec: 'gzip',
        onPart: async (part) => {
          for await (const chunk of part.stream as AsyncIterable<Buffer>) {
            bytes += chunk.length;
            peak = Math.max(peak, process.memoryUsage().rss);
          }
        },
      });
      expect(result.parts[0]!.tarBytes).toBeGreaterThan(200 * MiB);
    } finally {
      clearInterval(timer);
    }
    expect(bytes).toBeGreaterThan(13 * MiB); // the random blocks do not compress
    const growth = (peak - base) / MiB;
    console.log(`RSS growth while producing 200 MiB: ${growth.toFixed(1)} MiB`);
    expect(growth).toBeLessThan(60);
  }, 120_000);
});

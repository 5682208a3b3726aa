// A backup is untrusted input: whatever its data.tar and backup.info hold, barman-cloud-restore
// never writes outside the destination nor through a link (#12 item 2). Each case builds a hostile
// archive with tar-stream, stores it as a backup with a valid backup.info (file store and S3 on
// moto), runs the real executable, and compares every file outside the destination with a snapshot
// taken before the run: type, mode, link count, content or link target.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, lstatSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf, type TarMember } from '../helpers/tar.ts';
import { createS3Bucket, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const BUCKET = 'escape';
const BACKUP_ID = '20261129T050418';


/** Paths a case knows only at run time: the outside area, the case's work directory, the destination. */
interface Where {
  outside: string;
  work: string;
  dest: string;
}

interface Case {
  name: string;
  members: (w: Where) => TarMember[];
  /** backup.info `tablespaces=` value (Python literal); None by default. */
  tablespaces?: (w: Where) => string;
  /** The archive of a tablespace (OID 16384), when the case has one. */
  tablespaceMembers?: TarMember[];
  /** Store tablespaceMembers as OID 16385's archive too. */
  secondArchive?: boolean;
  /** The data part's object name and bytes, instead of data.tar holding `members`. */
  dataObject?: () => Promise<{ name: string; body: Buffer }>;
  args?: (w: Where) => string[];
  code: number;
  /** A pattern the one-line stderr message must match (refusals). */
  message?: RegExp;
  check?: (w: Where, stderr: string) => void;
}

let scratch: string;
let moto: ServerHandle | undefined;
let s3: S3Client | undefined;

function backupInfo(tablespaces: string): string {
  return handMadeDone(tablespaces);
}

/** type, mode, owner, link count (not of directories) and content (or link target) of every entry under `root`, except `skip`. */
function snapshot(root: string, skip: Set<string>, out = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (skip.has(path)) continue;
    const st = lstatSync(path);
    let what: string;
    if (st.isSymbolicLink()) what = `link -> ${readlinkSync(path)}`;
    else if (st.isFile()) what = `file ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
    else if (st.isDirectory()) what = 'dir';
    else what = 'other';
    // a directory's link count changes when the destination is created in it: files only
    out.set(path, `${what} mode=${(st.mode & 0o7777).toString(8)} owner=${st.uid}:${st.gid}${st.isDirectory() ? '' : ` nlink=${st.nlink}`}`);
    if (st.isDirectory()) snapshot(path, skip, out);
  }
  return out;
}

const baseMembers: TarMember[] = [
  { name: '.', type: 'directory' },
  { name: './PG_VERSION', data: '15\n' },
  { name: 'global', type: 'directory' },
  { name: 'global/pg_control', data: 'control' },
];

const CASES: Case[] = [
  {
    name: 'traversal ../x',
    members: () => [...baseMembers, { name: '../x', data: 'planted' }],
    code: 4,
    message: /Refusing to extract '\.\.\/x'/,
  },
  {
    name: 'absolute /x',
    members: (w) => [...baseMembers, { name: `${w.outside}/abs-planted`, data: 'planted' }],
    code: 4,
    message: /absolute member path/,
  },
  {
    name: 'symlink, then a file under it',
    members: (w) => [...baseMembers, { name: 'lnk', type: 'symlink', linkname: join(w.outside, 'dir') }, { name: 'lnk/planted', data: 'planted' }],
    code: 4,
    message: /resolves outside the destination/,
  },
  {
    name: 'symlink chain a -> b -> outside, then a new directory under it',
    members: (w) => [
      ...baseMembers,
      { name: 'b', type: 'symlink', linkname: join(w.outside, 'dir') },
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'a/newdir/planted', data: 'planted' },
    ],
    code: 4,
    message: /resolves outside the destination/,
  },
  {
    name: 'hard link to an outside file',
    members: (w) => [...baseMembers, { name: 'hl', type: 'link', linkname: join(w.outside, 'victim.conf') }],
    code: 4,
    message: /Refusing to extract/,
  },
  {
    name: 'hard link to an outside file through a symlinked directory',
    members: (w) => [...baseMembers, { name: 'lnk', type: 'symlink', linkname: w.outside }, { name: 'hl', type: 'link', linkname: 'lnk/victim.conf' }],
    code: 4,
    message: /Refusing to extract hard link 'hl'/,
  },
  {
    name: 'hard link to a symlink as postgresql.auto.conf, with --write-recovery-conf',
    members: (w) => [
      ...baseMembers,
      { name: 's', type: 'symlink', linkname: join(w.outside, 'victim.conf') },
      { name: 'postgresql.auto.conf', type: 'link', linkname: 's' },
    ],
    args: () => ['--write-recovery-conf'],
    code: 4,
    message: /Refusing to extract hard link 'postgresql\.auto\.conf': its target 's' is not a regular file extracted from this archive/,
  },
  {
    name: 'hard links to files inside, then the recovery files are written',
    members: () => [
      ...baseMembers,
      { name: 'keep-signal', data: 'do not truncate' },
      { name: 'postgresql.auto.conf', type: 'link', linkname: 'PG_VERSION' },
      { name: 'recovery.signal', type: 'link', linkname: 'keep-signal' },
    ],
    args: () => ['--write-recovery-conf'],
    code: 0,
    check: (w) => {
      expect(readFileSync(join(w.dest, 'PG_VERSION'), 'utf8')).toBe('15\n');
      expect(readFileSync(join(w.dest, 'keep-signal'), 'utf8')).toBe('do not truncate');
      expect(lstatSync(join(w.dest, 'PG_VERSION')).nlink).toBe(1);
      const conf = readFileSync(join(w.dest, 'postgresql.auto.conf'), 'utf8');
      expect(conf.startsWith('15\nrestore_command = ')).toBe(true);
      expect(lstatSync(join(w.dest, 'recovery.signal')).size).toBe(0);
    },
  },
  {
    name: 'symlinked postgresql.auto.conf and recovery.signal, with --write-recovery-conf',
    members: (w) => [
      ...baseMembers,
      { name: 'postgresql.auto.conf', type: 'symlink', linkname: join(w.outside, 'victim.conf') },
      { name: 'recovery.signal', type: 'symlink', linkname: join(w.outside, 'victim.signal') },
    ],
    args: () => ['--write-recovery-conf'],
    code: 0,
    check: (w, stderr) => {
      const conf = lstatSync(join(w.dest, 'postgresql.auto.conf'));
      expect(conf.isFile()).toBe(true);
      expect(conf.mode & 0o777).toBe(0o600);
      // the outside file's content is not read through the link either
      expect(readFileSync(join(w.dest, 'postgresql.auto.conf'), 'utf8')).toMatch(/^restore_command = '.*barman-cloud-wal-restore/);
      expect(lstatSync(join(w.dest, 'recovery.signal')).isFile()).toBe(true);
      expect(stderr).toMatch(/Replacing .*postgresql\.auto\.conf: it was not a regular file/);
    },
  },
  {
    // not an attack: the rewritten postgresql.auto.conf must stay readable by the server's user
    name: 'a regular postgresql.auto.conf keeps its content, mode and (as root) owner',
    members: () => [...baseMembers, { name: 'postgresql.auto.conf', data: 'port = 5433\n', mode: 0o640, uid: 4242 }],
    args: () => ['--write-recovery-conf'],
    code: 0,
    check: (w) => {
      const path = join(w.dest, 'postgresql.auto.conf');
      expect(readFileSync(path, 'utf8')).toMatch(/^port = 5433\nrestore_command = '.*'\n$/);
      const st = lstatSync(path);
      expect(st.mode & 0o7777).toBe(0o640);
      if (process.geteuid?.() === 0) expect([st.uid, st.gid]).toEqual([4242, 4242]);
    },
  },
  {
    name: 'dangling symlinked recovery.signal into a missing outside directory',
    members: (w) => [...baseMembers, { name: 'recovery.signal', type: 'symlink', linkname: join(w.outside, 'dir', 'created-by-restore') }],
    args: () => ['--write-recovery-conf'],
    code: 0,
    check: (w) => expect(lstatSync(join(w.dest, 'recovery.signal')).isFile()).toBe(true),
  },
  {
    name: 'symlinked pg_wal',
    members: (w) => [...baseMembers, { name: 'pg_wal', type: 'symlink', linkname: join(w.outside, 'dir') }],
    code: 0,
    check: (w, stderr) => {
      expect(lstatSync(join(w.dest, 'pg_wal')).isDirectory()).toBe(true);
      expect(readdirSync(join(w.dest, 'pg_wal'))).toEqual([]);
      expect(stderr).toMatch(/Replacing .*pg_wal by an empty directory/);
    },
  },
  {
    name: 'symlinked pg_tblspc with a tablespace',
    members: (w) => [...baseMembers, { name: 'pg_tblspc', type: 'symlink', linkname: join(w.outside, 'dir') }],
    tablespaces: () => "[('tbs1', 16384, '/srv/tbs1')]",
    tablespaceMembers: [{ name: 'PG_15_202209061', type: 'directory' }, { name: 'PG_15_202209061/1', data: 'rel' }],
    args: (w) => ['--tablespace', `tbs1:${join(w.work, 'tbs')}`],
    code: 0,
    check: (w) => {
      expect(lstatSync(join(w.dest, 'pg_tblspc')).isDirectory()).toBe(true);
      expect(readlinkSync(join(w.dest, 'pg_tblspc', '16384'))).toBe(join(w.work, 'tbs'));
      expect(readFileSync(join(w.work, 'tbs', 'PG_15_202209061', '1'), 'utf8')).toBe('rel');
    },
  },
  {
    name: 'relative tablespace location',
    members: () => baseMembers,
    tablespaces: () => "[('tbs1', 16384, 'rel/tbs1')]",
    tablespaceMembers: [{ name: 'PG_15_202209061', type: 'directory' }],
    code: 1,
    message: /Tablespace tbs1 \(16384\) has a relative location 'rel\/tbs1'/,
    check: (w) => expect(existsSync(w.dest)).toBe(false),
  },
  {
    name: 'tablespace location inside the data destination',
    members: () => baseMembers,
    tablespaces: (w) => `[('tbs1', 16384, '${join(w.dest, 'pg_wal')}')]`,
    tablespaceMembers: [{ name: 'PG_15_202209061', type: 'directory' }],
    code: 1,
    message: /Tablespace tbs1 \(16384\) location '.*' overlaps the destination/,
    check: (w) => expect(existsSync(w.dest)).toBe(false),
  },
  {
    name: 'two tablespaces, one inside the other',
    members: () => baseMembers,
    tablespaces: (w) => `[('tbs1', 16384, '${join(w.work, 'tbs')}'), ('tbs2', 16385, '${join(w.work, 'tbs', 'PG_15_202209061')}')]`,
    tablespaceMembers: [{ name: 'PG_15_202209061', type: 'directory' }],
    code: 1,
    message: /Tablespace tbs2 \(16385\) location '.*' overlaps tablespace tbs1/,
    check: (w) => expect(existsSync(w.dest)).toBe(false),
  },
  {
    // Without the check, 16384.tar was restored into both locations, exit 0.
    name: 'two tablespaces sharing an OID',
    members: () => baseMembers,
    tablespaces: (w) => `[('tbs1', 16384, '${join(w.work, 'tbs')}'), ('tbs2', 16384, '${join(w.work, 'tbs-b')}')]`,
    tablespaceMembers: [{ name: 'PG_15_202209061', type: 'directory' }, { name: 'PG_15_202209061/1', data: 'rel' }],
    code: 4,
    message: /tablespace oid 16384 appears twice in tablespaces/,
    check: (w) => {
      expect(existsSync(w.dest)).toBe(false);
      expect(existsSync(join(w.work, 'tbs-b'))).toBe(false);
    },
  },
  {
    // Without the check, both archives were restored, exit 0, and --tablespace tbs1 would move both.
    name: 'two tablespaces sharing a name',
    members: () => baseMembers,
    tablespaces: (w) => `[('tbs1', 16384, '${join(w.work, 'tbs')}'), ('tbs1', 16385, '${join(w.work, 'tbs-b')}')]`,
    tablespaceMembers: [{ name: 'PG_15_202209061', type: 'directory' }, { name: 'PG_15_202209061/1', data: 'rel' }],
    secondArchive: true,
    code: 4,
    message: /tablespace name 'tbs1' appears twice in tablespaces/,
    check: (w) => {
      expect(existsSync(w.dest)).toBe(false);
      expect(existsSync(join(w.work, 'tbs-b'))).toBe(false);
    },
  },
  {
    // tarfile (barman) and GNU tar stop at the first tar's end; without the check the appended
    // member was restored, exit 0.
    name: 'a second tar appended to the data part',
    members: () => baseMembers,
    dataObject: async () => ({ name: 'data.tar', body: Buffer.concat([await tarOf(baseMembers), await tarOf([{ name: 'planted', data: 'x' }])]) }),
    code: 4,
    message: /part data\.tar cannot be read \(a member follows the end of the tar \(a zero block at offset \d+\)\)/,
    check: (w) => expect(existsSync(join(w.dest, 'planted'))).toBe(false),
  },
  {
    name: 'a second gzip member holding a second tar',
    members: () => baseMembers,
    dataObject: async () => ({ name: 'data.tar.gz', body: Buffer.concat([gzipSync(await tarOf(baseMembers)), gzipSync(await tarOf([{ name: 'planted', data: 'x' }]))]) }),
    code: 4,
    message: /part data\.tar\.gz cannot be read \(a member follows the end of the tar \(a zero block at offset \d+\)\)/,
    check: (w) => expect(existsSync(join(w.dest, 'planted'))).toBe(false),
  },
  {
    // bzip2(1) warns of bytes after its stream and exits 0: restored, exit 0, before the check
    // (docs/format.md#codec-ends).
    name: 'bytes after the bzip2 stream of the data part',
    members: () => baseMembers,
    dataObject: async () => ({ name: 'data.tar.bz2', body: Buffer.concat([execFileSync('bzip2', ['-c'], { input: await tarOf(baseMembers) }), Buffer.from('garbage')]) }),
    code: 4,
    message: /part data\.tar\.bz2 .*data after the end of the compressed stream/,
  },
  {
    name: 'a device node',
    members: () => [...baseMembers, { name: 'devnull', type: 'character-device', mode: 0o666 }, { name: 'blk', type: 'block-device' }],
    code: 0,
    check: (w, stderr) => {
      expect(existsSync(join(w.dest, 'devnull'))).toBe(false);
      expect(existsSync(join(w.dest, 'blk'))).toBe(false);
      expect(stderr).toMatch(/WARNING: Skipping 'devnull': device nodes are not restored/);
    },
  },
  {
    name: 'a FIFO',
    members: () => [...baseMembers, { name: 'fifo', type: 'fifo' }],
    code: 0,
    check: (w, stderr) => {
      expect(existsSync(join(w.dest, 'fifo'))).toBe(false);
      expect(stderr).toMatch(/WARNING: Skipping 'fifo': FIFOs are not restored/);
    },
  },
  {
    name: 'setuid, setgid and sticky bits',
    members: () => [
      ...baseMembers,
      { name: 'suid', data: '#!/bin/sh\n', mode: 0o4755 },
      { name: 'sgid-dir', type: 'directory', mode: 0o3775 },
      { name: 'sgid-dir/file', data: 'x', mode: 0o2640 },
      { name: 'hl-suid', type: 'link', linkname: 'suid', mode: 0o6755 },
    ],
    code: 0,
    check: (w) => {
      expect(lstatSync(join(w.dest, 'suid')).mode & 0o7777).toBe(0o755);
      expect(lstatSync(join(w.dest, 'sgid-dir')).mode & 0o7777).toBe(0o775);
      expect(lstatSync(join(w.dest, 'sgid-dir/file')).mode & 0o7777).toBe(0o640);
      expect(lstatSync(join(w.dest, 'hl-suid')).mode & 0o7777).toBe(0o755);
    },
  },
];

interface StoreKind {
  kind: 'file' | 's3';
  put(server: string, name: string, body: Buffer | string): Promise<void>;
  url(): string[];
  env(): NodeJS.ProcessEnv;
}

const fileStore: StoreKind = {
  kind: 'file',
  async put(server, name, body) {
    const dir = join(scratch, 'store', server, 'base', BACKUP_ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), body);
  },
  url: () => [`file://${join(scratch, 'store')}`],
  env: () => cleanEnv(),
};

const s3Store: StoreKind = {
  kind: 's3',
  async put(server, name, body) {
    await s3!.send(new PutObjectCommand({ Bucket: BUCKET, Key: `pg/${server}/base/${BACKUP_ID}/${name}`, Body: body }));
  },
  url: () => ['--endpoint-url', moto!.url, `s3://${BUCKET}/pg`],
  env: () => cleanEnv(MOTO_ENV),
};

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'bc-escape-'));
  moto = await startMoto();
  await createS3Bucket(moto.url, BUCKET);
  s3 = new S3Client({
    endpoint: moto.url, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
}, 60_000);

afterAll(async () => {
  s3?.destroy();
  await moto?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe.each([[fileStore], [s3Store]])('hostile backups on the $kind store', (store) => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const server = `srv-${CASES.indexOf(c)}`;
    const work = join(scratch, 'work', store.kind, server);
    mkdirSync(work, { recursive: true });
    // a fresh outside area per run, so that one run's escape cannot hide another's
    const outside = join(scratch, 'outside', store.kind, server);
    mkdirSync(join(outside, 'dir'), { recursive: true });
    writeFileSync(join(outside, 'victim.conf'), 'outside configuration\n');
    writeFileSync(join(outside, 'victim.signal'), 'outside signal\n');
    writeFileSync(join(outside, 'dir', 'existing'), 'outside file\n');
    const w: Where = { outside, work, dest: join(work, 'data') };

    await store.put(server, 'backup.info', backupInfo(c.tablespaces?.(w) ?? 'None'));
    const data = c.dataObject ? await c.dataObject() : { name: 'data.tar', body: await tarOf(c.members(w)) };
    await store.put(server, data.name, data.body);
    if (c.tablespaceMembers) await store.put(server, '16384.tar', await tarOf(c.tablespaceMembers));
    if (c.secondArchive && c.tablespaceMembers) await store.put(server, '16385.tar', await tarOf(c.tablespaceMembers));

    // everything but the store and what the restore may write: the destination, the tablespace target
    const mayWrite = new Set([join(scratch, 'store'), w.dest, join(work, 'tbs')]);
    const before = snapshot(scratch, mayWrite);
    const r = await runBin('barman-cloud-restore', [...(c.args?.(w) ?? []), ...store.url(), server, BACKUP_ID, w.dest], {
      env: store.env(),
      timeoutMs: 60_000,
    });
    const after = snapshot(scratch, mayWrite);
    expect(r.code, r.stderr).toBe(c.code);
    expect(Object.fromEntries(after)).toEqual(Object.fromEntries(before));
    if (c.message) {
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(c.message);
    }
    c.check?.(w, r.stderr);
  }, 90_000);
});

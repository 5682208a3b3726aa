// The spool is believed without asking the store (a marker skips an upload, a prefetched file is
// installed as a segment), so a spool someone else could write must not be used (issue #12 item 1).
// Every hostile shape below is built for real (another user is `nobody`, via chown: the suite runs
// as root in CI), then both the shell front (bin/ run directly, Node forbidden) and the Node program
// (`node bin/…`, which skips the shell) must ignore it: the planted bytes are never installed, the
// real segment comes from the store (exit 1 when the store has none), and archiving really uploads.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync, chownSync, existsSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spoolDirFor } from '../../src/wal/spool.ts';
import { DEFAULT_RETRY, openObjectStore, type StoreConfig } from '../../src/storage/config.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { asPostgresArgv, requireTool } from '../helpers/postgres.ts';
import { ROOT, commandExists, createS3Bucket, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const IS_ROOT = process.getuid?.() === 0;
const NOBODY = 65534;
const ARCHIVE = 'barman-cloud-wal-archive';
const RESTORE = 'barman-cloud-wal-restore';
/** Any Node start fails with this: only the shell front can succeed. */
const NO_NODE = { NODE_OPTIONS: '--require /nonexistent/no-node-allowed.js' };
const SEG_SIZE = 1 << 20;

const seg = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
/** Segment bytes numbered `n`, behind the long page header of `name` (wal-restore checks it). */
const segmentBytes = (n: number, name = seg(n)) => {
  const b = Buffer.alloc(SEG_SIZE);
  for (let off = 0; off < b.length; off += 4096) b.writeUInt32LE((n * 104729 + off) >>> 0, off);
  return withLongPageHeader(b, name);
};
const PLANTED = Buffer.alloc(SEG_SIZE, 'X');

let tmp: string;
let moto: ServerHandle;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'spool-trust-'));
  moto = await startMoto();
  await createS3Bucket(moto.url, 'trust');
});

afterAll(async () => {
  await moto?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

// ---- stores ---------------------------------------------------------------------------------------

interface Store {
  kind: 'file' | 's3';
  url: string;
  args: string[];
  env: Record<string, string>;
  config: () => StoreConfig;
}

const fileStore = (): Store => {
  const dir = join(tmp, 'store');
  mkdirSync(dir, { recursive: true });
  return { kind: 'file', url: `file://${dir}`, args: [`file://${dir}`], env: {}, config: () => ({ provider: 'file', bucket: dir, retry: DEFAULT_RETRY }) };
};

const s3Store = (): Store => ({
  kind: 's3',
  url: 's3://trust/pfx',
  args: ['--endpoint-url', moto.url, 's3://trust/pfx'],
  env: MOTO_ENV,
  config: () => ({
    provider: 'aws-s3', bucket: 'trust', retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  }) as StoreConfig,
});

const walKey = (store: Store, server: string, name: string) =>
  `${store.kind === 's3' ? 'pfx/' : ''}${server}/wals/${name.slice(0, 16)}/${name}`;

async function putSegment(store: Store, server: string, name: string, data: Buffer): Promise<void> {
  const s = await openObjectStore(store.config());
  await s.put(walKey(store, server, name), data);
  await s.close();
}

async function storedSegment(store: Store, server: string, name: string): Promise<Buffer | null> {
  const s = await openObjectStore(store.config());
  try {
    return (await s.head(walKey(store, server, name))) ? await s.getBuffer(walKey(store, server, name)) : null;
  } finally {
    await s.close();
  }
}

// ---- hostile shapes -------------------------------------------------------------------------------

interface Layout {
  parent: string; // the directory holding the spool root
  root: string;
  store: string; // the per-store directory (hashed name)
  sub: string; // archive/ or restore/
  entry: string; // archive/<wal> marker or restore/<wal> prefetched file
}

function dir(path: string, mode: number, uid = 0): void {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  chownSync(path, uid, uid === 0 ? 0 : NOBODY);
}

function file(path: string, content: Buffer | string, mode: number, uid = 0): void {
  writeFileSync(path, content);
  chmodSync(path, mode);
  chownSync(path, uid, uid === 0 ? 0 : NOBODY);
}

/** A trusted layout (what we would create ourselves), then one thing made hostile. */
interface Shape {
  name: string;
  build(l: Layout, content: Buffer | string, storeUrl: string, server: string): void;
}

function plain(l: Layout, content: Buffer | string, storeUrl: string, server: string, o: {
  parent?: number; root?: [number, number]; store?: [number, number]; sub?: [number, number]; entry?: [number, number];
} = {}): void {
  dir(l.parent, o.parent ?? 0o755);
  dir(l.root, ...(o.root ?? [0o700, 0] as [number, number]));
  dir(l.store, ...(o.store ?? [0o700, 0] as [number, number]));
  // What the shell front before this fix looked for to find the directory: an attacker writes it too.
  file(join(l.store, 'source'), `${storeUrl}\n${server}\n`, 0o644, (o.store ?? [0, 0])[1]);
  dir(l.sub, ...(o.sub ?? [0o700, 0] as [number, number]));
  file(l.entry, content, ...(o.entry ?? [0o600, 0] as [number, number]));
}

/** Build the real thing elsewhere and put a symlink at `at`. */
function symlinked(at: string, build: (real: string) => void): void {
  const real = `${at}-real`;
  build(real);
  symlinkSync(real, at);
}

const SHAPES: Shape[] = [
  {
    name: 'root pre-created by another user, mode 0777 (the reported attack)',
    build: (l, c, u, s) => plain(l, c, u, s, { root: [0o777, NOBODY], store: [0o755, NOBODY], sub: [0o755, NOBODY], entry: [0o644, NOBODY] }),
  },
  {
    name: 'root owned by another user, mode 0755',
    build: (l, c, u, s) => plain(l, c, u, s, { root: [0o755, NOBODY] }),
  },
  { name: 'root ours, mode 0777', build: (l, c, u, s) => plain(l, c, u, s, { root: [0o777, 0] }) },
  { name: 'root ours, mode 0770', build: (l, c, u, s) => plain(l, c, u, s, { root: [0o770, 0] }) },
  {
    name: 'root is a symlink',
    build: (l, c, u, s) => {
      dir(l.parent, 0o755);
      symlinked(l.root, (real) => plain({ ...l, root: real, store: l.store.replace(l.root, real), sub: l.sub.replace(l.root, real), entry: l.entry.replace(l.root, real) }, c, u, s));
    },
  },
  {
    name: 'per-store directory is a symlink',
    build: (l, c, u, s) => {
      dir(l.parent, 0o755);
      dir(l.root, 0o700);
      symlinked(l.store, (real) => plain({ ...l, store: real, sub: l.sub.replace(l.store, real), entry: l.entry.replace(l.store, real) }, c, u, s));
    },
  },
  { name: 'per-store directory owned by another user', build: (l, c, u, s) => plain(l, c, u, s, { store: [0o755, NOBODY] }) },
  { name: 'archive/ or restore/ mode 0777', build: (l, c, u, s) => plain(l, c, u, s, { sub: [0o777, 0] }) },
  {
    name: 'the entry is a symlink',
    build: (l, c, u, s) => {
      plain(l, 'placeholder', u, s);
      rmSync(l.entry);
      const target = join(l.parent, 'planted');
      file(target, c, 0o600);
      symlinkSync(target, l.entry);
    },
  },
  { name: 'the entry is owned by another user', build: (l, c, u, s) => plain(l, c, u, s, { entry: [0o644, NOBODY] }) },
  { name: 'the entry is group-writable', build: (l, c, u, s) => plain(l, c, u, s, { entry: [0o660, 0] }) },
  { name: 'the root sits in a directory others can write, without the sticky bit', build: (l, c, u, s) => plain(l, c, u, s, { parent: 0o777 }) },
];

function layoutAt(root: string, storeUrl: string, server: string, sub: 'archive' | 'restore', name: string): Layout {
  const store = spoolDirFor(root, storeUrl, server);
  return { parent: dirname(root), root, store, sub: join(store, sub), entry: join(store, sub, name) };
}

const layoutFor = (caseDir: string, storeUrl: string, server: string, sub: 'archive' | 'restore', name: string) =>
  layoutAt(join(caseDir, 'parent', 'spool'), storeUrl, server, sub, name);

/** A second planted entry of the same kind (symlink, owner, mode) as `from`. */
function cloneEntry(from: string, to: string, content: Buffer): void {
  const st = lstatSync(from);
  if (st.isSymbolicLink()) {
    const target = `${to}-target`;
    writeFileSync(target, content);
    symlinkSync(target, to);
    return;
  }
  writeFileSync(to, content);
  chownSync(to, st.uid, st.gid);
  chmodSync(to, st.mode & 0o7777);
}

let caseSeq = 0;

// ---- wal-restore ----------------------------------------------------------------------------------

async function restoreCase(store: Store, shape: Shape): Promise<void> {
  const n = ++caseSeq;
  const server = `srv${n}`;
  const caseDir = join(tmp, `restore-${n}`);
  const inStore = seg(2 * n); // in the store: the real bytes must win
  const notInStore = seg(2 * n + 1); // only planted: exit 1
  const real = segmentBytes(n, inStore);
  await putSegment(store, server, inStore, real);
  // Both planted files live in one spool layout (the entry is built for `inStore`, the other copied beside it).
  const l = layoutFor(caseDir, store.url, server, 'restore', inStore);
  shape.build(l, PLANTED, store.url, server);
  cloneEntry(l.entry, join(dirname(l.entry), notInStore), PLANTED);
  const before = modes(l);
  const pgWal = join(caseDir, 'pg_wal');
  mkdirSync(pgWal);
  const dest = join(pgWal, 'RECOVERYXLOG');
  const args = (name: string) => ['--parallel', '3', '--spool-dir', l.root, ...store.args, server, name, dest];

  // The shell front alone: it must decline (and so fail here, Node being forbidden), touching nothing.
  const sh = spawnSync(join(ROOT, 'bin', RESTORE), args(inStore), { env: cleanEnv({ ...store.env, ...NO_NODE }), encoding: 'utf8' });
  expect(sh.status, `shell served the planted file: ${shape.name}`).not.toBe(0);
  expect(existsSync(dest)).toBe(false);
  expect(readFileSync(l.entry).equals(PLANTED)).toBe(true);

  // Node alone: the real segment from the store, and the reason said once at debug level.
  const node = await runBin(RESTORE, ['-vv', ...args(inStore)], { env: cleanEnv(store.env) });
  expect(node.code, node.stderr).toBe(0);
  expect(readFileSync(dest).equals(real), `planted bytes installed: ${shape.name}`).toBe(true);
  expect(node.stderr.match(/DEBUG: Not using the spool/g)?.length, node.stderr).toBe(1);

  // A segment the store does not have: exit 1, whatever the spool holds.
  rmSync(dest);
  for (const r of [
    spawnSync(join(ROOT, 'bin', RESTORE), args(notInStore), { env: cleanEnv(store.env), encoding: 'utf8' }),
    spawnSync(process.execPath, [join(ROOT, 'bin', RESTORE), ...args(notInStore)], { env: cleanEnv(store.env), encoding: 'utf8' }),
  ]) {
    expect(r.status, r.stderr).toBe(1);
    expect(existsSync(dest)).toBe(false);
  }
  // Nothing we did not create was "fixed".
  expect(modes(l)).toEqual(before);
}

// ---- wal-archive ----------------------------------------------------------------------------------

async function archiveCase(store: Store, shape: Shape): Promise<void> {
  const n = ++caseSeq;
  const server = `srv${n}`;
  const caseDir = join(tmp, `archive-${n}`);
  const pgWal = join(caseDir, 'pg_wal');
  mkdirSync(pgWal, { recursive: true });
  const name = seg(2 * n);
  const walPath = join(pgWal, name);
  const real = segmentBytes(n);
  writeFileSync(walPath, real);
  // A marker that matches the file exactly: believed, it would skip the upload.
  const st = statSync(walPath, { bigint: true });
  const marker = JSON.stringify({ size: Number(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs) });
  const l = layoutFor(caseDir, store.url, server, 'archive', name);
  shape.build(l, marker, store.url, server);
  const before = modes(l);
  const args = ['--max-parallel', '3', '--spool-dir', l.root, ...store.args, server, walPath];

  const sh = spawnSync(join(ROOT, 'bin', ARCHIVE), args, { env: cleanEnv({ ...store.env, ...NO_NODE }), encoding: 'utf8' });
  expect(sh.status, `shell believed the planted marker: ${shape.name}`).not.toBe(0);
  expect(readFileSync(l.entry, 'utf8')).toBe(marker);

  const node = await runBin(ARCHIVE, ['-vv', ...args], { env: cleanEnv(store.env) });
  expect(node.code, node.stderr).toBe(0);
  const stored = await storedSegment(store, server, name);
  expect(stored?.equals(real), `upload skipped on a planted marker: ${shape.name}`).toBe(true);
  expect(node.stderr.match(/DEBUG: Not using the spool/g)?.length, node.stderr).toBe(1);
  expect(modes(l)).toEqual(before);
}

/** Type, owner and mode of every level, not following symlinks. */
function modes(l: Layout): string[] {
  return [l.parent, l.root, l.store, l.sub, l.entry].map((p) => {
    const st = lstatSync(p);
    return `${p} ${st.isSymbolicLink() ? 'l' : st.isDirectory() ? 'd' : 'f'} ${st.uid} ${(st.mode & 0o7777).toString(8)}`;
  });
}

// ---- the tests ------------------------------------------------------------------------------------

describe.skipIf(!IS_ROOT)('a spool someone else could write is not used (file store)', () => {
  const store = () => fileStore();
  for (const shape of SHAPES) {
    it(`wal-restore --parallel: ${shape.name}`, async () => restoreCase(store(), shape), 60_000);
    it(`wal-archive --max-parallel: ${shape.name}`, async () => archiveCase(store(), shape), 60_000);
  }
});

describe.skipIf(!IS_ROOT)('a spool someone else could write is not used (S3 on moto)', () => {
  for (const shape of [SHAPES[0], SHAPES.find((s) => s.name.includes('entry is owned'))!]) {
    it(`wal-restore --parallel: ${shape.name}`, async () => restoreCase(s3Store(), shape), 60_000);
    it(`wal-archive --max-parallel: ${shape.name}`, async () => archiveCase(s3Store(), shape), 60_000);
  }
});

// Alpine's applets differ from GNU's (find, stat, mv): the shell front must still decline every
// hostile shape there. Only busybox's applets are on the PATH, no node: a decline exits 127.
describe.skipIf(!IS_ROOT || requireTool('busybox', commandExists('busybox')))('the shell front under busybox', () => {
  let bb: string;
  beforeAll(() => {
    bb = join(tmp, 'busybox-bin');
    mkdirSync(bb);
    for (const applet of ['sh', 'find', 'sha256sum', 'stat', 'mv', 'rm', 'id']) symlinkSync('/bin/busybox', join(bb, applet));
  });
  const shell = (args: string[]) =>
    spawnSync(join(bb, 'sh'), [join(ROOT, 'bin', RESTORE), ...args], { env: { PATH: bb }, encoding: 'utf8' });

  for (const shape of SHAPES) {
    it(`declines: ${shape.name}`, () => {
      const store = fileStore();
      const n = ++caseSeq;
      const l = layoutFor(join(tmp, `busybox-${n}`), store.url, `srv${n}`, 'restore', seg(2 * n));
      shape.build(l, PLANTED, store.url, `srv${n}`);
      const dest = join(tmp, `busybox-${n}`, 'RECOVERYXLOG');
      const r = shell(['--parallel', '3', '--spool-dir', l.root, ...store.args, `srv${n}`, seg(2 * n), dest]);
      expect(r.status, r.stderr).toBe(127);
      expect(existsSync(dest)).toBe(false);
      expect(readFileSync(l.entry).equals(PLANTED)).toBe(true);
    });
  }

  it('serves a spool of our own', () => {
    const store = fileStore();
    const n = ++caseSeq;
    const l = layoutFor(join(tmp, `busybox-${n}`), store.url, `srv${n}`, 'restore', seg(2 * n));
    plain(l, segmentBytes(n), store.url, `srv${n}`);
    const dest = join(tmp, `busybox-${n}`, 'RECOVERYXLOG');
    const r = shell(['--parallel', '3', '--spool-dir', l.root, ...store.args, `srv${n}`, seg(2 * n), dest]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(segmentBytes(n))).toBe(true);
  });

  it('finds a spool of our own through the root\'s names file, with no sha256sum on the PATH', () => {
    const store = fileStore();
    const n = ++caseSeq;
    const l = layoutFor(join(tmp, `busybox-${n}`), store.url, `srv ${n}*`, 'restore', seg(2 * n));
    plain(l, segmentBytes(n), store.url, `srv ${n}*`);
    const noHash = join(tmp, `busybox-${n}`, 'bin');
    mkdirSync(noHash);
    for (const applet of ['sh', 'find', 'stat', 'mv']) symlinkSync('/bin/busybox', join(noHash, applet));
    const dest = join(tmp, `busybox-${n}`, 'RECOVERYXLOG');
    const args = ['--parallel', '3', '--spool-dir', l.root, ...store.args, `srv ${n}*`, seg(2 * n), dest];
    const run = () => spawnSync(join(noHash, 'sh'), [join(ROOT, 'bin', RESTORE), ...args], { env: { PATH: noHash }, encoding: 'utf8' });
    expect(run().status).toBe(127); // no names file yet, no sha256sum: the shell cannot find the spool
    file(join(l.root, 'names'), `${l.store.slice(l.root.length + 1)}\n${store.url}\nsrv ${n}*\n`, 0o600);
    const r = run();
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(segmentBytes(n))).toBe(true);
  });
});

describe.skipIf(!IS_ROOT)('a spool of our own', () => {
  it('is created 0700 level by level even under umask 0, and then used by both fronts', async () => {
    const store = fileStore();
    const server = 'srv-own';
    const names = [seg(0x90), seg(0x91)];
    for (const [i, name] of names.entries()) await putSegment(store, server, name, segmentBytes(0x90 + i));
    const root = join(tmp, 'own', 'spool');
    const dest = join(tmp, 'own', 'RECOVERYXLOG');
    mkdirSync(dirname(root), { mode: 0o755 });
    const args = (name: string) => ['--parallel', '2', '--spool-dir', root, ...store.args, server, name, dest];
    const r = spawnSync('sh', ['-c', 'umask 0; exec "$@"', 'sh', process.execPath, join(ROOT, 'bin', RESTORE), ...args(names[0])], {
      env: cleanEnv(), encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const l = layoutAt(root, store.url, server, 'restore', names[1]);
    for (const d of [l.root, l.store, l.sub]) expect((lstatSync(d).mode & 0o777).toString(8)).toBe('700');
    expect((lstatSync(l.entry).mode & 0o777).toString(8)).toBe('600');
    // The prefetched segment is served by the shell alone.
    const hit = spawnSync(join(ROOT, 'bin', RESTORE), args(names[1]), { env: cleanEnv(NO_NODE), encoding: 'utf8' });
    expect(hit.status, hit.stderr).toBe(0);
    expect(readFileSync(dest).equals(segmentBytes(0x91))).toBe(true);
  }, 60_000);

  it('is not made for a server name holding a newline (two archives could share a directory)', async () => {
    const store = fileStore();
    const server = 'srv\nnl';
    const name = seg(0xa0);
    await putSegment(store, server, name, segmentBytes(0xa0));
    const root = join(tmp, 'nl', 'spool');
    mkdirSync(dirname(root), { recursive: true });
    const dest = join(tmp, 'nl', 'RECOVERYXLOG');
    const r = await runBin(RESTORE, ['-vv', '--parallel', '2', '--spool-dir', root, ...store.args, server, name, dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(segmentBytes(0xa0))).toBe(true);
    expect(existsSync(root)).toBe(false);
  }, 60_000);

  it('the shell front does not serve a server name holding a newline from the spool of the pair it collides with', () => {
    // ("<url>\nsrv", "nl") is hashed as ("<url>", "srv\nnl") is: the same directory.
    const store = fileStore();
    const name = seg(0xa2);
    const root = join(tmp, 'nl-shell', 'spool');
    const l = layoutAt(root, `${store.url}\nsrv`, 'nl', 'restore', name);
    expect(l.store).toBe(spoolDirFor(root, store.url, 'srv\nnl'));
    plain(l, segmentBytes(0xa2), `${store.url}\nsrv`, 'nl');
    chmodSync(l.parent, 0o755);
    const dest = join(tmp, 'nl-shell', 'RECOVERYXLOG');
    const run = (server: string) => spawnSync(join(ROOT, 'bin', RESTORE), ['--parallel', '2', '--spool-dir', root, ...store.args, server, name, dest], {
      env: cleanEnv(NO_NODE), encoding: 'utf8',
    });
    const r = run('srv\nnl');
    expect(r.status, 'the shell served the colliding spool').not.toBe(0);
    expect(existsSync(dest)).toBe(false);
    // The control: the same spool, trusted, is served to a name of the same shape without the newline.
    const same = layoutAt(root, store.url, 'srv-nl', 'restore', name);
    plain(same, segmentBytes(0xa2), store.url, 'srv-nl');
    expect(run('srv-nl').status).toBe(0);
    expect(readFileSync(dest).equals(segmentBytes(0xa2))).toBe(true);
  });
});

describe.skipIf(!IS_ROOT)('the names file of the spool root', () => {
  it('a temp left by a run killed while rewriting it is swept by a later run: only a stale regular file of ours with its exact name', async () => {
    const store = fileStore();
    const server = 'srv-names-temp';
    const root = join(tmp, 'names-temp', 'spool');
    dir(root, 0o700);
    const old = new Date(Date.now() - 3_600_000);
    const temp = (name: string, uid = 0) => {
      file(join(root, name), 'half a names file\n', 0o600, uid);
      utimesSync(join(root, name), old, old);
      return join(root, name);
    };
    const stale = temp('names.tmp-4242-0123abcd');
    const fresh = join(root, 'names.tmp-4243-0123abcd');
    file(fresh, 'being written\n', 0o600);
    const theirs = temp('names.tmp-4244-0123abcd', NOBODY);
    const other = temp('names.tmp-by-someone-else');
    // a link with a temp's name, and what it points at: neither is touched
    const target = join(tmp, 'names-temp', 'target');
    writeFileSync(target, 'keep\n');
    utimesSync(target, old, old);
    const link = join(root, 'names.tmp-4245-0123abcd');
    symlinkSync(target, link);
    lutimesSync(link, old, old);

    const wal = join(tmp, 'names-temp', 'pg_wal', seg(0xb0));
    mkdirSync(dirname(wal), { recursive: true });
    writeFileSync(wal, segmentBytes(0xb0));
    const r = await runBin(ARCHIVE, ['--max-parallel', '2', '--spool-dir', root, ...store.args, server, wal], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(root, 'names'))).toBe(true);
    expect(existsSync(stale)).toBe(false);
    for (const kept of [fresh, theirs, other, target]) expect(existsSync(kept)).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  }, 60_000);
});

describe.skipIf(!IS_ROOT)('the default location', () => {
  it('a hostile spool pre-created at the old default $TMPDIR/barman-cloud-spool-<uid> is never consulted', async () => {
    const store = fileStore();
    const server = 'srv-default';
    const fakeTmp = join(tmp, 'shared-tmp');
    dir(fakeTmp, 0o1777);
    const name = seg(0x80);
    const real = segmentBytes(0x80);
    await putSegment(store, server, name, real);
    const l = layoutAt(join(fakeTmp, 'barman-cloud-spool-0'), store.url, server, 'restore', name);
    plain(l, PLANTED, store.url, server, {
      parent: 0o1777, root: [0o777, NOBODY], store: [0o755, NOBODY], sub: [0o755, NOBODY], entry: [0o644, NOBODY],
    });
    const pgWal = join(tmp, 'default-pgdata', 'pg_wal');
    mkdirSync(pgWal, { recursive: true });
    const dest = join(pgWal, 'RECOVERYXLOG');
    const r = spawnSync(join(ROOT, 'bin', RESTORE), ['--parallel', '3', ...store.args, server, name, dest], {
      env: cleanEnv({ TMPDIR: fakeTmp, BARMAN_CLOUD_SPOOL_DIR: undefined }),
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(real)).toBe(true);
    // Our own spool is beside the destination, private to us.
    const ours = statSync(join(pgWal, '.barman-cloud-spool-0'));
    expect(ours.mode & 0o777).toBe(0o700);
  }, 60_000);
});

// <root>/names lets the shell front find a store's spool directory without sha256sum
// (recordSpoolName() in src/wal/spool.ts). A names file that someone else could have written must
// not steer it: here it points store A's calls at store B's directory, whose marker matches the
// WAL file. Believed, A's call would be answered "archived" by B's upload.
describe.skipIf(!IS_ROOT)('the names file of the spool root', () => {
  const NAMES_SHAPES: { name: string; build(path: string, text: string): void; believed: boolean }[] = [
    { name: 'ours, mode 0600 (what Node writes: believed, the control)', build: (p, t) => file(p, t, 0o600), believed: true },
    { name: 'group-writable', build: (p, t) => file(p, t, 0o620), believed: false },
    { name: 'world-writable', build: (p, t) => file(p, t, 0o602), believed: false },
    { name: 'owned by another user', build: (p, t) => file(p, t, 0o644, NOBODY), believed: false },
    {
      name: 'a symbolic link to a file of ours',
      build: (p, t) => {
        file(`${p}-target`, t, 0o600);
        symlinkSync(`${p}-target`, p);
      },
      believed: false,
    },
  ];
  for (const shape of NAMES_SHAPES) {
    it(`${shape.believed ? 'is believed' : 'is not believed'}: ${shape.name}`, () => {
      const n = ++caseSeq;
      const caseDir = join(tmp, `names-${n}`);
      const pgWal = join(caseDir, 'pg_wal');
      mkdirSync(pgWal, { recursive: true });
      const name = seg(2 * n);
      const walPath = join(pgWal, name);
      writeFileSync(walPath, segmentBytes(n));
      const st = statSync(walPath, { bigint: true });
      const marker = JSON.stringify({ size: Number(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs) });
      const urlA = `file://${join(caseDir, 'store-a')}`;
      const urlB = `file://${join(caseDir, 'store-b')}`;
      const root = join(caseDir, 'spool');
      const b = layoutAt(root, urlB, 'srv', 'archive', name);
      plain(b, marker, urlB, 'srv');
      chmodSync(b.parent, 0o755);
      const a = layoutAt(root, urlA, 'srv', 'archive', name);
      dir(a.store, 0o700);
      dir(a.sub, 0o700);
      shape.build(join(root, 'names'), `${b.store.slice(root.length + 1)}\n${urlA}\nsrv\n`);
      const r = spawnSync(join(ROOT, 'bin', ARCHIVE), ['--max-parallel', '3', '--spool-dir', root, urlA, 'srv', walPath], {
        env: cleanEnv(NO_NODE), encoding: 'utf8',
      });
      if (shape.believed) {
        expect(r.status, r.stderr).toBe(0);
        expect(existsSync(b.entry)).toBe(false);
      } else {
        expect(r.status, `the shell believed a names file that is ${shape.name}`).not.toBe(0);
        expect(readFileSync(b.entry, 'utf8')).toBe(marker);
      }
    });
  }
});

// The shell front reads the names file, restore/worker.pid and restore/segment-size before its find
// checks who made them. A read-only open of a FIFO waits for a writer: planted in a spool someone
// else can write, it held the front (and PostgreSQL's restore_command) for ever, where Node ignores
// that spool (docs/format.md#spool-reads). Under dash (/bin/sh) and busybox, as root and as postgres.
describe.skipIf(!IS_ROOT)('a FIFO planted in a spool someone else can write never holds the shell front', () => {
  const shells = [['/bin/sh'], ...(commandExists('busybox') ? [['busybox', 'sh']] : [])];
  const users = ['root', ...(spawnSync('id', ['-u', 'postgres']).status === 0 ? ['postgres'] : [])];
  const PLANTS: { name: string; build(l: Layout, wal: string): void }[] = [
    {
      name: 'restore/segment-size is a FIFO (beside a planted segment)',
      build: (l, wal) => {
        file(join(l.sub, wal), PLANTED, 0o666, NOBODY);
        expect(spawnSync('mkfifo', ['-m', '0666', join(l.sub, 'segment-size')]).status).toBe(0);
      },
    },
    {
      name: 'restore/worker.pid is a FIFO (while a .fetching mark says a download is under way)',
      build: (l, wal) => {
        file(join(l.sub, `${wal}.fetching`), '', 0o666, NOBODY);
        expect(spawnSync('mkfifo', ['-m', '0666', join(l.sub, 'worker.pid')]).status).toBe(0);
      },
    },
  ];
  let base: string;
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'spool-fifo-'));
    chmodSync(base, 0o755); // postgres must reach its pg_wal below
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  for (const plant of PLANTS) {
    for (const shell of shells) {
      for (const user of users) {
        it(`${plant.name}: ${shell.join(' ')} as ${user} declines at once`, () => {
          const n = ++caseSeq;
          const caseDir = join(base, `fifo-${n}`);
          const storeDir = join(caseDir, 'store');
          mkdirSync(storeDir, { recursive: true });
          chmodSync(caseDir, 0o755);
          const url = `file://${storeDir}`;
          const wal = seg(2 * n);
          // The attacker's spool: every level theirs and open to all, as a shared --spool-dir would be.
          const l = layoutAt(join(caseDir, 'spool'), url, 'srv', 'restore', wal);
          dir(l.root, 0o777, NOBODY);
          dir(l.store, 0o777, NOBODY);
          dir(l.sub, 0o777, NOBODY);
          plant.build(l, wal);
          const pgWal = join(caseDir, 'pg_wal');
          mkdirSync(pgWal);
          if (user === 'postgres') execFileSync('chown', ['postgres', pgWal]);
          const dest = join(pgWal, 'RECOVERYXLOG');
          const argv = ['env', 'NODE_OPTIONS=--require /nonexistent/no-node-allowed.js', ...shell, join(ROOT, 'bin', RESTORE),
            '--parallel', '3', '--spool-dir', l.root, url, 'srv', wal, dest];
          const r = user === 'root' ? spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000 }) : spawnSync(...asPostgresArgv(argv), { encoding: 'utf8', timeout: 15_000, cwd: tmpdir() });
          expect(r.error?.message, `the shell front was still waiting after 15 s: ${plant.name}`).toBeUndefined();
          expect(r.status, r.stderr).not.toBe(0); // it declined: Node, forbidden here, was started
          expect(r.stderr).toMatch(/no-node-allowed/);
          expect(existsSync(dest)).toBe(false);
        }, 30_000);
      }
    }
  }
});

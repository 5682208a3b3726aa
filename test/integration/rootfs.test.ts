// `npm run rootfs -- DIR` (scripts/rootfs.mjs), proven the way the barman-cloud plugin's distroless
// sidecar runs the commands: a root holding only what the distroless `cc` base image holds (glibc,
// libgcc_s, libstdc++, CA certificates, copied from this host) plus the rootfs; no /bin/sh, no
// /usr/bin/env, no npm; each command found by a PATH lookup and started by exec (chroot(8) execvp's
// its argument inside the new root, as Go's exec.Command does). chroot needs root: skipped otherwise.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, openSync, readSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD_DONE } from '../fixtures/backup-info.ts';
import { createS3Bucket, ROOT, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

// What gcr.io/distroless/cc-debian12 ships of the libraries our binaries link to, and the CA bundle.
const BASE_FILES = [
  '/lib64/ld-linux-x86-64.so.2',
  '/lib/x86_64-linux-gnu/libc.so.6',
  '/lib/x86_64-linux-gnu/libdl.so.2',
  '/lib/x86_64-linux-gnu/libm.so.6',
  '/lib/x86_64-linux-gnu/libpthread.so.0',
  '/lib/x86_64-linux-gnu/librt.so.1',
  '/lib/x86_64-linux-gnu/libgcc_s.so.1',
  '/lib/x86_64-linux-gnu/libstdc++.so.6',
  '/etc/ssl/certs/ca-certificates.crt',
];
const LIB = '/usr/local/lib/barman-cloud-ts';
const SEGMENT = '000000010000000000000001';
const canChroot = process.getuid?.() === 0 && process.arch === 'x64' && existsSync('/usr/sbin/chroot');

let dir = '';
let moto: ServerHandle | undefined;
const wal = withLongPageHeader(randomBytes(16 * 1024 * 1024), SEGMENT);

function walk(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
    const p = join(rel, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(root, p));
  }
  return out;
}

/** An ELF object for x86-64 (e_machine 0x3e), read from its header: no file(1) needed. */
function isX64Elf(path: string): boolean {
  const head = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return head.subarray(0, 4).toString('latin1') === '\x7fELF' && head.readUInt16LE(18) === 0x3e;
}

interface Run { code: number | null; stdout: string; stderr: string }
/** `name args…` inside the root, found through PATH, with only the environment given. */
function inRoot(name: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/sbin/chroot', [dir, name, ...args], {
      env: { PATH: '/usr/local/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!canChroot)('the rootfs, run in a chroot with no shell', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bc-rootfs-'));
    execFileSync(process.execPath, [join(ROOT, 'scripts/rootfs.mjs'), dir], { stdio: 'pipe' });
    for (const f of BASE_FILES) {
      mkdirSync(join(dir, dirname(f)), { recursive: true });
      copyFileSync(f, join(dir, f));
    }
    for (const d of ['tmp', 'store', 'pgwal']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'pgwal', SEGMENT), wal);
    const backup = join(dir, 'store/srv/base/20261129T050418');
    mkdirSync(backup, { recursive: true });
    writeFileSync(join(backup, 'backup.info'), HEAD_DONE);
    moto = await startMoto();
    await createS3Bucket(moto.url, 'rootfs');
  }, 60_000);
  afterAll(async () => {
    await moto?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds no shell, no env, no npm, and needs no library beyond the base image', () => {
    const names = walk(dir).map((p) => p.split('/').pop());
    for (const banned of ['sh', 'bash', 'dash', 'env', 'npm', 'npx']) expect(names).not.toContain(banned);
    const bins = readdirSync(join(dir, 'usr/local/bin')).sort();
    const declared = Object.keys(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin).sort();
    expect(bins).toEqual(declared);
    for (const b of bins) {
      const first = readFileSync(join(dir, 'usr/local/bin', b), 'utf8').split('\n')[0];
      expect(first).toBe(`#!${LIB}/node`);
      expect(statSync(join(dir, 'usr/local/bin', b)).mode & 0o111).toBe(0o111);
    }
    // Every shared library that Node and the native addons load is one the base image has.
    const objects = [join(dir, LIB, 'node'), ...walk(join(dir, LIB, 'node_modules')).filter((p) => p.endsWith('.node')).map((p) => join(dir, LIB, 'node_modules', p))];
    expect(objects.length).toBeGreaterThan(1);
    const needed = new Set<string>();
    for (const o of objects) {
      if (!isX64Elf(o)) continue; // other platforms' prebuilds
      for (const m of execFileSync('ldd', [o], { encoding: 'utf8' }).matchAll(/(\/\S+)/g)) needed.add(m[1]!);
    }
    expect([...needed].filter((l) => !BASE_FILES.includes(l))).toEqual([]);
  });

  it('answers --version through the PATH lookup', async () => {
    const r = await inRoot('barman-cloud-wal-archive', ['--version']);
    expect(r).toEqual({ code: 0, stdout: 'barman-cloud-wal-archive 3.17.0\n', stderr: '' });
    const u = await inRoot('barman-cloud', ['--version']);
    expect(u.code).toBe(0);
    expect(u.stdout).toMatch(/^barman-cloud /);
  });

  it('archives and restores a segment on the file store (zstd: a native addon), and misses with exit 1', async () => {
    const a = await inRoot('barman-cloud-wal-archive', ['--zstd', 'file:///store', 'srv', `/pgwal/${SEGMENT}`]);
    expect(a).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(existsSync(join(dir, `store/srv/wals/0000000100000000/${SEGMENT}.zst`))).toBe(true);
    const r = await inRoot('barman-cloud-wal-restore', ['file:///store', 'srv', SEGMENT, '/pgwal/RECOVERYXLOG']);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(join(dir, 'pgwal/RECOVERYXLOG')).equals(wal)).toBe(true);
    const miss = await inRoot('barman-cloud-wal-restore', ['file:///store', 'srv', '000000010000000000000002', '/pgwal/RECOVERYXLOG2']);
    expect(miss.code).toBe(1);
    expect(existsSync(join(dir, 'pgwal/RECOVERYXLOG2'))).toBe(false);
  }, 30_000);

  it('archives and restores a segment on S3 (moto on loopback, lz4)', async () => {
    const env = MOTO_ENV;
    const url = 's3://rootfs/prefix';
    const a = await inRoot('barman-cloud-wal-archive', ['--lz4', '--endpoint-url', moto!.url, url, 'srv', `/pgwal/${SEGMENT}`], env);
    expect(a).toEqual({ code: 0, stdout: '', stderr: '' });
    const r = await inRoot('barman-cloud-wal-restore', ['--endpoint-url', moto!.url, url, 'srv', SEGMENT, '/pgwal/FROMS3'], env);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(join(dir, 'pgwal/FROMS3')).equals(wal)).toBe(true);
  }, 30_000);

  // The base image has no /usr/bin/ldd: the napi-rs loaders would ask process.report instead
  // (~6 ms per package per call); src/compression/native.ts takes the glibc bindings directly.
  it('loads the lz4 and snappy bindings without their packages\' libc probe', async () => {
    for (const [codec, suffix, packages] of [
      ['--lz4', 'lz4', ['@node-rs/xxhash-linux-x64-gnu', '@antoniomuso/lz4-napi-linux-x64-gnu']],
      ['--snappy', 'snappy', ['@node-rs/crc32-linux-x64-gnu', '@napi-rs/snappy-linux-x64-gnu']],
    ] as const) {
      const store = `file:///store/${suffix}`;
      mkdirSync(join(dir, 'store', suffix), { recursive: true });
      const a = await inRoot('barman-cloud-wal-archive', [codec, store, 'srv', `/pgwal/${SEGMENT}`], { NODE_DEBUG: 'barman_cloud_native' });
      expect(a.code).toBe(0);
      for (const p of packages) expect(a.stderr).toContain(`: ${p}\n`);
      const r = await inRoot('barman-cloud-wal-restore', [store, 'srv', SEGMENT, `/pgwal/NATIVE-${suffix}`]);
      expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
      expect(readFileSync(join(dir, `pgwal/NATIVE-${suffix}`)).equals(wal)).toBe(true);
    }
  }, 30_000);

  it('lists the backup present in the store, as JSON on stdout', async () => {
    const r = await inRoot('barman-cloud-backup-list', ['--format', 'json', 'file:///store', 'srv']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const doc = JSON.parse(r.stdout) as { backups_list: { backup_id: string; backup_name: string; status: string }[] };
    expect(doc.backups_list.map((b) => [b.backup_id, b.backup_name, b.status])).toEqual([['20261129T050418', 'firsthead', 'DONE']]);
  });
});

// The WAL commands load one CommonJS bundle compiled from V8's code cache made by the build
// (src/cli/launch.ts, scripts/build.mjs). The cache must be used when it is the build's, and a cache
// that is not (other bytes, other source, other V8 flags, writable by others, absent) must be
// ignored while the commands still archive and restore byte-identical. Needs the build (dist/).
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bech32 } from '@scure/base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runProcess } from '../helpers/run-bin.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { requireTool } from '../helpers/postgres.ts';
import { commandExists, createS3Bucket, makeTestCA, ROOT, startMoto, type ServerHandle, type TestCA } from '../helpers/servers.ts';
import { withLongPageHeader, writeWalFile } from '../helpers/wal-segment.ts';

const MiB = 1 << 20;
const CACHE = 'run.cjs.v8-cache';
let work: string;
let n = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-code-cache-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A copy of the package's executables and build, so that its cache can be tampered with. */
function packageCopy(): string {
  const pkg = join(work, `pkg-${++n}`);
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  for (const b of ['barman-cloud-wal-archive', 'barman-cloud-wal-restore']) cpSync(join(ROOT, 'bin', b), join(pkg, 'bin', b));
  cpSync(join(ROOT, 'bin', 'package.json'), join(pkg, 'bin', 'package.json'));
  cpSync(join(ROOT, 'dist'), join(pkg, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  return pkg;
}

/** A fresh pg_wal holding 1 MiB segment `name`, half random and half the byte `fill`: its directory and the segment's bytes. */
function pgWalWith(name: string, fill: number): { pgwal: string; data: Buffer } {
  const pgwal = join(work, `pg_wal-${++n}`);
  const data = withLongPageHeader(Buffer.concat([randomBytes(MiB / 2), Buffer.alloc(MiB / 2, fill)]), name);
  writeWalFile(pgwal, name, data);
  return { pgwal, data };
}

/** A throwaway age key pair, as files: [recipient file, identity file]. */
function ageKeyFiles(): [string, string] {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const raw = (der: Buffer) => der.subarray(-32);
  const recipientFile = join(work, `recipient-${++n}`);
  const identityFile = join(work, `identity-${n}`);
  writeFileSync(recipientFile, `${bech32.encodeFromBytes('age', raw(publicKey.export({ format: 'der', type: 'spki' })))}\n`);
  writeFileSync(identityFile, `${bech32.encodeFromBytes('age-secret-key-', raw(privateKey.export({ format: 'der', type: 'pkcs8' }))).toUpperCase()}\n`);
  return [recipientFile, identityFile];
}

/**
 * Archives a 1 MiB segment with --lz4 into a fresh file store and restores it, as `node <bin>`
 * with the launcher's debug output on (age-encrypted with `encrypted`); returns what the launcher
 * said about the cache.
 */
async function roundTrip(pkg: string, env: Record<string, string> = {}, encrypted = false): Promise<string> {
  const [recipientFile, identityFile] = encrypted ? ageKeyFiles() : [];
  const store = join(work, `store-${++n}`);
  mkdirSync(store);
  const name = '000000010000000000000003';
  const { pgwal, data } = pgWalWith(name, 7);
  const opts = { env: cleanEnv({ NODE_DEBUG: 'barman_cloud_launch', ...env }) };
  const sealing = recipientFile ? ['--encryption-recipient-file', recipientFile] : [];
  const opening = identityFile ? ['--encryption-identity-file', identityFile] : [];
  const archive = await runProcess(process.execPath, [join(pkg, 'bin', 'barman-cloud-wal-archive'), '--lz4', ...sealing, `file://${store}`, 'srv', join(pgwal, name)], opts);
  if (encrypted) expect(readdirSync(join(store, 'srv', 'wals', '0000000100000000'))).toEqual([`${name}.lz4.age`]);
  const dest = join(work, `restored-${n}`);
  const restore = await runProcess(process.execPath, [join(pkg, 'bin', 'barman-cloud-wal-restore'), ...opening, `file://${store}`, 'srv', name, dest], opts);
  expect({ archive: archive.code, restore: restore.code }).toEqual({ archive: 0, restore: 0 });
  expect(sha(readFileSync(dest))).toBe(sha(data));
  const said = (stderr: string) => stderr.split('\n').filter((l) => l !== '').map((l) => l.replace(/^BARMAN_CLOUD_LAUNCH \d+: /, ''));
  // Both calls say the same, and nothing but the launcher's debug lines is written.
  expect(said(restore.stderr)).toEqual(said(archive.stderr));
  return said(archive.stderr).join('\n');
}

describe('code cache of the WAL commands', () => {
  it('the build makes one, only readable by others, and the WAL commands compile from it', async () => {
    const cache = join(ROOT, 'dist', 'cli', CACHE);
    expect(existsSync(cache)).toBe(true);
    expect(statSync(cache).mode & 0o022).toBe(0);
    expect(await roundTrip(ROOT)).toBe('code cache accepted');
  });

  it('holds the age code too, compiled by the build from an in-memory round trip, and encrypted calls use it', async () => {
    // V8 caches only functions compiled by then, and these string constants live only inside the
    // bodies of functions that run on the first encrypted call (age.ts: the stanza's HKDF label in
    // openHeader, a chunk's and a header's refusals; cli/encryption.ts: the key file read's refusal),
    // so a cache made before any of them ran lacks them.
    // past the copy of the bundle that heads the file, which holds every string of the source
    const cache = readFileSync(join(ROOT, 'dist', 'cli', CACHE), 'latin1').slice(statSync(join(ROOT, 'dist', 'cli', 'run.cjs')).size);
    expect(cache.length).toBeGreaterThan(0);
    for (const inBody of ['age-encryption.org/v1/X25519', ' fails authentication)', ' is not an age file', 'cannot read the age ']) {
      expect(cache).toContain(inBody);
    }
    expect(await roundTrip(ROOT, {}, true)).toBe('code cache accepted');
  });

  it('a cache of other bytes is rejected by V8, and the commands still work', async () => {
    const garbage = packageCopy();
    const cache = join(garbage, 'dist', 'cli', CACHE);
    // headed by the bundle's own bytes, so that only V8's own check stands between
    const bundle = readFileSync(join(garbage, 'dist', 'cli', 'run.cjs'));
    writeFileSync(cache, Buffer.concat([bundle, randomBytes(statSync(cache).size - bundle.length)]), { mode: 0o644 });
    expect(await roundTrip(garbage)).toBe('code cache rejected by V8');
  });

  it('a cache made for other bundle bytes is ignored, even when the length is the same (V8 checks only that)', async () => {
    const edited = packageCopy();
    appendFileSync(join(edited, 'dist', 'cli', 'run.cjs'), '\n// edited after the build\n');
    expect(await roundTrip(edited)).toBe('code cache ignored: made for another bundle');

    const sameLength = packageCopy();
    const bundle = join(sameLength, 'dist', 'cli', 'run.cjs');
    const text = readFileSync(bundle, 'latin1');
    const at = text.lastIndexOf('run.cjs.map');
    expect(at).toBeGreaterThan(0);
    writeFileSync(bundle, `${text.slice(0, at)}run.cjs.maq${text.slice(at + 11)}`, 'latin1');
    expect(statSync(bundle).size).toBe(statSync(join(ROOT, 'dist', 'cli', 'run.cjs')).size);
    expect(await roundTrip(sameLength)).toBe('code cache ignored: made for another bundle');
  });

  it('a cache made under other V8 flags is rejected by V8, and the commands still work', async () => {
    expect(await roundTrip(ROOT, { NODE_OPTIONS: '--max-old-space-size=300' })).toBe('code cache rejected by V8');
  });

  it('a cache others may write is not read at all; a missing one is no error', async () => {
    const open = packageCopy();
    chmodSync(join(open, 'dist', 'cli', CACHE), 0o664);
    expect(await roundTrip(open)).toBe("code cache ignored: not owned by the bundle's owner alone");

    const none = packageCopy();
    rmSync(join(none, 'dist', 'cli', CACHE));
    expect(await roundTrip(none)).toBe('no code cache');
  });
});

describe('what a WAL call loads at start', () => {
  /** A CommonJS preload (no ES module loader of its own): Node's builtins and the files required. */
  function loadTrace(): { preload: string; out: string } {
    const out = join(work, `loaded-${++n}.txt`);
    const preload = join(work, `trace-${n}.cjs`);
    writeFileSync(preload, "process.on('exit', () => require('node:fs').writeFileSync(process.env.BC_LOADED, [...process.moduleLoadList, ...Object.keys(require.cache)].join('\\n')));\n");
    return { preload, out };
  }

  it('commander comes from the bundle (code cache), and node:child_process is not loaded for it', async () => {
    const store = join(work, `store-${++n}`);
    mkdirSync(store);
    const { preload, out } = loadTrace();
    const missing = await runProcess(process.execPath, ['-r', preload, join(ROOT, 'bin', 'barman-cloud-wal-restore'), `file://${store}`, 'srv', '000000010000000000000009', join(work, 'x')], { env: cleanEnv({ BC_LOADED: out }) });
    expect(missing.code).toBe(1);
    const loaded = readFileSync(out, 'utf8').split('\n');
    expect(loaded).toContain('NativeModule fs'); // the trace works
    expect(loaded.filter((m) => /node_modules\/commander\//.test(m) || m === 'NativeModule child_process')).toEqual([]);
  });

  it('a missing WAL from the file store makes no second V8 context, and loads node:crypto only from Node\'s code cache', async () => {
    // The code cache is checked by comparing bytes (a SHA-256 needed node:crypto), and the
    // scavenger's gc() context is made on first use (docs/benchmarks-history.md, "One-shot WAL
    // profile"). node:crypto is loaded before the V8 flags change, where it costs a miss ~0.2 ms
    // ("Node's own modules compiled after the flags"): every call that writes needs it.
    const store = join(work, `store-${++n}`);
    mkdirSync(store);
    const { preload, out } = loadTrace();
    const contexts = join(work, `contexts-${n}.cjs`);
    writeFileSync(contexts, "process.on('exit', () => require('node:fs').appendFileSync(process.env.BC_LOADED, `\\ncontexts ${require('node:v8').getHeapStatistics().number_of_native_contexts}`));\n");
    const missing = await runProcess(process.execPath, ['-r', preload, '-r', contexts, join(ROOT, 'bin', 'barman-cloud-wal-restore'), `file://${store}`, 'srv', '000000010000000000000009', join(work, 'x')], { env: cleanEnv({ BC_LOADED: out, NODE_DEBUG: 'barman_cloud_launch' }) });
    expect({ code: missing.code, stderr: missing.stderr.replace(/^BARMAN_CLOUD_LAUNCH \d+: /, '') }).toEqual({ code: 1, stderr: 'code cache accepted\n' });
    const loaded = readFileSync(out, 'utf8').split('\n');
    expect(loaded).toContain('NativeModule fs'); // the trace works
    const v8 = loaded.indexOf('NativeModule v8');
    expect(v8).toBeGreaterThan(0);
    expect(loaded.filter((m, i) => /^NativeModule (internal\/)?crypto/.test(m) && i > v8)).toEqual([]);
    expect(loaded).toContain('contexts 1');
  });

  it("on the file store too, what a WAL call loads anyway (node:crypto for its temp names, node:fs/promises) loads before its V8 flags change", async () => {
    const store = join(work, `store-${++n}`);
    mkdirSync(store);
    const name = '000000010000000000000007';
    const { pgwal, data } = pgWalWith(name, 7);
    const dest = join(pgwal, 'RECOVERYXLOG');
    for (const [bin, ...args] of [['barman-cloud-wal-archive', join(pgwal, name)], ['barman-cloud-wal-restore', name, dest]]) {
      const { preload, out } = loadTrace();
      const r = await runProcess(process.execPath, ['-r', preload, join(ROOT, 'bin', bin!), `file://${store}`, 'srv', ...args], { env: cleanEnv({ BC_LOADED: out }) });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const loaded = readFileSync(out, 'utf8').split('\n');
      const v8 = loaded.indexOf('NativeModule v8');
      expect(v8).toBeGreaterThan(0);
      // each loaded, and before the flags: compiled after them, node:crypto and its internals cost
      // the call ~4-11 ms more CPU (docs/benchmarks-history.md, "Node's own modules compiled after the flags")
      for (const m of ['crypto', 'fs/promises']) expect({ bin, m, at: loaded.indexOf(`NativeModule ${m}`) < v8 && loaded.includes(`NativeModule ${m}`) }).toEqual({ bin, m, at: true });
    }
    expect(sha(readFileSync(dest))).toBe(sha(data));
  });

  describe.skipIf(requireTool('moto_server', commandExists('moto_server')))('on S3', () => {
    let ca: TestCA;
    let plain: ServerHandle;
    let tls: ServerHandle;
    beforeAll(async () => {
      ca = makeTestCA();
      [plain, tls] = await Promise.all([startMoto(), startMoto({ tls: ca })]);
      await createS3Bucket(plain.url, 'lazy');
      await createS3Bucket(tls.url, 'lazy', ca.caPem);
    }, 60_000);
    afterAll(async () => {
      await Promise.all([plain?.stop(), tls?.stop()]);
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    /** Archives a 1 MiB segment, restores it and asks for a missing one, each traced; returns what each loaded. */
    async function calls(endpoint: string[], extraEnv: Record<string, string> = {}): Promise<string[][]> {
      const name = `0000000100000000000000${(0x10 + ++n).toString(16).toUpperCase()}`;
      const { pgwal, data } = pgWalWith(name, 3);
      const env = (out: string) => cleanEnv({ ...MOTO_ENV, ...extraEnv, BC_LOADED: out, NODE_EXTRA_CA_CERTS: undefined });
      const url = [...endpoint, 's3://lazy/pg', 'srv'];
      const traced = async (bin: string, args: string[], code: number): Promise<string[]> => {
        const { preload, out } = loadTrace();
        const r = await runProcess(process.execPath, ['-r', preload, join(ROOT, 'bin', bin), ...url, ...args], { env: env(out) });
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: '' });
        return readFileSync(out, 'utf8').split('\n');
      };
      const dest = join(pgwal, 'RECOVERYXLOG');
      const loaded = [
        await traced('barman-cloud-wal-archive', [join(pgwal, name)], 0),
        await traced('barman-cloud-wal-restore', [name, dest], 0),
        await traced('barman-cloud-wal-restore', ['000000010000000000000009', dest], 1),
      ];
      expect(sha(readFileSync(dest))).toBe(sha(data));
      return loaded;
    }
    const tlsModules = (loaded: string[]) => loaded.filter((m) => /^NativeModule (tls|https)$/.test(m));
    const fsPromises = (loaded: string[]) => loaded.filter((m) => /^NativeModule (internal\/)?fs\/promises$/.test(m));

    it('over plain HTTP, WAL calls load neither node:tls nor node:https, and wal-archive no node:fs/promises', async () => {
      // AWS_CA_BUNDLE set, as on hosts that export it for every tool: a CA is for TLS only.
      const [archive, restore, missing] = await calls(['--endpoint-url', plain.url], { AWS_CA_BUNDLE: ca.caFile });
      for (const loaded of [archive, restore, missing]) {
        expect(loaded).toContain('NativeModule net'); // the trace works
        expect(tlsModules(loaded)).toEqual([]);
      }
      // wal-restore loads it before its flags change whether the WAL is found or not (writeFileAtomic
      // uses it): the trace sees it, so its absence from wal-archive means something
      expect(fsPromises(restore)).not.toEqual([]);
      expect(fsPromises(missing)).not.toEqual([]);
      expect(fsPromises(archive)).toEqual([]);
    }, 60_000);

    it("Node's modules a WAL call loads anyway load before its V8 flags change (Node's own code cache is refused after)", async () => {
      // setFlagsFromString is why node:v8 is loaded: what comes after it is compiled from source.
      const [archive, restore, missing] = await calls(['--endpoint-url', plain.url]);
      for (const loaded of [archive, restore, missing]) {
        const v8 = loaded.indexOf('NativeModule v8');
        expect(v8).toBeGreaterThan(0);
        const after = ['net', 'crypto', 'os', 'vm', 'module', 'timers/promises'].filter((m) => !(loaded.indexOf(`NativeModule ${m}`) < v8));
        expect(after).toEqual([]);
      }
      const restoreV8 = restore.indexOf('NativeModule v8');
      expect(restore.indexOf('NativeModule fs/promises')).toBeGreaterThan(-1);
      expect(restore.indexOf('NativeModule fs/promises')).toBeLessThan(restoreV8);
    }, 60_000);

    it('over HTTPS with --endpoint-ca, the deferred node:tls loads on use', async () => {
      for (const loaded of await calls(['--endpoint-url', tls.url, '--endpoint-ca', ca.caFile])) {
        expect(loaded).toContain('NativeModule tls');
      }
    }, 60_000);
  });

  it('a one-shot S3 call (moto) loads no node:http or node:https: the lean client speaks HTTP/1.1 itself', async () => {
    const moto = await startMoto();
    try {
      const bucket = `loads-${process.pid}`;
      await createS3Bucket(moto.url, bucket);
      const name = '000000010000000000000005';
      const { pgwal, data } = pgWalWith(name, 5);
      const url = ['--endpoint-url', moto.url, `s3://${bucket}/p`, 'srv'];
      const dest = join(work, `restored-${n}`);
      const calls = [
        ['barman-cloud-wal-archive', '--lz4', ...url, join(pgwal, name)],
        ['barman-cloud-wal-restore', ...url, name, dest],
      ];
      const http: string[][] = [];
      for (const [bin, ...args] of calls) {
        const { preload, out } = loadTrace();
        const r = await runProcess(process.execPath, ['-r', preload, join(ROOT, 'bin', bin!), ...args], { env: cleanEnv({ ...MOTO_ENV, BC_LOADED: out }) });
        expect(r.code, r.stderr).toBe(0);
        const loaded = readFileSync(out, 'utf8').split('\n');
        expect(loaded).toContain('NativeModule net'); // the trace works, and the call went out over a socket
        http.push(loaded.filter((m) => /^NativeModule (https?|_http_\w+)$/.test(m)));
      }
      expect(sha(readFileSync(dest))).toBe(sha(data));
      expect(http).toEqual([[], []]);
    } finally {
      await moto.stop();
    }
  }, 60_000);

  it('a usage error is still commander\'s: one message, exit 3', async () => {
    const r = await runProcess(process.execPath, [join(ROOT, 'bin', 'barman-cloud-wal-archive'), '--no-such-flag', 's3://b', 'srv', 'f'], { env: cleanEnv() });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^usage: barman-cloud-wal-archive [^]*\nbarman-cloud-wal-archive: error: unrecognized arguments: --no-such-flag\n$/);
  });
});

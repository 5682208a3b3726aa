// Encrypted WAL through the real executables on the directory store (issue #16): every codec
// composed with age (Debian's `age -d` + the codec's own program give the segment back), the
// environment variables, the refusal to mix plain and encrypted WAL (and the flag that allows a
// switch), key rotation, an already archived encrypted copy, and a plain WAL call that loads no
// encryption code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { ROOT } from '../helpers/servers.ts';
import { walLike } from '../fixtures/wal-like.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const tools = ['age', 'age-keygen', 'gzip', 'bzip2', 'xz', 'zstd', 'lz4'];
const missing = tools.filter((t) => spawnSync(t, ['--version']).error !== undefined);
if (missing.length && process.env.CI === 'true') throw new Error(`missing in CI: ${missing.join(', ')}`);

const SEG = '000000010000000000000001';
const SEG2 = '000000010000000000000002';

describe.skipIf(missing.length > 0)('encrypted WAL on the directory store', () => {
  let work: string;
  let store: string;
  const key = (name: string) => join(work, name);
  const seg = withLongPageHeader(walLike(1 << 20, 7), SEG);
  const seg2 = withLongPageHeader(walLike(1 << 20, 8), SEG2);

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bc-age-wal-'));
    store = join(work, 'store');
    mkdirSync(join(work, 'pg_wal'));
    mkdirSync(store);
    writeFileSync(join(work, 'pg_wal', SEG), seg);
    writeFileSync(join(work, 'pg_wal', SEG2), seg2);
    for (const k of ['old', 'new']) {
      execFileSync('age-keygen', ['-o', key(`${k}.key`)], { stdio: 'ignore' });
      writeFileSync(key(`${k}.pub`), execFileSync('age-keygen', ['-y', key(`${k}.key`)]));
    }
    writeFileSync(key('both.key'), readFileSync(key('new.key'), 'utf8') + readFileSync(key('old.key'), 'utf8'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const archive = (server: string, args: string[], file = SEG, env = {}) =>
    runBin('barman-cloud-wal-archive', [...args, `file://${store}`, server, join(work, 'pg_wal', file)], { env: cleanEnv(env) });
  const restore = (server: string, args: string[], dest: string, file = SEG, env = {}) =>
    runBin('barman-cloud-wal-restore', [...args, `file://${store}`, server, file, dest], { env: cleanEnv(env) });

  it.each([
    ['none', [], '', null],
    ['gzip', ['-z'], '.gz', 'gzip'],
    ['bzip2', ['-j'], '.bz2', 'bzip2'],
    ['xz', ['--xz'], '.xz', 'xz'],
    ['zstd', ['--zstd'], '.zst', 'zstd'],
    ['lz4', ['--lz4'], '.lz4', 'lz4'],
    ['snappy', ['--snappy'], '.snappy', null],
  ] as const)('%s: stored as <name>%s.age, read back by age -d | the codec program and by wal-restore', async (codec, flags, suffix, program) => {
    const server = `codec-${codec}`;
    const a = await archive(server, [...flags, '--encryption-recipient-file', key('old.pub')]);
    expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: '' });
    const object = join(store, server, 'wals', '0000000100000000', `${SEG}${suffix}.age`);
    expect(readdirSync(join(store, server, 'wals', '0000000100000000'))).toEqual([`${SEG}${suffix}.age`]);
    const stored = readFileSync(object);
    expect(stored.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expect(stored.includes(seg.subarray(4096, 4096 + 64))).toBe(false);
    if (program) {
      const plain = execFileSync('sh', ['-c', `age -d -i "$1" "$2" | ${program} -d -c`, 'sh', key('old.key'), object], { maxBuffer: 64 << 20 });
      expect(plain.equals(seg)).toBe(true);
    } else if (codec === 'none') {
      expect(execFileSync('age', ['-d', '-i', key('old.key'), object]).equals(seg)).toBe(true);
    }
    const dest = join(work, `dest-${codec}`);
    const r = await restore(server, ['--encryption-identity-file', key('old.key')], dest);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(dest).equals(seg)).toBe(true);
  });

  it('takes both key files from BARMAN_CLOUD_ENCRYPTION_*_FILE', async () => {
    const a = await archive('env', ['--lz4'], SEG, { BARMAN_CLOUD_ENCRYPTION_RECIPIENT_FILE: key('old.pub') });
    expect(a.code).toBe(0);
    expect(existsSync(join(store, 'env', 'wals', '0000000100000000', `${SEG}.lz4.age`))).toBe(true);
    const dest = join(work, 'dest-env');
    expect((await restore('env', [], dest, SEG, { BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE: key('old.key') })).code).toBe(0);
    expect(readFileSync(dest).equals(seg)).toBe(true);
  });

  it('refuses to mix plain and encrypted WAL unless --allow-mixed-encryption, which switches the record', async () => {
    expect((await archive('mix', ['--lz4', '--encryption-recipient-file', key('old.pub')])).code).toBe(0);
    expect(readFileSync(join(store, 'mix', 'wal-encryption'), 'utf8')).toBe('age\n');
    const plain = await archive('mix', ['--lz4'], SEG2);
    expect(plain.code).toBe(1);
    expect(plain.stderr.trim().split('\n')).toHaveLength(1);
    expect(plain.stderr).toMatch(/holds age-encrypted WAL and this WAL file would be plain \(unencrypted\); refusing to mix them/);
    expect(readdirSync(join(store, 'mix', 'wals', '0000000100000000'))).toEqual([`${SEG}.lz4.age`]);
    const allowed = await archive('mix', ['--lz4', '--allow-mixed-encryption'], SEG2);
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toMatch(/WARNING: Switching the WAL archive of server mix from age-encrypted to plain/);
    expect(readFileSync(join(store, 'mix', 'wal-encryption'), 'utf8')).toBe('none\n');
    // now the other way round is refused
    expect((await archive('mix', ['--lz4', '--encryption-recipient-file', key('old.pub')], SEG2)).code).toBe(1);

    // A plain archive has no record (barman's layout unchanged): the WAL already there decides.
    expect((await archive('legacy', ['--lz4'])).code).toBe(0);
    expect(existsSync(join(store, 'legacy', 'wal-encryption'))).toBe(false);
    const enc = await archive('legacy', ['--lz4', '--encryption-recipient-file', key('old.pub')], SEG2);
    expect(enc.code).toBe(1);
    expect(enc.stderr).toMatch(/holds plain \(unencrypted\) WAL and this WAL file would be age-encrypted/);
  });

  it('rotation: new objects for the new recipient; the old and new identities together read both', async () => {
    expect((await archive('rot', ['--zstd', '--encryption-recipient-file', key('old.pub')], SEG)).code).toBe(0);
    expect((await archive('rot', ['--zstd', '--encryption-recipient-file', key('new.pub')], SEG2)).code).toBe(0);
    for (const [file, data] of [[SEG, seg], [SEG2, seg2]] as const) {
      const dest = join(work, `rot-${file}`);
      expect((await restore('rot', ['--encryption-identity-file', key('both.key')], dest, file)).code).toBe(0);
      expect(readFileSync(dest).equals(data)).toBe(true);
    }
    // the new key alone no longer reads the old object: exit 1, nothing written
    const dir = join(work, 'rot-new-only');
    mkdirSync(dir);
    const r = await restore('rot', ['--encryption-identity-file', key('new.key')], join(dir, SEG), SEG);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\.zst\.age is encrypted for none of the identities in .*new\.key/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an encrypted copy already archived is compared with an identity, refused without one', async () => {
    const args = ['--lz4', '--encryption-recipient-file', key('old.pub')];
    expect((await archive('again', args)).code).toBe(0);
    const blind = await archive('again', args);
    expect(blind.code).toBe(1);
    expect(blind.stderr).toMatch(/cannot be compared without an identity: give --encryption-identity-file/);
    const same = await archive('again', [...args, '--encryption-identity-file', key('old.key')]);
    expect({ code: same.code, stderr: same.stderr }).toEqual({ code: 0, stderr: '' });
    writeFileSync(join(work, 'pg_wal', SEG), seg2);
    try {
      const other = await archive('again', [...args, '--encryption-identity-file', key('old.key')]);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/already archived with different content/);
    } finally {
      writeFileSync(join(work, 'pg_wal', SEG), seg);
    }
  });

  it('WAL calls, plain or encrypted, load no age package: the WAL bundle holds our age code and its bech32 (@scure/base, inlined by scripts/build.mjs)', async () => {
    const traced = async (fn: (env: Record<string, string>, nodeArgs: string[]) => Promise<unknown>) => {
      const trace = join(work, `trace-${Math.random().toString(16).slice(2)}`);
      writeFileSync(trace, '');
      await fn({ BC_TRACE_MODULES: trace }, ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')]);
      return readFileSync(trace, 'utf8');
    };
    // Loading any of these packages would start the ES module loader for a few bech32 functions,
    // and age-encryption's import was once most of the cost of an encrypted WAL call.
    const PACKAGES = /age-encryption|@noble|@scure/;
    const plainArchive = await traced((env, nodeArgs) => runBin('barman-cloud-wal-archive', ['--lz4', `file://${store}`, 'lean', join(work, 'pg_wal', SEG)], { env: cleanEnv(env), nodeArgs }));
    const plainRestore = await traced((env, nodeArgs) => runBin('barman-cloud-wal-restore', [`file://${store}`, 'lean', SEG, join(work, 'lean-dest')], { env: cleanEnv(env), nodeArgs }));
    expect(existsSync(join(work, 'lean-dest'))).toBe(true);
    const encRestore = await traced((env, nodeArgs) => runBin('barman-cloud-wal-restore', ['--encryption-identity-file', key('old.key'), `file://${store}`, 'codec-lz4', SEG, join(work, 'lean-dest2')], { env: cleanEnv(env), nodeArgs }));
    expect(existsSync(join(work, 'lean-dest2'))).toBe(true);
    const encArchive = await traced((env, nodeArgs) => runBin('barman-cloud-wal-archive', ['--lz4', '--encryption-recipient-file', key('old.pub'), `file://${store}`, 'lean-enc', join(work, 'pg_wal', SEG)], { env: cleanEnv(env), nodeArgs }));
    expect(existsSync(join(store, 'lean-enc', 'wals', '0000000100000000', `${SEG}.lz4.age`))).toBe(true);
    // the trace works: every call shows the launcher (the WAL bundle itself is compiled by vm, not required)
    for (const t of [plainArchive, plainRestore, encRestore, encArchive]) {
      expect(t).toMatch(/dist\/cli\/launch\.cjs/);
      expect(t).not.toMatch(PACKAGES);
    }
  });
});

// With an identity, objects stored unencrypted are refused unless --allow-unencrypted
// (docs/encryption.md#plain-objects): whoever can write the bucket cannot forge an age object for
// our recipients, but could plant a plain one in its place. Directory store, real executables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';
import { segmentFor, walSegmentBytes } from '../helpers/wal-segment.ts';

const missing = ['age-keygen'].filter((t) => spawnSync(t, ['--version']).error !== undefined);
if (missing.length && process.env.CI === 'true') throw new Error(`missing in CI: ${missing.join(', ')}`);

const SEG = '000000010000000000000001';
const BACKUP_ID = '20261129T050418';

describe.skipIf(missing.length > 0)('plain objects read with an identity', () => {
  let work: string;
  let store: string;
  const file = (name: string) => join(work, name);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'bc-age-plain-'));
    store = join(work, 'store');
    mkdirSync(join(work, 'pg_wal'), { recursive: true });
    execFileSync('age-keygen', ['-o', file('id.key')], { stdio: 'ignore' });
    writeFileSync(file('id.pub'), execFileSync('age-keygen', ['-y', file('id.key')]));
    // a backup stored plain (as barman or an older run would have written it)
    const dir = join(store, 'srv', 'base', BACKUP_ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'backup.info'), handMadeDone());
    writeFileSync(join(dir, 'data.tar'), await tarOf([{ name: '.', type: 'directory' }, { name: './PG_VERSION', data: 'planted\n' }]));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('wal-restore: a plain segment planted in place of the encrypted one is refused (exit 4, no file); --allow-unencrypted reads it', async () => {
    const real = segmentFor(SEG);
    writeFileSync(file(`pg_wal/${SEG}`), real);
    const a = await runBin('barman-cloud-wal-archive', ['--encryption-recipient-file', file('id.pub'), `file://${store}`, 'srv', file(`pg_wal/${SEG}`)], { env: cleanEnv() });
    expect(a.code, a.stderr).toBe(0);
    const dir = join(store, 'srv', 'wals', '0000000100000000');
    unlinkSync(join(dir, `${SEG}.age`));
    const planted = segmentFor(SEG); // another sound segment under the same name
    writeFileSync(join(dir, SEG), planted);

    const dest = join(work, 'restored');
    mkdirSync(dest);
    const r = await runBin('barman-cloud-wal-restore', ['--encryption-identity-file', file('id.key'), `file://${store}`, 'srv', SEG, join(dest, SEG)], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/WAL object .*000000010000000000000001 is not encrypted, and an identity was given: refused/);
    expect(readdirSync(dest)).toEqual([]);

    const allowed = await runBin('barman-cloud-wal-restore', ['--encryption-identity-file', file('id.key'), '--allow-unencrypted', `file://${store}`, 'srv', SEG, join(dest, SEG)], { env: cleanEnv() });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(readFileSync(join(dest, SEG)).equals(planted)).toBe(true);
  });

  it('restore: a backup with a plain part is refused before anything is written; --allow-unencrypted restores it and carries the flag into restore_command', async () => {
    const dest = join(work, 'pgdata');
    const r = await runBin('barman-cloud-restore', ['--encryption-identity-file', file('id.key'), `file://${store}`, 'srv', BACKUP_ID, dest], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/part data\.tar of backup 20261129T050418 is not encrypted, and an identity was given: refused/);
    expect(existsSync(dest)).toBe(false);

    const ok = await runBin('barman-cloud-restore', ['--encryption-identity-file', file('id.key'), '--allow-unencrypted', '--write-recovery-conf', `file://${store}`, 'srv', BACKUP_ID, dest], { env: cleanEnv() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(readFileSync(join(dest, 'PG_VERSION'), 'utf8')).toBe('planted\n');
    const conf = readFileSync(join(dest, 'postgresql.auto.conf'), 'utf8');
    expect(conf).toMatch(/^restore_command = '.*--encryption-identity-file/m);
    expect(conf).toMatch(/^restore_command = '.*--allow-unencrypted/m);
  });

  it('verify: a plain part is a problem with an identity (unencrypted-part), not with --allow-unencrypted', async () => {
    const v = await runBin('barman-cloud', ['verify', '--format', 'json', '--encryption-identity-file', file('id.key'), `file://${store}`, 'srv', BACKUP_ID], { env: cleanEnv() });
    const kinds = (JSON.parse(v.stdout) as { backups: { problems: { kind: string }[] }[] }).backups.flatMap((b) => b.problems.map((p) => p.kind));
    expect(kinds).toContain('unencrypted-part');
    const allowed = await runBin('barman-cloud', ['verify', '--format', 'json', '--allow-unencrypted', '--encryption-identity-file', file('id.key'), `file://${store}`, 'srv', BACKUP_ID], { env: cleanEnv() });
    const allowedKinds = (JSON.parse(allowed.stdout) as { backups: { problems: { kind: string }[] }[] }).backups.flatMap((b) => b.problems.map((p) => p.kind));
    expect(allowedKinds).not.toContain('unencrypted-part');
  });

  it('verify: plain WAL segments and history files are problems with an identity (unencrypted-wal), not with --allow-unencrypted', async () => {
    // a backup whose WAL (…06) was archived encrypted, and plain objects planted beside it
    const dir = join(store, 'walsrv', 'base', BACKUP_ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'backup.info'), handMadeDone());
    writeFileSync(join(dir, 'data.tar'), await tarOf([{ name: '.', type: 'directory' }, { name: './PG_VERSION', data: '15\n' }]));
    const seg6 = '000000010000000000000006';
    const seg7 = '000000010000000000000007';
    writeFileSync(file(`pg_wal/${seg6}`), walSegmentBytes());
    const a = await runBin('barman-cloud-wal-archive', ['--encryption-recipient-file', file('id.pub'), `file://${store}`, 'walsrv', file(`pg_wal/${seg6}`)], { env: cleanEnv() });
    expect(a.code, a.stderr).toBe(0);
    const wals = join(store, 'walsrv', 'wals', '0000000100000000');
    writeFileSync(join(wals, seg7), walSegmentBytes());
    writeFileSync(join(store, 'walsrv', 'wals', '00000002.history'), '1\t0/7000000\tno recovery target specified\n');

    const run = async (extra: string[]) => {
      const v = await runBin('barman-cloud', ['verify', '--format', 'json', ...extra, '--encryption-identity-file', file('id.key'), `file://${store}`, 'walsrv', BACKUP_ID], { env: cleanEnv() });
      const report = JSON.parse(v.stdout) as { wal: { problems: { kind: string; segment?: string; message: string }[] } };
      return { code: v.code, plain: report.wal.problems.filter((p) => p.kind === 'unencrypted-wal') };
    };
    const v = await run([]);
    expect(v.code).not.toBe(0);
    expect(v.plain.map((p) => p.segment).sort()).toEqual([seg7, '00000002.history']);
    expect(v.plain.map((p) => p.message).join('\n')).toMatch(/WAL object 000000010000000000000007 is not encrypted, and an identity was given/);
    const allowed = await run(['--allow-unencrypted']);
    expect(allowed.plain).toEqual([]);
  });
});

// Whoever can write the bucket cannot forge an age object, but can move authentic ones: put a part
// of another encrypted backup (same recipients) in place of one of ours, and delete parts.json,
// which is plain. The backup_manifest inside the encrypted data archive still describes every
// file, so restore checks against it whenever the parts are encrypted (docs/encryption.md). Real
// PostgreSQL 15, our backup and restore, the directory store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { requireTool, postgresAvailable, startCluster, toolCommand, pgTempDir, type PgCluster } from '../helpers/postgres.ts';

const haveAge = spawnSync('age-keygen', ['--version']).status === 0;
const skip = requireTool('PostgreSQL 15', postgresAvailable()) || requireTool('age-keygen (Debian package age)', haveAge);

describe.skipIf(skip)('an encrypted backup with a part of another backup in its place', () => {
  let work: string;
  let primary: PgCluster;
  const url = () => [`file://${join(work, 'store')}`, 'srv'];
  const key = (name: string) => join(work, name);

  beforeAll(async () => {
    work = pgTempDir('bc-part-swap-');
    execFileSync('age-keygen', ['-o', key('id.key')], { stdio: 'ignore' });
    writeFileSync(key('id.pub'), execFileSync('age-keygen', ['-y', key('id.key')]));
    mkdirSync(join(work, 'store'));
    if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:postgres', work]);
    primary = await startCluster({
      // WAL under a server of its own: the backups run as root, the archiver as postgres
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', [`file://${join(work, 'store')}`, 'wal'])} %p` },
    });
    await primary.psql("CREATE TABLE t (id int primary key, note text); INSERT INTO t SELECT g, 'first ' || g FROM generate_series(1, 20000) g;");
  }, 120_000);

  afterAll(async () => {
    await primary?.remove();
  });

  it('restore refuses it (exit 4, naming a file) and verify reports it, even without parts.json and without the last part', async () => {
    const env = cleanEnv({ ...primary.env });
    const backup = async () => {
      const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-S', '1MB', '--encryption-recipient-file', key('id.pub'), ...url()], { env, timeoutMs: 120_000 });
      expect(b.code, b.stderr).toBe(0);
    };
    await backup();
    await primary.psql("UPDATE t SET note = 'second ' || id; CHECKPOINT;");
    await backup();
    const base = join(work, 'store', 'srv', 'base');
    const [first, second] = readdirSync(base).sort();
    // every part of the data archive but the last (which holds backup_manifest) from the second backup
    const parts = readdirSync(join(base, first!)).filter((n) => n.startsWith('data')).sort();
    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts.slice(0, -1)) {
      expect(existsSync(join(base, second!, part))).toBe(true);
      copyFileSync(join(base, second!, part), join(base, first!, part));
    }
    unlinkSync(join(base, first!, 'parts.json'));

    const dest = join(work, 'restored');
    const r = await runBin('barman-cloud-restore', ['--encryption-identity-file', key('id.key'), ...url(), first!, dest], { env, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/backup_manifest/);
    rmSync(dest, { recursive: true, force: true });

    // verify finds the swap through the manifest too; then, with the part that holds the manifest
    // deleted as well (no gap in the numbering, no parts.json to miss it), both still refuse
    const verify = async () => {
      const v = await runBin('barman-cloud', ['verify', '--format', 'json', '--encryption-identity-file', key('id.key'), ...url(), first!], { env });
      return (JSON.parse(v.stdout) as { backups: { problems: { kind: string }[] }[] }).backups.flatMap((b) => b.problems.map((p) => p.kind));
    };
    expect((await verify()).filter((k) => /^(file-size-mismatch|file-checksum-mismatch|missing-file|unlisted-file)$/.test(k)).length).toBeGreaterThan(0);
    unlinkSync(join(base, first!, parts.at(-1)!));
    expect(await verify()).toContain('invalid-manifest');
    const short = await runBin('barman-cloud-restore', ['--encryption-identity-file', key('id.key'), ...url(), first!, dest], { env, timeoutMs: 120_000 });
    expect(short.code, short.stderr).toBe(4);
    expect(short.stderr).toMatch(/backup_manifest is missing/);
    rmSync(dest, { recursive: true, force: true });
  }, 300_000);
});

// Proves the PostgreSQL harness (test/helpers/postgres.ts) with a plain `cp` archive_command and
// restore_command (not our tool): archiving a switched segment byte for byte, pgbench, a base
// backup, archive recovery to a new timeline, and that the postgres user can run our executables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/servers.ts';
import {
  asPostgres, baseBackup, initCluster, nodePath, pgTempDir, postgresAvailable, recoveryCluster, requireTool, shellQuote,
  toolCommand, toolRootForPostgres, type PgCluster,
} from '../helpers/postgres.ts';

const SKIP = requireTool('PostgreSQL 15 (initdb, pg_ctl, pg_basebackup, psql, pgbench)', postgresAvailable());
const IS_ROOT = process.getuid?.() === 0;
const MIB = 1024 * 1024;

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}


describe.skipIf(SKIP)('PostgreSQL harness', () => {
  let primary: PgCluster;
  let restored: PgCluster | undefined;
  let archiveDir: string;
  let backupDir: string;

  beforeAll(async () => {
    archiveDir = pgTempDir('bc-pgarchive-');
    const dst = `${shellQuote(archiveDir)}/%f`;
    primary = await initCluster({
      conf: { archive_mode: 'on', archive_command: `test ! -f ${dst} && cp %p ${dst}`, wal_level: 'replica' },
    });
    await primary.start();
  });

  // PostgreSQL is stopped first; a suite with object-store servers stops those after this.
  afterAll(async () => {
    await restored?.remove();
    await primary?.remove();
  });

  it('starts on a private socket and runs SQL', async () => {
    expect(primary.running).toBe(true);
    expect(primary.version).toBe(15);
    expect(await primary.psql('SHOW data_checksums')).toBe('on');
    expect(await primary.psql("SHOW listen_addresses")).toBe('');
    expect(await primary.psql('SHOW port')).toBe(String(primary.port));
    expect(existsSync(join(primary.socketDir, `.s.PGSQL.${primary.port}`))).toBe(true);
    await primary.psql(
      'CREATE TABLE harness (id int PRIMARY KEY, note text);\n' +
        "INSERT INTO harness SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
    );
    expect(await primary.psql('SELECT count(*) FROM harness')).toBe('100');
  });

  it('switchWal() closes a segment that archive_command copies byte for byte', async () => {
    const wal = await primary.switchWal();
    expect(wal).toMatch(/^00000001[0-9A-F]{16}$/);
    await primary.waitForArchived(wal);
    const archived = join(archiveDir, wal);
    expect(statSync(archived).size).toBe(16 * MIB);
    expect(sha256(archived)).toBe(sha256(join(primary.dataDir, 'pg_wal', wal)));
    // A second switch right away still closes a new segment (a record is written first).
    const next = await primary.switchWal();
    expect(next > wal).toBe(true);
    await primary.waitForArchived(next);
  });

  it('pgbench -i -s 1 loads its tables', async () => {
    await primary.pgbench(['-i', '-s', '1', '-q']);
    expect(await primary.psql('SELECT count(*) FROM pgbench_accounts')).toBe('100000');
  });

  it('a base backup recovers from the archive and promotes to timeline 2', async () => {
    backupDir = await baseBackup(primary);
    expect(existsSync(join(backupDir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(backupDir, 'backup_label'))).toBe(true);
    // Rows written after the backup only reach the restored cluster through restore_command.
    await primary.psql("INSERT INTO harness SELECT g, 'late ' || g FROM generate_series(101, 150) g;");
    const last = await primary.switchWal();
    await primary.waitForArchived(last);

    restored = await recoveryCluster(backupDir, {
      restoreCommand: `cp ${shellQuote(archiveDir)}/%f %p`,
      signal: 'recovery',
      conf: { recovery_target_action: 'promote' },
    });
    expect(restored.port).not.toBe(primary.port);
    expect(existsSync(join(backupDir, 'recovery.signal'))).toBe(true);
    if (IS_ROOT) expect(statSync(backupDir).uid).not.toBe(0);
    expect(statSync(backupDir).mode & 0o777).toBe(0o700);

    await restored.start();
    await restored.waitFor('SELECT pg_is_in_recovery()', 'f', 30_000);
    expect(await restored.psql('SELECT count(*) FROM harness')).toBe('150');
    expect(await restored.psql('SELECT count(*) FROM pgbench_accounts')).toBe('100000');
    expect(await restored.psql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('2');
    expect(restored.logTail(200)).toMatch(/restored log file "00000001[0-9A-F]{16}" from archive/);
    // It inherited archive_command and archives the new timeline's history file.
    await restored.waitForArchived('00000002.history');
    expect(existsSync(join(archiveDir, '00000002.history'))).toBe(true);
    expect(await primary.psql('SELECT pg_is_in_recovery()')).toBe('f');
  });

  it('stop() and start() again keep the data', async () => {
    await restored!.stop();
    expect(restored!.running).toBe(false);
    await restored!.start();
    expect(await restored!.psql('SELECT count(*) FROM harness')).toBe('150');
  });

  it('initCluster() honours walSegmentSizeMb and dataChecksums: false', async () => {
    const small = await initCluster({ walSegmentSizeMb: 1, dataChecksums: false });
    try {
      await small.start();
      expect(await small.psql('SHOW wal_segment_size')).toBe('1MB');
      expect(await small.psql('SHOW data_checksums')).toBe('off');
    } finally {
      await small.remove();
    }
    expect(existsSync(small.dataDir)).toBe(false);
  });

  it('start() failures carry the server log', async () => {
    const broken = await initCluster({ conf: { shared_buffers: 'not-a-size' } });
    try {
      await expect(broken.start()).rejects.toThrow(/did not start[\s\S]*shared_buffers/);
      expect(broken.running).toBe(false);
    } finally {
      await broken.remove();
    }
  });

  describe('our executables as the postgres user', () => {
    beforeAll(() => {
      if (!existsSync(join(ROOT, 'dist', 'cli', 'run.js'))) {
        execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'pipe' });
      }
    });

    it('toolRootForPostgres() and nodePath() run barman-cloud-wal-archive --version', () => {
      const root = toolRootForPostgres();
      expect(toolRootForPostgres()).toBe(root);
      expect(nodePath()).toBe(process.execPath);
      const r = asPostgres([nodePath(), join(root, 'bin', 'barman-cloud-wal-archive'), '--version']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('barman-cloud-wal-archive 3.17.0\n');
      const viaShell = asPostgres(['sh', '-c', `${toolCommand('barman-cloud-wal-archive')} --version`]);
      expect(viaShell.stdout).toBe('barman-cloud-wal-archive 3.17.0\n');
    });

    it.skipIf(!IS_ROOT)('the readable copy (used when the checkout is private) works too', () => {
      const copy = toolRootForPostgres({ forceCopy: true });
      expect(copy).not.toBe(ROOT);
      expect(copy.startsWith(tmpdir())).toBe(true);
      const r = asPostgres([nodePath(), join(copy, 'bin', 'barman-cloud-wal-archive'), '--version']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('barman-cloud-wal-archive 3.17.0\n');
      // node_modules is hard-linked, not copied, when the file system allows it.
      const dep = join('node_modules', 'commander', 'package.json');
      expect(statSync(join(copy, dep)).ino).toBe(statSync(join(ROOT, dep)).ino);
    });
  });
});

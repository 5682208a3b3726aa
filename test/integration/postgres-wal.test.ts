// A real PostgreSQL 15 archiving through our wal-archive (every codec, and parallel mode) under
// pgbench load, and recovering through our wal-restore (with and without prefetch) across a
// timeline switch after a promotion.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, mkdtempSync, rmSync, chmodSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import {
  requireTool, postgresAvailable, startCluster, baseBackup, recoveryCluster, toolCommand, pgTempDir, shellQuote,
  type PgCluster,
} from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(skip)('PostgreSQL archive_command / restore_command with our tools', () => {
  let moto: ServerHandle;
  let primary: PgCluster;
  let copies: string; // every segment PostgreSQL handed to archive_command, copied aside
  let spool: string;
  const clusters: PgCluster[] = [];
  const url = () => ['--endpoint-url', moto.url, 's3://pgwal/cluster', 'srv'];
  // The default spool root of a cluster's tools (they run as the owner of the data directory).
  const defaultSpool = (dataDir: string) => join(dataDir, 'pg_wal', `.barman-cloud-spool-${statSync(primary.dataDir).uid}`);
  const serverEnv = () => ({ ...MOTO_ENV, HOME: '/tmp' });

  // archive_command: keep a copy for the byte-for-byte check, then archive with our tool.
  const archiveCommand = (flags: string[]) =>
    `cp %p ${shellQuote(copies)}/%f && ${toolCommand('barman-cloud-wal-archive', [...flags, ...url()])} %p`;

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'pgwal');
    copies = pgTempDir('bc-walcopies-');
    spool = pgTempDir('bc-walspool-');
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: archiveCommand([]), archive_timeout: '0' },
      serverEnv: serverEnv(),
    });
    clusters.push(primary);
  });

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    await moto?.stop();
  });

  it('archives every segment under pgbench load with every codec and in parallel mode', async () => {
    await primary.pgbench(['-i', '-s', '2', '-q']);
    const modes: string[][] = [
      [], ['-z'], ['-j'], ['--xz'], ['--snappy'], ['--zstd'], ['--lz4'],
      ['--lz4', '--max-parallel', '4', '--spool-dir', spool],
      // The default spool: pg_wal/.barman-cloud-spool-<uid> (src/wal/spool.ts).
      ['--lz4', '--max-parallel', '4'],
    ];
    let last = '';
    for (const flags of modes) {
      primary.setConf({ archive_command: archiveCommand(flags) });
      await primary.reload();
      // Load and switches at the same time: several segments pile up as .ready.
      const load = primary.pgbench(['-c', '4', '-T', '1', '-n']);
      for (let i = 0; i < 3; i++) last = await primary.switchWal();
      await load;
      last = await primary.switchWal();
      await primary.waitForArchived(last, 60_000);
    }
    const archived = readdirSync(copies).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    expect(archived.length).toBeGreaterThan(modes.length * 3);
    // Every segment comes back byte-identical through our wal-restore, whatever codec stored it.
    const out = mkdtempSync(join(tmpdir(), 'bc-walcheck-'));
    try {
      for (const name of archived) {
        const dest = join(out, name);
        const r = await runBin('barman-cloud-wal-restore', [...url(), name, dest], { env: cleanEnv(MOTO_ENV) });
        expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: '' });
        expect(sha(readFileSync(dest))).toBe(sha(readFileSync(join(copies, name))));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const failed = await primary.psql('SELECT failed_count FROM pg_stat_archiver');
    expect(Number(failed)).toBe(0);
    expect(existsSync(join(defaultSpool(primary.dataDir), 'archive'))).toBe(false); // the per-store level sits between
    expect(readdirSync(defaultSpool(primary.dataDir)).filter((d) => d !== 'names').length).toBe(1); // names: src/wal/spool.ts
  }, 300_000);

  it('recovers a base backup through wal-restore, with and without prefetch, across a promotion', async () => {
    primary.setConf({ archive_command: archiveCommand(['--lz4']) });
    await primary.reload();
    await primary.psql('CREATE TABLE IF NOT EXISTS t (id int primary key, phase text)');
    const base = await baseBackup(primary);
    // pg_basebackup leaves pg_wal's contents out, the default spool with them.
    expect(existsSync(defaultSpool(base))).toBe(false);
    await primary.psql("INSERT INTO t SELECT g, 'after-backup' FROM generate_series(1, 1000) g");
    await primary.pgbench(['-c', '2', '-T', '2', '-n']);
    await primary.psql("INSERT INTO t VALUES (1001, 'last on primary')");
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const expected = await primary.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts');

    // 1. Plain restore_command; promote: timeline 2, archived to the same archive.
    const copy1 = join(mkdtempSync(join(tmpdir(), 'bc-base1-')), 'data');
    await runCp(base, copy1);
    const r1 = await recoveryCluster(copy1, {
      restoreCommand: `${toolCommand('barman-cloud-wal-restore', url())} %f %p`,
      signal: 'recovery',
      conf: { recovery_target_action: 'promote', archive_command: archiveCommand(['--zstd']) },
      serverEnv: serverEnv(),
    });
    clusters.push(r1);
    await r1.start();
    await r1.waitFor('SELECT pg_is_in_recovery()', 'f', 120_000);
    expect(await r1.psql("SELECT count(*) FROM t WHERE phase = 'after-backup'")).toBe('1000');
    expect(await r1.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts')).toBe(expected);
    expect(await r1.psql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('2');
    // Life on timeline 2, archived by the promoted server.
    await r1.psql("INSERT INTO t VALUES (2001, 'on timeline 2')");
    await r1.waitForArchived(await r1.switchWal(), 60_000);
    await r1.waitForArchived('00000002.history', 60_000);

    // 2. The same base backup with prefetch follows the history file to timeline 2.
    const r2 = await recoveryCluster(base, {
      restoreCommand: `${toolCommand('barman-cloud-wal-restore', ['--parallel', '4', ...url()])} %f %p`,
      signal: 'recovery',
      conf: { recovery_target_action: 'promote', recovery_target_timeline: 'latest', archive_mode: 'off' },
      serverEnv: serverEnv(),
    });
    clusters.push(r2);
    await r2.start();
    await r2.waitFor('SELECT pg_is_in_recovery()', 'f', 120_000);
    expect(await r2.psql("SELECT phase FROM t WHERE id = 2001")).toBe('on timeline 2');
    expect(await r2.psql('SELECT count(*) FROM t')).toBe('1002');
    expect(await r2.psql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('3');
    // The prefetch really served segments: recovery logged restores, and the spool was used.
    expect(r2.logTail(400)).toMatch(/restored log file "000000020000000000000/);
    // With the default spool, beside %p in the recovering cluster's pg_wal.
    expect(readdirSync(defaultSpool(r2.dataDir)).filter((d) => d !== 'names').length).toBe(1);
  }, 300_000);
});

async function runCp(from: string, to: string): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  execFileSync('cp', ['-a', from, to]);
  chmodSync(to, 0o700);
}

// Base backups of a real PostgreSQL 15 with a tablespace, WAL archived by our wal-archive:
// our backup (none, gzip, lz4) to moto, the catalog commands, our restore with tablespace
// relocation, and the restored copy started through our wal-restore holding every committed row.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import {
  requireTool, postgresAvailable, startCluster, startRestoredCopy, toolCommand, pgTempDir, type PgCluster,
} from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());

describe.skipIf(skip)('backup and restore of PostgreSQL 15 with our tools', () => {
  let moto: ServerHandle;
  let primary: PgCluster;
  let tbsDir: string;
  const clusters: PgCluster[] = [];
  const url = () => ['--endpoint-url', moto.url, 's3://pgbackup/cluster', 'srv'];
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'pgbackup');
    tbsDir = pgTempDir('bc-tbs-');
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', ['--lz4', ...url()])} %p` },
      serverEnv: { ...MOTO_ENV },
    });
    clusters.push(primary);
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbsDir}'`);
    await primary.psql("CREATE TABLE t (id int primary key, phase text) TABLESPACE tbs1; INSERT INTO t SELECT g, 'before' FROM generate_series(1, 2000) g;");
    await primary.pgbench(['-i', '-s', '2', '-q']);
  }, 120_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    await moto?.stop();
  });

  it.each([['none', []], ['gzip', ['-z']], ['lz4', ['--lz4']]])('backup (%s) → list/show → restore → the copy starts with every row', async (codec, flags) => {
    // Writes during the backup.
    const load = primary.pgbench(['-c', '2', '-T', '3', '-n']);
    const b = await runBin('barman-cloud-backup', [...flags, '--immediate-checkpoint', '-n', `bk-${codec}`, '-J', '3', '--tags', 'env,test', 'owner,me', ...url()], { env: env(), timeoutMs: 120_000 });
    await load;
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    // Tags reach every tar and backup.info, as barman's (bucket lifecycle rules select by tag).
    const tagged = await openObjectStore({
      provider: 'aws-s3', bucket: 'pgbackup', retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    try {
      const objects: string[] = [];
      for await (const e of tagged.list('cluster/srv/base/')) if (e.kind === 'object') objects.push(e.key);
      const id = objects.map((k) => k.split('/')[3]!).sort().pop()!;
      const mine = objects.filter((k) => k.startsWith(`cluster/srv/base/${id}/`) && /\/(backup\.info|data\.tar[^/]*|\d+\.tar[^/]*)$/.test(k));
      expect(mine.some((k) => k.endsWith('/backup.info'))).toBe(true);
      for (const k of mine) expect([k, await tagged.getTags(k)]).toEqual([k, [['env', 'test'], ['owner', 'me']]]);
    } finally {
      await tagged.close();
    }

    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url()], { env: env() });
    expect(list.code).toBe(0);
    const backups = (JSON.parse(list.stdout) as { backups_list: Record<string, unknown>[] }).backups_list;
    const mine = backups.find((x) => x.backup_name === `bk-${codec}`)!;
    expect(mine).toMatchObject({ status: 'DONE', server_name: 'cloud', timeline: 1, systemid: expect.any(String) });
    expect(String(mine.end_time_iso)).toMatch(/[+-]\d\d:\d\d$/);
    const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...url(), `bk-${codec}`], { env: env() });
    expect(Object.keys(JSON.parse(show.stdout))).toEqual(['cloud']);

    // After the backup: more committed rows, then a WAL switch so they are archived.
    await primary.psql(`INSERT INTO t VALUES (${10000 + backups.length}, 'after ${codec}')`);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const expected = await primary.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts');
    const expectedT = await primary.psql('SELECT count(*) FROM t');

    const work = pgTempDir('bc-restore-');
    const dest = join(work, 'data');
    const tbsNew = join(work, 'tbs-relocated');
    const r = await runBin('barman-cloud-restore', ['--tablespace', `tbs1:${tbsNew}`, '--write-recovery-conf', ...url(), `bk-${codec}`, dest], { env: env(), timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readlinkSync(join(dest, 'pg_tblspc', String(JSON.parse(JSON.stringify(mine.tablespaces))[0][1])))).toBe(tbsNew);
    expect(readdirSync(tbsNew).some((n) => n.startsWith('PG_15_'))).toBe(true);
    expect(existsSync(join(dest, 'pg_wal'))).toBe(true);
    expect(existsSync(join(dest, 'backup_label'))).toBe(true);
    expect(readFileSync(join(dest, 'postgresql.auto.conf'), 'utf8')).toMatch(/restore_command = '.*barman-cloud-wal-restore.*%f %p'/);
    expect(existsSync(join(dest, 'recovery.signal'))).toBe(true);

    // Started with our wal-restore (the harness writes its own restore_command for the postgres user).
    const copy = await startRestoredCopy(dest, url(), { serverEnv: { ...MOTO_ENV }, clusters, tablespaceDirs: [tbsNew] });
    expect(await copy.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts')).toBe(expected);
    expect(await copy.psql('SELECT count(*) FROM t')).toBe(expectedT);
    await copy.remove();
    rmSync(work, { recursive: true, force: true });
  }, 300_000);

  it('refuses to restore into a non-empty directory and touches nothing', async () => {
    const work = mkdtempSync(join(tmpdir(), 'bc-nonempty-'));
    const dest = join(work, 'data');
    await import('node:fs').then((fs) => {
      fs.mkdirSync(dest);
      fs.writeFileSync(join(dest, 'keep.txt'), 'mine');
    });
    const r = await runBin('barman-cloud-restore', [...url(), 'latest', dest], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists and it is not empty/);
    expect(readdirSync(dest)).toEqual(['keep.txt']);
    rmSync(work, { recursive: true, force: true });
  });

  it('--compression-level sets the gzip level of the tars; a bad level is a usage error', async () => {
    const store = mkdtempSync(join(tmpdir(), 'bc-level-'));
    const sizes: Record<string, number> = {};
    for (const level of ['1', 'high']) {
      const b = await runBin('barman-cloud-backup', ['-z', '--compression-level', level, '--immediate-checkpoint', '-n', `lvl-${level}`, `file://${store}`, 'srv'], { env: env(), timeoutMs: 120_000 });
      expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
      const show = await runBin('barman-cloud-backup-show', ['--format', 'json', `file://${store}`, 'srv', `lvl-${level}`], { env: env() });
      const id = String((JSON.parse(show.stdout) as { cloud: { backup_id: string } }).cloud.backup_id);
      const tar = join(store, 'srv', 'base', id, 'data.tar.gz');
      // An ordinary gzip stream that gunzip and tar read.
      const members = execFileSync('sh', ['-c', 'gzip -dc "$1" | tar -tf -', 'sh', tar], { maxBuffer: 64 << 20 }).toString();
      expect(members).toMatch(/^\.\/PG_VERSION$/m);
      sizes[level] = (await import('node:fs')).statSync(tar).size;
    }
    // Level 1 gives up ratio for speed: the same data comes out larger than at level 9.
    expect(sizes['1']).toBeGreaterThan(sizes.high! * 1.02);
    const bad = await runBin('barman-cloud-backup', ['-z', '--compression-level', 'fast', `file://${store}`, 'srv'], { env: env() });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/argument --compression-level: invalid value: 'fast'/);
    rmSync(store, { recursive: true, force: true });
  }, 300_000);

  it('a backup that cannot reach PostgreSQL exits 1 and writes nothing', async () => {
    const r = await runBin('barman-cloud-backup', [...url()], { env: cleanEnv({ ...MOTO_ENV, PGHOST: '/nonexistent', PGPORT: '1' }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Cannot connect to postgres/);
  });
});

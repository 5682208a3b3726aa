// A base backup that fails midway (docs/format.md#backup, #backup-info-fields, #postgres-session): it exits 1 with one ERROR line
// (two, as barman, when the FAILED backup.info cannot be written either), leaves a backup.info with
// status=FAILED and the error when the store is still reachable, and no incomplete multipart
// upload; it never hangs when the store disappears.
//   (a) an unreadable file in PGDATA (our backup runs as the `postgres` user, the file is root's);
//   (b) the object store stops while data.tar is being uploaded;
//   (c) SIGINT (Ctrl-C) while data.tar is being uploaded;
//   (d) restore of a backup ID that does not exist.
// (Restore into a non-empty directory is covered by postgres-backup.test.ts.)
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  S3Client, ListObjectsV2Command, ListMultipartUploadsCommand, GetObjectCommand,
} from '@aws-sdk/client-s3';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import {
  requireTool, postgresAvailable, startCluster, toolCommand, pgTempDir, type PgCluster,
} from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { startBackup, type BackupRun } from '../helpers/backup-run.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BUCKET = 'failures';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
}

/** Keys of the incomplete multipart uploads under a prefix. */
async function multipartUploads(s3: S3Client, prefix: string): Promise<string[]> {
  const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (r.Uploads ?? []).map((u) => u.Key!);
}

/** Poll until an incomplete multipart upload of `<prefix>…/data.tar` exists (the backup is mid-upload). */
async function waitForDataUpload(s3: S3Client, prefix: string, run: { done: Promise<BackupRun> }, timeoutMs = 60_000): Promise<string> {
  let finished = false;
  void run.done.then(() => (finished = true), () => (finished = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const key = (await multipartUploads(s3, prefix)).find((k) => k.endsWith('/data.tar'));
    if (key) return key;
    if (finished) throw new Error(`the backup ended before data.tar's multipart upload was seen: ${JSON.stringify(await run.done)}`);
    if (Date.now() > deadline) throw new Error('no multipart upload of data.tar appeared');
    await sleep(25);
  }
}

/** The backup.info files under a server's base/ prefix, parsed into key → value. */
async function backupInfos(s3: S3Client, prefix: string): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>();
  const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}base/` }));
  for (const o of r.Contents ?? []) {
    if (!o.Key!.endsWith('/backup.info')) continue;
    const body = await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key! }))).Body!.transformToString();
    const fields = new Map<string, string>();
    for (const line of body.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
    }
    out.set(o.Key!.split('/').at(-2)!, fields);
  }
  return out;
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => / ERROR: /.test(l));
}

/** What a FAILED backup.info must hold (docs/format.md#backup-info-fields). */
function expectFailedInfo(info: Map<string, string> | undefined, error: RegExp): void {
  expect(info).toBeDefined();
  expect(info!.get('status')).toBe('FAILED');
  expect(info!.get('error')).toMatch(error);
  expect(info!.get('server_name')).toBe('cloud');
  expect(info!.get('begin_wal')).toMatch(/^[0-9A-F]{24}$/);
  expect(info!.get('begin_time')).not.toBe('None');
  // The operator treats a backup with an end_time as usable (docs/compatibility.md#cloudnativepg-plugin-or-in-tree): it must stay None.
  expect(info!.get('end_time')).toBe('None');
  expect(info!.get('end_wal')).toBe('None');
  expect(info!.get('backup_label')).toBe('None');
}

describe.skipIf(skip)('a base backup that fails midway', () => {
  let moto: ServerHandle;
  let s3: S3Client;
  let primary: PgCluster;
  const url = (server: string, endpoint = moto.url) => ['--endpoint-url', endpoint, `s3://${BUCKET}/pg`, server];
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    s3 = s3Client(moto.url);
    const tbsDir = pgTempDir('bc-fail-tbs-');
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', url('wal'))} %p` },
      serverEnv: { ...MOTO_ENV },
    });
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbsDir}'`);
    await primary.psql("CREATE TABLE t (id int) TABLESPACE tbs1; INSERT INTO t SELECT generate_series(1, 1000);");
    // ~160 MB of PGDATA: data.tar is uploaded in several parts, long enough to interrupt.
    await primary.pgbench(['-i', '-s', '10', '-q']);
    await primary.psql('CHECKPOINT');
  }, 180_000);

  afterAll(async () => {
    await primary?.remove();
    s3?.destroy();
    await moto?.stop();
  });

  it.each([
    ['at the top of PGDATA, before data.tar has a multipart upload', 'unreadable_file'],
    ['after base/, while data.tar has a multipart upload', 'zz_private/unreadable_file'],
  ])('an unreadable file (%s): FAILED backup.info, no multipart upload left, exit 1', async (_where, rel) => {
    const server = `unreadable-${rel.includes('/') ? 'deep' : 'top'}`;
    const path = join(primary.dataDir, rel);
    const dir = join(primary.dataDir, rel.split('/').slice(0, -1).join('/'));
    if (!existsSync(dir)) mkdirSync(dir, { mode: 0o755 });
    writeFileSync(path, 'secret');
    chmodSync(path, 0o000);
    // Watch the multipart uploads while the backup runs.
    const seen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const k of await multipartUploads(s3, `pg/${server}/`).catch(() => [])) seen.add(k.slice(k.lastIndexOf('/') + 1));
        await sleep(25);
      }
    })();
    try {
      const run = startBackup(['--immediate-checkpoint', ...url(server)], env(), { asPostgres: true });
      const r = await run.done;
      watching = false;
      await watcher;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toBe('');
      const errors = errorLines(r.stderr);
      expect(errors, r.stderr).toHaveLength(1);
      expect(errors[0]).toMatch(/ERROR: Backup failed uploading data \(.*unreadable_file/);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);

      const infos = await backupInfos(s3, `pg/${server}/`);
      expect(infos.size).toBe(1);
      expectFailedInfo([...infos.values()][0], new RegExp(`^failure uploading data \\(.*${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
      expect(await multipartUploads(s3, `pg/${server}/`)).toEqual([]);
      if (rel.includes('/')) expect([...seen]).toContain('data.tar');
      // parts.json is a DONE backup's record only
      const keys = (await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `pg/${server}/` }))).Contents?.map((o) => o.Key!) ?? [];
      expect(keys.filter((k) => k.endsWith('/parts.json'))).toEqual([]);

      // The list shows it as FAILED; the operator would not take it as usable (end_time null).
      const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url(server)], { env: env() });
      expect(list.code).toBe(0);
      const entry = (JSON.parse(list.stdout) as { backups_list: Record<string, unknown>[] }).backups_list[0];
      expect(entry).toMatchObject({ status: 'FAILED', end_time: null, error: expect.stringMatching(/^failure uploading data/) });
      expect(entry!.end_time_iso).toBeUndefined();
    } finally {
      watching = false;
      rmSync(rel.includes('/') ? dir : path, { recursive: true, force: true });
    }
    // The session that started the backup is gone: PostgreSQL is not left in backup mode.
    await primary.waitFor("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup'", '0', 10_000);
  }, 120_000);

  // Node's string paths cannot name such an entry: it passed for one that vanished and was left out
  // of a DONE backup (its manifest did not list it either), or a link was stored with another target.
  it.each([
    ['a file whose name is not UTF-8', 'badname', (dir: string) => {
      const at = Buffer.concat([Buffer.from(join(dir, 'stray-')), Buffer.from([0xff, 0x41])]);
      writeFileSync(at, 'precious\n');
      return at;
    }],
    ['a symbolic link whose target is not UTF-8', 'badlink', (dir: string) => {
      const at = join(dir, 'stray-link');
      symlinkSync(Buffer.concat([Buffer.from('/srv/tbs-'), Buffer.from([0xe9])]), at);
      return at;
    }],
  ])('%s in PGDATA: the backup fails naming it (exit 1, FAILED backup.info), nothing left out silently', async (_what, server, plant) => {
    const at = plant(primary.dataDir);
    try {
      const run = startBackup(['--immediate-checkpoint', ...url(server)], env(), { asPostgres: true });
      const r = await run.done;
      expect(r.code, r.stderr).toBe(1);
      const errors = errorLines(r.stderr);
      expect(errors, r.stderr).toHaveLength(1);
      expect(errors[0]).toMatch(/ERROR: Backup failed uploading data \(Cannot back up .*'[^']*\\x(ff|e9)[^']*' is not valid UTF-8/);
      const infos = await backupInfos(s3, `pg/${server}/`);
      expect([...infos.values()].map((i) => i.get('status'))).toEqual(['FAILED']);
    } finally {
      rmSync(at, { force: true });
    }
    await primary.waitFor("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup'", '0', 10_000);
  }, 120_000);

  it('the object store stops mid-upload: the backup ends within seconds, exit 1, the cause in both ERROR lines', async () => {
    const moto2 = await startMoto();
    const s3b = s3Client(moto2.url);
    try {
      await createS3Bucket(moto2.url, BUCKET);
      const run = startBackup(['--immediate-checkpoint', ...url('stopped', moto2.url)], env(), { timeoutMs: 90_000 });
      await waitForDataUpload(s3b, 'pg/stopped/', run);
      const stoppedAt = Date.now();
      await moto2.stop();
      const r = await run.done;
      const afterStop = Date.now() - stoppedAt;
      expect(afterStop, r.stderr).toBeLessThan(60_000);
      // As barman (cloud.py, handle_backup_errors): the data upload fails, then the FAILED
      // backup.info cannot be written either → two ERROR lines, exit 1. Each names the real cause.
      expect(r.code, r.stderr).toBe(1);
      expect(r.signal).toBeNull();
      expect(r.stdout).toBe('');
      for (const l of r.stderr.trim().split('\n')) expect(l, r.stderr).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] (ERROR|WARNING): /);
      const errors = errorLines(r.stderr);
      expect(errors, r.stderr).toHaveLength(2);
      const cause = new RegExp(`127\\.0\\.0\\.1:${moto2.port}|ECONN|socket|connect`, 'i');
      expect(errors[0], r.stderr).toMatch(/ERROR: Backup failed uploading data \(/);
      expect(errors[0], r.stderr).toMatch(cause);
      expect(errors[1], r.stderr).toMatch(/ERROR: Backup failed uploading backup\.info file \(/);
      expect(errors[1], r.stderr).toMatch(cause);
    } finally {
      s3b.destroy();
      await moto2.stop();
    }
    // The session that started the backup is gone: PostgreSQL is not left in backup mode.
    await primary.waitFor("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup'", '0', 10_000);
  }, 120_000);

  it('SIGINT mid-upload: FAILED backup.info, no multipart upload left, exit 1', async () => {
    const run = startBackup(['--immediate-checkpoint', ...url('interrupted')], env());
    const key = await waitForDataUpload(s3, 'pg/interrupted/', run);
    expect(key).toMatch(/^pg\/interrupted\/base\/\d{8}T\d{6}\/data\.tar$/);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe('');
    const errors = errorLines(r.stderr);
    expect(errors, r.stderr).toHaveLength(1);
    expect(errors[0]).toMatch(/ERROR: Backup failed uploading data \(.*(interrupt|SIGINT)/i);

    const infos = await backupInfos(s3, 'pg/interrupted/');
    expect(infos.size).toBe(1);
    expectFailedInfo([...infos.values()][0], /^failure uploading data \(.*(interrupt|SIGINT)/i);
    expect(await multipartUploads(s3, 'pg/interrupted/')).toEqual([]);
    // No data.tar was completed either.
    const keys = (await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'pg/interrupted/' }))).Contents?.map((o) => o.Key!) ?? [];
    expect(keys.filter((k) => /\/data(_\d{4})?\.tar/.test(k))).toEqual([]);
    await primary.waitFor("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup'", '0', 10_000);
  }, 120_000);

  it('restore of a backup ID that does not exist: exit 1, "does not exist", nothing written', async () => {
    const dest = join(pgTempDir('bc-fail-restore-'), 'data');
    const r = await runBin('barman-cloud-restore', [...url('interrupted'), '20200101T000000', dest], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe('');
    expect(errorLines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/ERROR: Backup 20200101T000000 for server interrupted does not exist/);
    expect(existsSync(dest)).toBe(false);
    // barman-cloud-backup-show agrees.
    const show = await runBin('barman-cloud-backup-show', [...url('interrupted'), '20200101T000000'], { env: env() });
    expect(show.code).toBe(1);
    expect(show.stderr).toMatch(/does not exist/);
  });
});

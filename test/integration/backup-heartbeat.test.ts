// A backup run that dies without writing its backup.info (SIGKILL: a sidecar OOM-killed) is recorded
// FAILED by the next backup of the server, once its claim has not been rewritten for six heartbeat
// intervals; barman 3.4 lists it, and backup-delete -b removes it whole, unfinished multipart
// uploads included. A run that is alive is never judged, and one that was only stalled and comes
// back after being judged exits 1 instead of writing DONE over the record
// (docs/format.md#backup-heartbeat).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import {
  startMoto, startAzurite, startGcs, createS3Bucket, azuriteConnectionString, AZURITE_ACCOUNT, type ServerHandle,
} from '../helpers/servers.ts';
import { runBin, runBarman, cleanEnv } from '../helpers/run-bin.ts';
import { requireTool, postgresAvailable, startCluster, toolCommand, type PgCluster } from '../helpers/postgres.ts';
import { MOTO_ENV, openMotoStore } from '../helpers/moto.ts';
import { startBackup } from '../helpers/backup-run.ts';
import { startS3Proxy, type ProxiedRequest } from '../helpers/proxy.ts';
import { encodePartsList } from '../../src/catalog/parts-list.ts';
import { newBackupInfo, parseBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const skip34 = requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync('/usr/bin/barman-cloud-backup-list'));
const BUCKET = 'heartbeat';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const idOf = (stderr: string) => /Starting backup '(\d{8}T\d{6})'/.exec(stderr)?.[1];

/** Poll until `check` holds; fail after `ms`. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A PostgreSQL 15 with ~160 MB of pgbench data: a backup slowed by --max-bandwidth runs long enough to kill. */
async function filledCluster(options?: Parameters<typeof startCluster>[0]): Promise<PgCluster> {
  const cluster = await startCluster(options);
  await cluster.pgbench(['-i', '-s', '10', '-q']);
  await cluster.psql('CHECKPOINT');
  return cluster;
}

/** key → value of a backup.info text. */
function fields(text: string): Map<string, string> {
  return new Map(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** What the judging run writes for a dead one: FAILED, its start, none of its end. */
function expectInterrupted(info: Map<string, string>): void {
  expect(info.get('status')).toBe('FAILED');
  expect(info.get('error')).toMatch(/^failure uploading data \(interrupted: no sign of life since \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
  expect(info.get('server_name')).toBe('cloud');
  expect(info.get('begin_wal')).toMatch(/^[0-9A-F]{24}$/);
  expect(info.get('begin_time')).not.toBe('None');
  // CloudNativePG takes a backup with both times set for a usable one (docs/compatibility.md)
  expect(info.get('end_time')).toBe('None');
  expect(info.get('end_wal')).toBe('None');
  expect(info.get('backup_label')).toBe('None');
}

describe.skipIf(skip)('a backup run that dies or stalls (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  let primary: PgCluster;
  const url = (server: string) => ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, server];
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });
  const keysUnder = async (prefix: string) => {
    const keys: string[] = [];
    for await (const e of store.list(prefix)) if (e.kind === 'object') keys.push(e.key);
    return keys;
  };
  const uploadsUnder = async (prefix: string) => {
    const keys: string[] = [];
    for await (const u of store.incompleteUploads!(prefix)) keys.push(u.key);
    return keys;
  };
  const info = async (server: string, id: string) => fields((await store.getBuffer(`pg/${server}/base/${id}/backup.info`)).toString('utf8'));
  const hasInfo = async (server: string, id: string) => (await store.head(`pg/${server}/base/${id}/backup.info`)) !== null;
  /** A slow backup: ~160 MB at 8 MB/s, rewriting its claim every second. */
  const slowBackup = (server: string) =>
    startBackup(['-v', '--immediate-checkpoint', '--heartbeat-interval', '1', '--max-bandwidth', '8MB', ...url(server)], env(), { timeoutMs: 180_000 });
  /** Wait until the run has started uploading data.tar, and return its backup ID. */
  const uploading = async (server: string, run: ReturnType<typeof startBackup>) => {
    let stderr = '';
    run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await until('the data upload', async () => {
      if (run.child.exitCode !== null) throw new Error(`the backup ended first: ${stderr}`);
      return (await uploadsUnder(`pg/${server}/base/`)).some((k) => k.endsWith('/data.tar'));
    });
    const id = idOf(stderr);
    expect(id).toBeDefined();
    return id!;
  };

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    store = await openMotoStore(moto, BUCKET);
    primary = await filledCluster({
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, 'wal'])} %p` },
      serverEnv: { ...MOTO_ENV },
    });
  }, 180_000);

  afterAll(async () => {
    await primary?.remove();
    await store?.close();
    await moto?.stop();
  });

  it('a killed run is recorded FAILED by the next backup, listed by ours and barman 3.4, and backup-delete -b removes it whole', async () => {
    const server = 'killed';
    const dying = slowBackup(server);
    const dead = await uploading(server, dying);
    dying.child.kill('SIGKILL');
    expect((await dying.done).signal).toBe('SIGKILL');
    expect(await hasInfo(server, dead)).toBe(false);
    expect(await uploadsUnder(`pg/${server}/base/${dead}/`)).toEqual([`pg/${server}/base/${dead}/data.tar`]);
    await sleep(7_000); // more than six of its one-second intervals

    const next = await startBackup(['--immediate-checkpoint', ...url(server)], env()).done;
    expect({ code: next.code, stderr: next.stderr }).toEqual({ code: 0, stderr: expect.stringContaining(`WARNING: Backup ${dead} of server ${server} was interrupted`) });
    expectInterrupted(await info(server, dead));

    const ours = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url(server)], { env: env() });
    expect(ours.code).toBe(0);
    const listed = (JSON.parse(ours.stdout) as { backups_list: { backup_id: string; status: string; end_time: unknown }[] }).backups_list;
    expect(listed.map((b) => [b.status, b.end_time === null])).toEqual([['FAILED', true], ['DONE', false]]);
    expect(listed[0]!.backup_id).toBe(dead);
    if (!skip34) {
      // barman 3.4 reads no backup.info of ours as written (keys newer than 3.4): both rewritten
      // without those keys, as for any backup of ours that 3.4 must read (docs/compatibility.md).
      for (const id of listed.map((b) => b.backup_id)) {
        const key = `pg/${server}/base/${id}/backup.info`;
        await store.put(key, Buffer.from(serializeBackupInfo(parseBackupInfo(await store.getBuffer(key)), { compat: '3.4' })));
      }
      const theirs = await runBarman('barman-cloud-backup-list', ['--format', 'json', ...url(server)], env());
      expect({ code: theirs.code, stderr: theirs.stderr }).toEqual({ code: 0, stderr: '' });
      const them = (JSON.parse(theirs.stdout) as { backups_list: { backup_id: string; status: string }[] }).backups_list;
      expect(them.map((b) => [b.backup_id, b.status])).toEqual(listed.map((b) => [b.backup_id, b.status]));
    }

    const del = await runBin('barman-cloud-backup-delete', ['-b', dead, ...url(server)], { env: env() });
    // barman's warning for a backup without a data archive: this one died before finishing data.tar
    expect({ code: del.code, lines: del.stderr.split('\n').filter(Boolean) })
      .toEqual({ code: 0, lines: [expect.stringMatching(new RegExp(`WARNING: Missing file pg/${server}/base/${dead}/data\\.\\* for server ${server}$`))] });
    expect(await keysUnder(`pg/${server}/base/${dead}/`)).toEqual([]);
    expect(await uploadsUnder(`pg/${server}/base/${dead}/`)).toEqual([]);
  }, 240_000);

  it('a live run is never judged; one that stalls for six intervals is recorded FAILED and, back, exits 1 instead of writing DONE', async () => {
    const server = 'stalled';
    const slow = slowBackup(server);
    const id = await uploading(server, slow);
    await sleep(7_000); // its claim is older than six intervals: only its rewrites keep it alive

    // Alive: another backup meanwhile leaves it alone.
    const beside = await startBackup(['--immediate-checkpoint', ...url(server)], env()).done;
    expect({ code: beside.code, stderr: beside.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await hasInfo(server, id)).toBe(false);
    expect(slow.child.exitCode).toBeNull();

    // Stalled: the next backup takes it for dead.
    slow.child.kill('SIGSTOP');
    await sleep(7_000);
    const judge = await startBackup(['--immediate-checkpoint', ...url(server)], env()).done;
    expect(judge.code).toBe(0);
    expect(judge.stderr).toContain(`WARNING: Backup ${id} of server ${server} was interrupted`);
    expectInterrupted(await info(server, id));

    // Back: it finishes its upload, then finds the record and fails without replacing it.
    slow.child.kill('SIGCONT');
    const back = await slow.done;
    expect(back.code).toBe(1);
    expect(back.stderr).toMatch(new RegExp(`ERROR: Backup ${id} was recorded as interrupted by another run while this one gave no sign of life for 6 heartbeat intervals of 1 s; its backup.info stays FAILED`));
    expectInterrupted(await info(server, id));
    const restore = await runBin('barman-cloud-restore', [...url(server), id, join(mkdtempSync(join(tmpdir(), 'bc-hb-')), 'dest')], { env: env() });
    expect(restore.code).toBe(1);
  }, 240_000);
  it('a rewrite of the claim that the store refuses is a WARNING, and the backup goes on to DONE', async () => {
    const server = 'refused';
    // every rewrite of the claim (not its conditional create, not the final parts.json) gets 403
    const isRewrite = (r: ProxiedRequest) => r.method === 'PUT' && r.url.split('?')[0]!.endsWith('/parts.json')
      && r.headers['if-none-match'] === undefined && /"parts": \[\]/.test(r.body.toString('utf8'));
    let refused = 0;
    const proxy = await startS3Proxy(moto.port, (r) => {
      if (!isRewrite(r)) return false;
      refused++;
      return true;
    });
    try {
      const run = await startBackup(['--immediate-checkpoint', '--heartbeat-interval', '1', '--endpoint-url', proxy.url, `s3://${BUCKET}/pg`, server], env()).done;
      expect(run.code).toBe(0);
      expect(refused).toBeGreaterThan(0);
      expect(run.stderr.split('\n').filter(Boolean).every((l) => /WARNING: Could not refresh pg\/refused\/base\/\d{8}T\d{6}\/parts\.json: /.test(l))).toBe(true);
      const infos = (await keysUnder(`pg/${server}/base/`)).filter((k) => k.endsWith('/backup.info'));
      expect(infos).toHaveLength(1);
      expect((await info(server, infos[0]!.split('/')[3]!)).get('status')).toBe('DONE');
    } finally {
      await proxy.close();
    }
  }, 240_000);
});

describe.skipIf(skip)('a backup run that died, on the directory store', () => {
  let primary: PgCluster;
  const work = mkdtempSync(join(tmpdir(), 'bc-heartbeat-'));
  const root = join(work, 'store');
  const args = (server: string) => [`file://${root}`, server];

  beforeAll(async () => {
    mkdirSync(root);
    primary = await filledCluster();
  }, 180_000);

  afterAll(async () => {
    await primary?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('a claim silent for six of its intervals by the store\'s clock is recorded FAILED; one without a run record is never judged', async () => {
    const server = 'srv';
    const env = cleanEnv({ ...primary.env });
    const dying = startBackup(['-v', '--immediate-checkpoint', '--max-bandwidth', '8MB', ...args(server)], env, { timeoutMs: 180_000 });
    let stderr = '';
    dying.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // Killed once the claim holds the backup's start (its rewrite after pg_backup_start) and the
    // data part is being written (its temp file).
    await until('the claim with the backup start, and the data part under way', () => {
      if (dying.child.exitCode !== null) throw new Error(`the backup ended first: ${stderr}`);
      const id = idOf(stderr);
      const dir = id && join(root, server, 'base', id);
      return Boolean(dir && existsSync(join(dir, 'parts.json')) && /begin_wal=[0-9A-F]{24}/.test(readFileSync(join(dir, 'parts.json'), 'utf8'))
        && readdirSync(dir).some((n) => n.startsWith('.bc-tmp-')));
    });
    dying.child.kill('SIGKILL');
    await dying.done;
    const dead = idOf(stderr)!;
    // Its claim last rewritten thirty-one minutes ago: more than six of its default five-minute
    // intervals. The part it was writing is a temp file there, younger than the ten minutes after
    // which the judging run's own write would sweep it (src/stale-temps.ts).
    const past = new Date(Date.now() - 31 * 60_000);
    utimesSync(join(root, server, 'base', dead, 'parts.json'), past, past);
    const temps = () => readdirSync(join(root, server, 'base', dead)).filter((n) => n.startsWith('.bc-tmp-'));
    expect(temps()).toHaveLength(1);
    // barman's kind of leftover (a claim without a run record), just as old: never judged.
    const old = '20200101T000000';
    mkdirSync(join(root, server, 'base', old), { recursive: true });
    writeFileSync(join(root, server, 'base', old, 'parts.json'), encodePartsList({ backupId: old, parts: [] }));
    utimesSync(join(root, server, 'base', old, 'parts.json'), past, past);
    // A recent claim of a run that is still alive by its intervals (29 minutes, under six of five).
    const young = '20200101T000001';
    mkdirSync(join(root, server, 'base', young), { recursive: true });
    writeFileSync(join(root, server, 'base', young, 'parts.json'), encodePartsList({
      backupId: young, parts: [], run: { heartbeatSeconds: 300, backupInfo: serializeBackupInfo(newBackupInfo(young, { status: 'STARTED' })) },
    }));
    const recent = new Date(Date.now() - 29 * 60_000);
    utimesSync(join(root, server, 'base', young, 'parts.json'), recent, recent);

    await sleep(1_100); // a backup ID of its own (IDs are to the second)
    const next = await runBin('barman-cloud-backup', ['--immediate-checkpoint', ...args(server)], { env });
    expect({ code: next.code, stderr: next.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(next.stderr.split('\n').filter((l) => l.includes('WARNING'))).toEqual([
      expect.stringContaining(`WARNING: Backup ${dead} of server ${server} was interrupted (no sign of life since ${past.toISOString().slice(0, 16)}`),
    ]);
    expectInterrupted(fields(readFileSync(join(root, server, 'base', dead, 'backup.info'), 'utf8')));
    expect(existsSync(join(root, server, 'base', old, 'backup.info'))).toBe(false);
    expect(existsSync(join(root, server, 'base', young, 'backup.info'))).toBe(false);

    // Deleted later, when the temp file has gone stale: the deletion must not leave it behind.
    expect(temps()).toHaveLength(1);
    for (const name of temps()) utimesSync(join(root, server, 'base', dead, name), past, past);
    const del = await runBin('barman-cloud-backup-delete', ['-b', dead, ...args(server)], { env });
    expect({ code: del.code, lines: del.stderr.split('\n').filter(Boolean) })
      .toEqual({ code: 0, lines: [expect.stringMatching(new RegExp(`WARNING: Missing file ${server}/base/${dead}/data\\.\\* for server ${server}$`))] });
    expect(existsSync(join(root, server, 'base', dead))).toBe(false);
  }, 240_000);
});

describe.skipIf(skip)('a backup run that died, on Azure (azurite) and GCS (our test server)', () => {
  let azurite: ServerHandle;
  let gcs: ServerHandle;
  let primary: PgCluster;

  beforeAll(async () => {
    [azurite, gcs] = await Promise.all([startAzurite(), startGcs()]);
    primary = await filledCluster();
  }, 180_000);

  afterAll(async () => {
    await primary?.remove();
    await Promise.all([azurite?.stop(), gcs?.stop()]);
  });

  const providers = [
    {
      name: 'azure-blob-storage',
      store: () => ['--cloud-provider', 'azure-blob-storage', `${azurite.url}/${AZURITE_ACCOUNT}/heartbeat/cluster`, 'srv'],
      env: () => ({ AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(azurite.url) }),
      async keys(prefix: string) {
        const client = BlobServiceClient.fromConnectionString(azuriteConnectionString(azurite.url)).getContainerClient('heartbeat');
        const out: string[] = [];
        for await (const b of client.listBlobsFlat({ prefix: `cluster/${prefix}` })) out.push(b.name);
        return out;
      },
    },
    {
      name: 'google-cloud-storage',
      store: () => ['--cloud-provider', 'google-cloud-storage', 'gs://heartbeat/cluster', 'srv'],
      env: () => ({ STORAGE_EMULATOR_HOST: gcs.url }),
      async keys(prefix: string) {
        const res = await fetch(`${gcs.url}/storage/v1/b/heartbeat/o?${new URLSearchParams({ prefix: `cluster/${prefix}` })}`);
        expect(res.status).toBe(200);
        return ((await res.json()) as { items?: { name: string }[] }).items?.map((o) => o.name) ?? [];
      },
    },
  ];

  it.each(providers)('$name: the next backup records it FAILED, and backup-delete -b removes it whole', async (p) => {
    const env = cleanEnv({ ...p.env(), ...primary.env });
    const check = await runBin('barman-cloud-check-wal-archive', p.store(), { env });
    expect({ code: check.code, stderr: check.stderr }).toEqual({ code: 0, stderr: '' });
    const dying = startBackup(['-v', '--immediate-checkpoint', '--heartbeat-interval', '1', '--max-bandwidth', '8MB', ...p.store()], env, { timeoutMs: 180_000 });
    let stderr = '';
    dying.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // Uploading data.tar: the claim has been rewritten with the backup's start.
    await until('the data upload', () => {
      if (dying.child.exitCode !== null) throw new Error(`the backup ended first: ${stderr}`);
      return /Uploading \S*\/data\.tar/.test(stderr);
    });
    dying.child.kill('SIGKILL');
    await dying.done;
    const dead = idOf(stderr)!;
    await sleep(7_000);

    const next = await runBin('barman-cloud-backup', ['--immediate-checkpoint', ...p.store()], { env });
    expect(next.code).toBe(0);
    expect(next.stderr).toContain(`WARNING: Backup ${dead} of server srv was interrupted`);
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...p.store()], { env });
    const listed = (JSON.parse(list.stdout) as { backups_list: { backup_id: string; status: string; end_time: unknown; begin_wal: unknown }[] }).backups_list;
    expect(listed.map((b) => [b.status, b.end_time === null])).toEqual([['FAILED', true], ['DONE', false]]);
    expect(listed[0]).toMatchObject({ backup_id: dead, begin_wal: expect.stringMatching(/^[0-9A-F]{24}$/) });

    const del = await runBin('barman-cloud-backup-delete', ['-b', dead, ...p.store()], { env });
    expect(del.code).toBe(0);
    expect(await p.keys(`srv/base/${dead}/`)).toEqual([]);
  }, 240_000);
});

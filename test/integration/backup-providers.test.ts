// Base backup and restore of a real PostgreSQL 15 with a tablespace on the other object stores:
// Azure Blob (azurite, gzip), Google Cloud Storage (our GCS test server, lz4) and the local file
// store (file://, no compression). Each primary archives its WAL with our wal-archive into the same
// store (the provider's environment reaches archive_command through the server's environment), our
// backup goes there too, our restore relocates the tablespace, and the copy starts through our
// wal-restore from that store holding every committed row.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import {
  startAzurite, startGcs, azuriteConnectionString, AZURITE_ACCOUNT, type ServerHandle,
} from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import {
  pgTempDir, postgresAvailable, requireTool, roundTripRows, startCluster, startRestoredCopy, toolCommand, type PgCluster,
} from '../helpers/postgres.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const SERVER = 'srv';

interface Provider {
  /** Store options before the URL, for every command. */
  args: string[];
  url: string;
  /** Provider environment: for our commands and for PostgreSQL's archive/restore commands. */
  env: Record<string, string>;
  /** Every key in the store under `prefix` (relative to the bucket/container/root). */
  keys(prefix: string): Promise<string[]>;
}

interface Case {
  provider: string;
  codec: string;
  /** Compression flags, for the backup and the WAL. */
  flags: string[];
  suffix: string;
  make(): Provider;
}

describe.skipIf(skip)('backup and restore of PostgreSQL 15 on Azure, GCS and the file store', () => {
  let azurite: ServerHandle;
  let gcs: ServerHandle;
  const clusters: PgCluster[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    [azurite, gcs] = await Promise.all([startAzurite(), startGcs()]);
  }, 60_000);

  afterAll(async () => {
    // PostgreSQL first: its archiver talks to the servers.
    for (const c of clusters) await c.remove();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await Promise.all([azurite?.stop(), gcs?.stop()]);
  });

  const cases: Case[] = [
    {
      provider: 'azure-blob-storage',
      codec: 'gzip',
      flags: ['-z'],
      suffix: '.tar.gz',
      make: () => {
        const cs = azuriteConnectionString(azurite.url);
        const container = 'pgcontainer';
        return {
          args: ['--cloud-provider', 'azure-blob-storage'],
          url: `${azurite.url}/${AZURITE_ACCOUNT}/${container}/cluster/path`,
          env: { AZURE_STORAGE_CONNECTION_STRING: cs },
          async keys(prefix) {
            const client = BlobServiceClient.fromConnectionString(cs).getContainerClient(container);
            const out: string[] = [];
            for await (const b of client.listBlobsFlat({ prefix: `cluster/path/${prefix}` })) out.push(b.name.slice('cluster/path/'.length));
            return out;
          },
        };
      },
    },
    {
      provider: 'google-cloud-storage',
      codec: 'lz4',
      flags: ['--lz4'],
      suffix: '.tar.lz4',
      make: () => ({
        args: ['--cloud-provider', 'google-cloud-storage'],
        url: 'gs://pgbucket/cluster',
        env: { STORAGE_EMULATOR_HOST: gcs.url },
        async keys(prefix) {
          const out: string[] = [];
          let token: string | undefined;
          do {
            const q = new URLSearchParams({ prefix: `cluster/${prefix}`, ...(token ? { pageToken: token } : {}) });
            const res = await fetch(`${gcs.url}/storage/v1/b/pgbucket/o?${q}`);
            expect(res.status).toBe(200);
            const body = (await res.json()) as { items?: { name: string }[]; nextPageToken?: string };
            for (const o of body.items ?? []) out.push(o.name.slice('cluster/'.length));
            token = body.nextPageToken;
          } while (token);
          return out;
        },
      }),
    },
    {
      provider: 'file',
      codec: 'none',
      flags: [],
      suffix: '.tar',
      make: () => {
        // Owned by the postgres user: its archive_command writes WAL there.
        const root = pgTempDir('bc-filestore-');
        dirs.push(root);
        const walk = (dir: string): string[] =>
          readdirSync(dir).flatMap((n) => {
            const p = join(dir, n);
            return statSync(p).isDirectory() ? walk(p) : [relative(root, p)];
          });
        return {
          args: [],
          url: `file://${root}`,
          env: {},
          async keys(prefix) {
            return existsSync(root) ? walk(root).filter((k) => k.startsWith(prefix)) : [];
          },
        };
      },
    },
  ];

  it.each(cases)('$provider ($codec): backup → list/show → restore → the copy starts with every row', async (c) => {
    const p = c.make();
    const store = () => [...p.args, p.url, SERVER];
    const toolEnv = (cluster?: PgCluster) => cleanEnv({ ...p.env, ...(cluster?.env ?? {}) });

    // Create the bucket/container (check-wal-archive creates a missing one) before anything archives.
    const check = await runBin('barman-cloud-check-wal-archive', store(), { env: toolEnv() });
    expect({ code: check.code, stderr: check.stderr }).toEqual({ code: 0, stderr: '' });

    const tbsDir = pgTempDir('bc-prov-tbs-');
    dirs.push(tbsDir);
    const primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', [...c.flags, ...store()])} %p` },
      serverEnv: { ...p.env },
    });
    clusters.push(primary);
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbsDir}'`);
    await primary.psql("CREATE TABLE t (id int primary key, phase text) TABLESPACE tbs1; INSERT INTO t SELECT g, 'before' FROM generate_series(1, 5000) g;");
    await primary.pgbench(['-i', '-s', '2', '-q']);
    // Archiving works before the backup (and, for the file store, postgres created the server's directories).
    await primary.waitForArchived(await primary.switchWal(), 60_000);

    const load = primary.pgbench(['-c', '2', '-T', '3', '-n']);
    const b = await runBin('barman-cloud-backup', [...c.flags, '--immediate-checkpoint', '-J', '2', '-n', `bk-${c.codec}`, ...store()], {
      env: toolEnv(primary), timeoutMs: 120_000,
    });
    await load;
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });

    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...store()], { env: toolEnv() });
    expect({ code: list.code, stderr: list.stderr }).toEqual({ code: 0, stderr: '' });
    const backups = (JSON.parse(list.stdout) as { backups_list: Record<string, unknown>[] }).backups_list;
    expect(backups).toHaveLength(1);
    const mine = backups[0]!;
    expect(mine).toMatchObject({ status: 'DONE', server_name: 'cloud', backup_name: `bk-${c.codec}`, timeline: 1, systemid: expect.any(String) });
    expect(String(mine.end_time_iso)).toMatch(/[+-]\d\d:\d\d$/);
    const id = String(mine.backup_id);
    const tbsOid = (mine.tablespaces as [string, number, string][])[0]![1];
    const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...store(), `bk-${c.codec}`], { env: toolEnv() });
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toEqual({ cloud: mine });

    // The objects: one archive for PGDATA and one for the tablespace, with the codec's suffix, and
    // the list of their sizes and SHA-256 (parts.json).
    const keys = await p.keys(`${SERVER}/base/${id}/`);
    expect(keys.sort()).toEqual([
      `${SERVER}/base/${id}/${tbsOid}${c.suffix}`, `${SERVER}/base/${id}/backup.info`, `${SERVER}/base/${id}/data${c.suffix}`,
      `${SERVER}/base/${id}/parts.json`,
    ].sort());
    expect((await p.keys(`${SERVER}/wals/`)).length).toBeGreaterThan(0);

    // Committed after the backup, archived.
    await primary.psql(`INSERT INTO t VALUES (100000, 'after ${c.provider}')`);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const expected = await roundTripRows(primary);

    const work = pgTempDir('bc-prov-restore-');
    dirs.push(work);
    const dest = join(work, 'data');
    const tbsNew = join(work, 'tbs-relocated');
    const r = await runBin('barman-cloud-restore', ['--tablespace', `tbs1:${tbsNew}`, ...store(), id, dest], { env: toolEnv(), timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readlinkSync(join(dest, 'pg_tblspc', String(tbsOid)))).toBe(tbsNew);
    expect(readdirSync(tbsNew).some((n) => n.startsWith('PG_15_'))).toBe(true);
    expect(existsSync(join(dest, 'backup_label'))).toBe(true);

    const copy = await startRestoredCopy(dest, store(), { serverEnv: { ...p.env }, clusters, tablespaceDirs: [tbsNew] });
    expect(await roundTripRows(copy)).toEqual(expected);
    // Stop both before the next provider: PostgreSQL before its object store (afterAll), and to save memory.
    await copy.remove();
    await primary.stop();
  }, 240_000);
});

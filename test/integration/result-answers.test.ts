// An answer that does not say the work was done is not taken as done (docs/format.md#result-answers).
// A web page answered with 200 (a console at the --endpoint-url, a proxy's block page) to the
// request that completes a multipart upload left the object unmade, and barman-cloud-backup exited
// 0 with a DONE backup.info naming a data archive that is not there. The same page answered to a
// DeleteObjects request counted every key as deleted: backup-delete exited 0 and deleted nothing.
// Both S3 clients (the lean one with the endpoint at the proxy, the SDK through it as HTTP_PROXY);
// moto behind a proxy that answers only those requests with the page. GCS deletes one object per
// request, answered 204: the page answered to each counted it deleted too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { createS3Bucket, startGcs, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { GcsObjectStore } from '../../src/storage/gcs/gcs.ts';
import { objectKeys, uploadObjects } from '../helpers/object-tree.ts';
import { deletedKeys, isBulkDelete, startS3Proxy, type ProxiedRequest, type Proxy } from '../helpers/proxy.ts';
import { postgresAvailable, requireTool, startCluster, type PgCluster } from '../helpers/postgres.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate } from '../../src/catalog/backup-info.ts';
import { hex8 } from '../../src/xlog.ts';

const PAGE = '<!doctype html><html><head><title>Console</title></head><body><div id="root"></div></body></html>';
const EMPTY_RESULT = '<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>';
const pageFor = (match: (r: ProxiedRequest) => boolean) => (r: ProxiedRequest) => match(r) && { status: 200, code: '', message: '', page: PAGE };

/** Where a command is sent: the lean client with the proxy as endpoint, or the SDK with it as HTTP_PROXY. */
function through(client: string, moto: ServerHandle, proxy: Proxy, url: string): { args: string[]; env: Record<string, string> } {
  return client === 'lean client'
    ? { args: ['--endpoint-url', proxy.url, url], env: MOTO_ENV }
    : { args: ['--endpoint-url', moto.url, url], env: { ...MOTO_ENV, HTTP_PROXY: proxy.url } };
}

describe('DeleteObjects answered by a web page', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const proxies: Proxy[] = [];
  const wal = (pos: number) => hex8(1) + hex8(0) + hex8(pos);

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket('deletes'));
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await store?.close();
    await moto?.stop();
  });

  /** `count` DONE backups of `server`, one a day, each with two WAL segments of its own. */
  async function seed(server: string, into: ObjectStore = store, count = 2, keep: Record<number, string> = {}): Promise<string[]> {
    const objects = new Map<string, string>();
    for (let i = 0; i < count; i++) {
      const when = new Date(Date.UTC(2026, 0, 1 + i));
      const id = when.toISOString().slice(0, 19).replace(/[-:]/g, '');
      const info = newBackupInfo(id, {
        status: 'DONE', timeline: 1, begin_wal: wal(1 + 2 * i), end_wal: wal(2 + 2 * i),
        begin_time: pyDatetimeStr(timestampFromDate(when, 0, 0)), end_time: pyDatetimeStr(timestampFromDate(new Date(when.getTime() + 60_000), 0, 0)),
      });
      objects.set(`${server}/base/${id}/backup.info`, serializeBackupInfo(info));
      objects.set(`${server}/base/${id}/data.tar`, `data ${id}`);
      if (keep[i]) objects.set(`${server}/base/${id}/annotations/keep`, keep[i]);
      for (const p of [1 + 2 * i, 2 + 2 * i]) objects.set(`${server}/wals/${wal(p).slice(0, 16)}/${wal(p)}`, `wal ${p}`);
    }
    await uploadObjects(into, 'pg', objects);
    return objectKeys(into, `pg/${server}`);
  }

  it.each(['lean client', 'SDK, through a proxy'])('%s: backup-delete fails with one line and the backup stays whole', async (client) => {
    const server = `srv${proxies.length}`;
    const before = await seed(server);
    expect(before).toHaveLength(8);
    const proxy = await startS3Proxy(moto.port, pageFor(isBulkDelete));
    proxies.push(proxy);
    const at = through(client, moto, proxy, 's3://deletes/pg');
    const r = await runBin('barman-cloud-backup-delete', ['-b', '20260101T000000', ...at.args, server], { env: cleanEnv(at.env) });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/names none of the objects, so none is known to be deleted/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await objectKeys(store, `pg/${server}`)).toEqual(before);
    // moto itself: the backup, its data and its WAL go
    const direct = await runBin('barman-cloud-backup-delete', ['-b', '20260101T000000', '--endpoint-url', moto.url, 's3://deletes/pg', server], { env: cleanEnv(MOTO_ENV) });
    expect(direct.code, direct.stderr).toBe(0);
    expect(await objectKeys(store, `pg/${server}`)).toEqual(before.filter((k) => !k.includes('20260101T000000') && !k.endsWith(wal(1)) && !k.endsWith(wal(2))));
  });

  it('GCS: backup-delete fails and the backup stays whole', async () => {
    const gcs = await startGcs();
    const retry = { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1, connectTimeoutMs: 5_000, readTimeoutMs: 5_000 };
    const direct = new GcsObjectStore({ provider: 'google-cloud-storage', bucket: 'deletes', retry, apiEndpoint: gcs.url });
    try {
      await direct.createBucket();
      const before = await seed('gcs', direct);
      const proxy = await startS3Proxy(gcs.port, pageFor((r) => r.method === 'DELETE'));
      proxies.push(proxy);
      const args = ['--cloud-provider', 'google-cloud-storage', 'gs://deletes/pg', 'gcs'];
      const r = await runBin('barman-cloud-backup-delete', ['-b', '20260101T000000', ...args], { env: cleanEnv({ STORAGE_EMULATOR_HOST: proxy.url }) });
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(/the answer \(HTTP 200\) is not a deletion's, so the object is not known to be deleted/);
      expect(await objectKeys(direct, 'pg/gcs')).toEqual(before);
    } finally {
      await direct.close();
      await gcs.stop();
    }
  });

  // Quiet: the answer names only failures, and a listing after it must show none of the keys left.
  it.each(['lean client', 'SDK, through a proxy'])('%s: a quiet answer of a request that deleted nothing: one line, and the backups stay whole', async (client) => {
    const server = `srv${proxies.length}`;
    const before = await seed(server, store, 3);
    // a true DeleteResult, empty as a quiet one is when nothing failed; the request never reaches moto
    const proxy = await startS3Proxy(moto.port, (r) => isBulkDelete(r) && { status: 200, code: '', message: '', page: EMPTY_RESULT, type: 'application/xml' });
    proxies.push(proxy);
    const at = through(client, moto, proxy, 's3://deletes/pg');
    const r = await runBin('barman-cloud-backup-delete', ['-r', 'REDUNDANCY 1', ...at.args, server], { env: cleanEnv(at.env) });
    expect(r.code, r.stderr).toBe(1);
    // one batch (the data archives of both backups), still listed: asked again, not quietly, and that answer names none
    expect(r.stderr).toMatch(/names none of the objects, so none is known to be deleted/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await objectKeys(store, `pg/${server}`)).toEqual(before);
  });

  it('a key the store did not delete (the request lost it on the way): that key is a failed deletion', async () => {
    const server = `srv${proxies.length}`;
    await seed(server);
    // the first WAL segment's key changed in the request (same length), so moto deletes only the second
    const lost = `${server}/wals/${wal(1).slice(0, 16)}/${wal(1)}`;
    const proxy = await startS3Proxy(moto.port, () => false, (r) => (isBulkDelete(r) ? Buffer.from(r.body.toString('latin1').replace(`${lost}</Key>`, `${lost.slice(0, -1)}X</Key>`), 'latin1') : r.body));
    proxies.push(proxy);
    const r = await runBin('barman-cloud-backup-delete', ['-b', '20260101T000000', '--endpoint-url', proxy.url, 's3://deletes/pg', server], { env: cleanEnv(MOTO_ENV) });
    // (the WAL cleanup's failure is logged and the command goes on, as barman's: exit 0)
    // (still listed after the quiet request, and the second, non-quiet one loses it too)
    expect(r.stderr).toMatch(new RegExp(`ERROR: Deletion of object pg/${lost} failed: the DeleteObjects answer does not name this object`));
    expect(r.stderr).not.toMatch(new RegExp(`Deletion of object pg/.*${wal(2)} failed`));
    expect(await objectKeys(store, `pg/${server}/wals`)).toEqual([1, 3, 4].map((p) => `${wal(p).slice(0, 16)}/${wal(p)}`));
  });

  it('a listing that still shows the deleted keys (lagging behind): they are deleted again, not quietly, and no failure is reported', async () => {
    const server = `srv${proxies.length}`;
    const before = await seed(server);
    const quiet: string[][] = [];
    const named: string[][] = [];
    // the check after each quiet request is answered with a stale page: every key of that request still there
    const proxy = await startS3Proxy(moto.port, (r) => {
      if (isBulkDelete(r)) (/<Quiet>true<\/Quiet>/.test(r.body.toString('utf8')) ? quiet : named).push(deletedKeys(r));
      if (!(r.method === 'GET' && /[?&]start-after=/.test(r.url))) return false;
      const stale = quiet.at(-1) ?? [];
      const contents = stale.map((k) => `<Contents><Key>${k}</Key><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>`).join('');
      return { status: 200, code: '', message: '', type: 'application/xml', page: `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>deletes</Name><KeyCount>${stale.length}</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>` };
    });
    proxies.push(proxy);
    const r = await runBin('barman-cloud-backup-delete', ['-b', '20260101T000000', '--endpoint-url', proxy.url, 's3://deletes/pg', server], { env: cleanEnv(MOTO_ENV) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(quiet.length).toBeGreaterThan(0);
    expect(named).toEqual(quiet);
    expect(await objectKeys(store, `pg/${server}`)).toEqual(before.filter((k) => !k.includes('20260101T000000') && !k.endsWith(wal(1)) && !k.endsWith(wal(2))));
  });

  it('a batch whose keys have kept objects between them: all of it deleted, no failure reported', async () => {
    const server = `srv${proxies.length}`;
    // the second of four backups is kept standalone: its WAL (3, 4) stays, between WAL 1-2 and 5-6 which go
    const before = await seed(server, store, 4, { 1: 'standalone' });
    const batches: string[][] = [];
    const proxy = await startS3Proxy(moto.port, (r) => {
      if (isBulkDelete(r)) batches.push(deletedKeys(r));
      return false;
    });
    proxies.push(proxy);
    const r = await runBin('barman-cloud-backup-delete', ['-r', 'REDUNDANCY 1', '--endpoint-url', proxy.url, 's3://deletes/pg', server], { env: cleanEnv(MOTO_ENV) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const walKey = (p: number) => `wals/${wal(p).slice(0, 16)}/${wal(p)}`;
    expect(batches).toContainEqual([1, 2, 5, 6].map((p) => `pg/${server}/${walKey(p)}`));
    const gone = new Set(batches.flat().map((k) => k.slice(`pg/${server}/`.length)));
    expect([...gone].filter((k) => !before.includes(k))).toEqual([]);
    expect(await objectKeys(store, `pg/${server}`)).toEqual(before.filter((k) => !gone.has(k)));
    expect(gone.has(walKey(3)) || gone.has(walKey(4))).toBe(false);
  });
});

describe.skipIf(requireTool('PostgreSQL 15', postgresAvailable()))('CompleteMultipartUpload answered by a web page', () => {
  let pg: PgCluster;
  let moto: ServerHandle;
  const proxies: Proxy[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'uploads');
    pg = await startCluster({});
  });
  afterAll(async () => {
    await pg?.remove();
    await Promise.all(proxies.map((p) => p.close()));
    await moto?.stop();
  });

  it.each(['lean client', 'SDK, through a proxy'])('%s: barman-cloud-backup fails and no backup is DONE', async (client) => {
    const completes: string[] = [];
    // POST ?uploadId=…: the completion of a multipart upload (its creation is POST ?uploads)
    const proxy = await startS3Proxy(moto.port, pageFor((r) => {
      const hit = r.method === 'POST' && /[?&]uploadId=/.test(r.url);
      if (hit) completes.push(r.url);
      return hit;
    }));
    proxies.push(proxy);
    const server = `srv${proxies.length}`;
    const at = through(client, moto, proxy, 's3://uploads/pg');
    // uncompressed: the data archive of a new cluster is larger than one part
    const r = await runBin('barman-cloud-backup', ['--immediate-checkpoint', ...at.args, server], { env: cleanEnv({ ...at.env, ...pg.env }), timeoutMs: 120_000 });
    expect(completes.length).toBeGreaterThan(0);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/complete-multipart-upload .*has no ETag, so nothing is known to be stored/);
    const listed = await runBin('barman-cloud-backup-list', ['--format', 'json', '--endpoint-url', moto.url, 's3://uploads/pg', server], { env: cleanEnv(MOTO_ENV) });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { backups_list: { status: string }[] }).backups_list.filter((b) => b.status === 'DONE')).toEqual([]);
  });
});

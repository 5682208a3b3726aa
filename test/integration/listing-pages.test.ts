// A listing's pages are chained by continuation tokens, and a page is trusted to end the listing
// only when it says so (docs/format.md#listing-pages). A server, or a proxy in front of it, that
// answers "more follow" with no token ended the listing silently: wal-restore said "no such WAL"
// (exit 1, so PostgreSQL ends recovery there) and check-wal-archive found a full archive empty
// (exit 0). One that hands back the same token for ever held the command for ever. Real servers
// (moto, azurite, our GCS server) behind a proxy that rewrites only their listing answers.
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBin, type BinResult } from '../helpers/run-bin.ts';
import { CreateMultipartUploadCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { AZURITE_ACCOUNT, azuriteConnectionString, createS3Bucket, startAzurite, startGcs, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV, MOTO_KEYS } from '../helpers/moto.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { segmentFor } from '../helpers/wal-segment.ts';
import { startAnswerProxy, type ProxiedAnswer, type Proxy } from '../helpers/proxy.ts';

const BUCKET = 'pages';
const SEGMENT = '000000010000000000000003';
/** The token the lying proxy hands out, taken out of the request it comes back in: the server then answers its first page again. */
const AGAIN = 'again';
const forgetToken = (param: string) => (url: string) => url.replace(new RegExp(`([?&])${param}=${AGAIN}(&|$)`), '$1');

type Lie = 'no token' | 'same token';

/** An S3 ListObjectsV2 answer that says more follow, with no token or with the same one every time. */
function s3Lie(lie: Lie, a: ProxiedAnswer): ProxiedAnswer {
  let xml = a.body.toString('utf8').replace(/<IsTruncated>false<\/IsTruncated>/, '<IsTruncated>true</IsTruncated>');
  xml = xml.replace(/<NextContinuationToken>[\s\S]*?<\/NextContinuationToken>/, '');
  if (lie === 'no token') xml = xml.replace(/<Contents>[\s\S]*<\/Contents>/, '').replace(/<CommonPrefixes>[\s\S]*<\/CommonPrefixes>/, '');
  else xml = xml.replace('</ListBucketResult>', `<NextContinuationToken>${AGAIN}</NextContinuationToken></ListBucketResult>`);
  return { ...a, body: Buffer.from(xml) };
}

/** A refusal of the listing: exit `code`, one line on stderr naming what is wrong. */
function expectRefused(r: BinResult, code: number, lie: Lie): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(lie === 'no token' ? /gives no continuation token: the listing is incomplete/ : /same continuation token twice/);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
}

describe('listing pages a server lies about', () => {
  let moto: ServerHandle;
  let azurite: ServerHandle;
  let gcs: ServerHandle;
  let work: string;
  let walFile: string;
  const proxies: Proxy[] = [];

  beforeAll(async () => {
    [moto, azurite, gcs] = await Promise.all([startMoto(), startAzurite(), startGcs()]);
    await createS3Bucket(moto.url, BUCKET);
    work = mkdtempSync(join(tmpdir(), 'bc-pages-'));
    walFile = join(work, SEGMENT);
    writeFileSync(walFile, segmentFor(SEGMENT));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all([moto?.stop(), azurite?.stop(), gcs?.stop()]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  // The segment is archived through the server itself; then read through the lying proxy.
  async function archiveThenRestore(direct: { args: string[]; env: Record<string, string> }, lying: { args: string[]; env: Record<string, string> }, lie: Lie) {
    const archived = await runBin('barman-cloud-wal-archive', [...direct.args, walFile], { env: cleanEnv(direct.env) });
    expect(archived.code, archived.stderr).toBe(0);
    const dest = join(work, `restored-${proxies.length}`);
    const restored = await runBin('barman-cloud-wal-restore', [...lying.args, SEGMENT, dest], { env: cleanEnv(lying.env), timeoutMs: 20_000 });
    expectRefused(restored, 4, lie);
    expect(existsSync(dest)).toBe(false);
    // the same archive, answered by the server itself
    const honest = await runBin('barman-cloud-wal-restore', [...direct.args, SEGMENT, dest], { env: cleanEnv(direct.env) });
    expect(honest.code, honest.stderr).toBe(0);
    expect(readFileSync(dest).equals(readFileSync(walFile))).toBe(true);
    // check-wal-archive: an archive holding WAL is not empty. Given the first page's objects it
    // needs no more ("Expected empty archive"); given none, it must not take the page for the end.
    const checked = await runBin('barman-cloud-check-wal-archive', lying.args, { env: cleanEnv(lying.env), timeoutMs: 20_000 });
    expect(checked.code, checked.stderr).not.toBe(0);
    expect(checked.stderr).toMatch(lie === 'no token' ? /the listing is incomplete/ : /Expected empty archive/);
  }

  it.each([
    ['lean client', 'no token'], ['lean client', 'same token'], ['SDK, through a proxy', 'no token'], ['SDK, through a proxy', 'same token'],
  ] as const)('S3, %s: a page with %s', async (client, lie) => {
    const proxy = await startAnswerProxy(moto.port, (req, a) => (req.method === 'GET' && /[?&]list-type=2/.test(req.url) && a.status === 200 ? s3Lie(lie, a) : a), forgetToken('continuation-token'));
    proxies.push(proxy);
    const server = `s3-${proxies.length}`;
    const direct = { args: ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, server], env: MOTO_ENV };
    const lying = client === 'lean client'
      ? { args: ['--endpoint-url', proxy.url, `s3://${BUCKET}/pg`, server], env: MOTO_ENV }
      : { args: direct.args, env: { ...MOTO_ENV, HTTP_PROXY: proxy.url } };
    await archiveThenRestore(direct, lying, lie);
  });

  it('GCS: every page gives the same nextPageToken', async () => {
    const proxy = await startAnswerProxy(gcs.port, (req, a) => {
      if (req.method !== 'GET' || !/\/storage\/v1\/b\/[^/]+\/o\?/.test(req.url) || a.status !== 200) return a;
      return { ...a, body: Buffer.from(JSON.stringify({ ...JSON.parse(a.body.toString('utf8')), nextPageToken: AGAIN })) };
    }, forgetToken('pageToken'));
    proxies.push(proxy);
    const args = ['--cloud-provider', 'google-cloud-storage', `gs://${BUCKET}/pg`, 'gcs'];
    const made = await runBin('barman-cloud-check-wal-archive', args, { env: cleanEnv({ STORAGE_EMULATOR_HOST: gcs.url }) });
    expect(made.code, made.stderr).toBe(0);
    await archiveThenRestore({ args, env: { STORAGE_EMULATOR_HOST: gcs.url } }, { args, env: { STORAGE_EMULATOR_HOST: proxy.url } }, 'same token');
  });

  it('Azure: every page gives the same NextMarker', async () => {
    const proxy = await startAnswerProxy(azurite.port, (req, a) => {
      if (req.method !== 'GET' || !/[?&]comp=list/.test(req.url) || a.status !== 200) return a;
      const xml = a.body.toString('utf8').replace(/<NextMarker\s*\/>|<NextMarker>[\s\S]*?<\/NextMarker>/, `<NextMarker>${AGAIN}</NextMarker>`);
      return { ...a, body: Buffer.from(xml) };
    }); // azurite checks the signed query, so the marker goes on: every key here sorts after it
    proxies.push(proxy);
    const at = (url: string) => ({
      args: ['--cloud-provider', 'azure-blob-storage', `${url}/${AZURITE_ACCOUNT}/pgcontainer/p`, 'az'],
      env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(url) },
    });
    const made = await runBin('barman-cloud-check-wal-archive', at(azurite.url).args, { env: cleanEnv(at(azurite.url).env) });
    expect(made.code, made.stderr).toBe(0);
    await archiveThenRestore(at(azurite.url), at(proxy.url), 'same token');
  });

  // backup-delete ends the uploads a deleted backup left: their listing (ListMultipartUploads) is
  // chained by two markers, which a lying answer may repeat. Its failure never fails the run (a
  // WARNING), as before; it used to never end.
  it('S3: ListMultipartUploads markers handed back again', async () => {
    const s3 = new S3Client({ endpoint: moto.url, forcePathStyle: true, region: 'us-east-1', credentials: MOTO_KEYS });
    const id = '20260101T000000';
    const info = newBackupInfo(id, { status: 'DONE', timeline: 1, begin_wal: '000000010000000000000001', end_wal: '000000010000000000000002' });
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `pg/up/base/${id}/backup.info`, Body: serializeBackupInfo(info) }));
    await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `pg/up/base/${id}/data.tar` }));
    s3.destroy();
    const proxy = await startAnswerProxy(moto.port, (req, a) => {
      if (req.method !== 'GET' || !/[?&]uploads(=|&|$)/.test(req.url) || a.status !== 200) return a;
      const xml = a.body.toString('utf8')
        .replace(/<(NextKeyMarker|NextUploadIdMarker)>[\s\S]*?<\/\1>|<(NextKeyMarker|NextUploadIdMarker)\s*\/>/g, '')
        .replace(/<IsTruncated>false<\/IsTruncated>/, `<IsTruncated>true</IsTruncated><NextKeyMarker>${AGAIN}</NextKeyMarker><NextUploadIdMarker>${AGAIN}</NextUploadIdMarker>`);
      return { ...a, body: Buffer.from(xml) };
    }, (url) => forgetToken('upload-id-marker')(forgetToken('key-marker')(url)));
    proxies.push(proxy);
    const r = await runBin('barman-cloud-backup-delete', ['-b', id, '--endpoint-url', proxy.url, `s3://${BUCKET}/pg`, 'up'], { env: cleanEnv(MOTO_ENV), timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: Could not list the incomplete multipart uploads under .*same continuation token twice/);
  });
});

// An answer that is not a listing is an error, never an empty listing (docs/format.md#listing-answers).
// An endpoint that answers 200 with a web page (a console or a portal at the address given as
// --endpoint-url, a proxy's block page), or with an <Error> document, used to read as "no objects":
// wal-restore said "no such WAL" (exit 1, so PostgreSQL ends recovery there, silently short),
// check-wal-archive found the archive empty (exit 0), and wal-archive exited 0 with nothing stored
// (PostgreSQL then removes the segment). Both S3 clients, the lean one (direct) and the SDK (through
// a proxy, which gets the same page), and GCS. (Azure's SDK already fails on such an answer.)
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBin, type BinResult } from '../helpers/run-bin.ts';
import { createS3Bucket, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { segmentFor } from '../helpers/wal-segment.ts';
import { startS3Proxy, type Proxy } from '../helpers/proxy.ts';
import { postgresAvailable, requireTool, startCluster, type PgCluster } from '../helpers/postgres.ts';

const BUCKET = 'answers';
const SEGMENT = '000000010000000000000003';
const PAGE = '<!doctype html><html><head><title>Console</title></head><body><div id="root"></div></body></html>';

/** A web page at an address, answered with 200 to every request; `seen` sees each request first. */
async function startPage(seen: (req: http.IncomingMessage) => void = () => {}): Promise<Proxy> {
  const server = http.createServer((req, res) => {
    seen(req);
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(PAGE) });
    res.end(PAGE);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A refusal: not 0, and for wal-restore not 1 (that is "no such WAL" to PostgreSQL); one line on stderr. */
function expectRefused(r: BinResult, code?: number): void {
  expect(r.code, r.stderr).not.toBe(0);
  if (code !== undefined) expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(/is not a listing/);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
}

describe('answers that are not listings', () => {
  let moto: ServerHandle;
  let work: string;
  let walFile: string;
  const servers: { close: () => Promise<void> }[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    work = mkdtempSync(join(tmpdir(), 'bc-answers-'));
    walFile = join(work, SEGMENT);
    writeFileSync(walFile, segmentFor(SEGMENT));
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await moto?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const run = (name: string, args: string[], extraEnv: Record<string, string> = {}) =>
    runBin(name, args, { env: cleanEnv({ ...MOTO_ENV, ...extraEnv }) });

  it.each(['S3, lean client: the page at the endpoint', 'S3, SDK: the page from a proxy', 'GCS: the page at the endpoint'])(
    '%s: every command refuses it',
    async (name) => {
      const page = await startPage();
      servers.push(page);
      const where: { url: string[]; env: Record<string, string> } = name.startsWith('GCS')
        ? { url: ['--cloud-provider', 'google-cloud-storage', `gs://${BUCKET}/pg`, 'srv'], env: { STORAGE_EMULATOR_HOST: page.url } }
        : name.includes('proxy')
          ? { url: ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, 'srv'], env: { HTTP_PROXY: page.url } }
          : { url: ['--endpoint-url', page.url, `s3://${BUCKET}/pg`, 'srv'], env: {} };
      const dest = join(work, `restored-${servers.length}`);

      expectRefused(await run('barman-cloud-check-wal-archive', where.url, where.env));
      expectRefused(await run('barman-cloud-wal-restore', [...where.url, SEGMENT, dest], where.env), 4);
      expect(existsSync(dest)).toBe(false);
      expectRefused(await run('barman-cloud-wal-archive', ['--allow-mixed-encryption', ...where.url, walFile], where.env));
    },
  );

  it('an <Error> document sent with 200 for a listing: wal-restore exits 4, not 1', async () => {
    const archived = await run('barman-cloud-wal-archive', ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, 'srv', walFile]);
    expect(archived.code, archived.stderr).toBe(0);
    // moto behind a proxy that answers each listing with an <Error> document and status 200
    const faulty = await startS3Proxy(Number(new URL(moto.url).port), (r) =>
      r.method === 'GET' && /[?&]list-type=2/.test(r.url) && { status: 200, code: 'SlowDown', message: 'busy' });
    servers.push(faulty);
    const dest = join(work, 'restored-error-doc');
    expectRefused(await run('barman-cloud-wal-restore', ['--endpoint-url', faulty.url, `s3://${BUCKET}/pg`, 'srv', SEGMENT, dest]), 4);
    expect(existsSync(dest)).toBe(false);
    // the same archive, answered by moto itself
    const direct = await run('barman-cloud-wal-restore', ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, 'srv', SEGMENT, dest]);
    expect(direct.code, direct.stderr).toBe(0);
  });
});

// The same page answers an upload with 200 and no ETag (every S3 upload answer has one): an lz4
// backup of a small cluster is one PUT per object, and it exited 0 with nothing stored.
describe.skipIf(requireTool('PostgreSQL 15', postgresAvailable()))('uploads answered by a web page', () => {
  let pg: PgCluster;
  let moto: ServerHandle;
  let page: Proxy;
  const bodies: string[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    page = await startPage((req) => req.on('data', (d: Buffer) => bodies.push(d.toString('latin1', 0, 4))));
    pg = await startCluster({});
  });
  afterAll(async () => {
    await pg?.remove();
    await page?.close();
    await moto?.stop();
  });

  it.each([['lean client', false], ['SDK, through a proxy', true]])('%s: barman-cloud-backup --lz4 fails', async (_name, viaProxy) => {
    const where = viaProxy ? ['--endpoint-url', moto.url] : ['--endpoint-url', page.url];
    const env = cleanEnv({ ...MOTO_ENV, ...pg.env, ...(viaProxy ? { HTTP_PROXY: page.url } : {}) });
    bodies.length = 0;
    const r = await runBin('barman-cloud-backup', ['--lz4', '--immediate-checkpoint', ...where, `s3://${BUCKET}/pg`, 'srv'], { env, timeoutMs: 120_000 });
    expect(bodies.length).toBeGreaterThan(0); // the page did receive the upload
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/has no ETag, so nothing is known to be stored/);
  });
});

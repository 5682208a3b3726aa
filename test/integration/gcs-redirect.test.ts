// A GCS endpoint that answers a redirect to another origin gets nothing sent there: not the
// customer-supplied key (CSEK), not the object's bytes (docs/configuration.md#redirects). Our GCS
// test server stands behind a front that answers 307 for chosen requests, pointing at a TCP relay
// on another port (the "elsewhere") that counts the bytes reaching it and passes them on to the
// same GCS server, so that following the redirect would succeed, exit 0.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startGcsServer } from '../servers/gcs-server.mjs';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { segmentFor, writeWalFile } from '../helpers/wal-segment.ts';
import { startForwardProxy } from '../helpers/proxy.ts';

const BUCKET = 'redirected';
const KEY = randomBytes(32);
const SEGMENT = '000000010000000000000003';

type GcsServer = Awaited<ReturnType<typeof startGcsServer>>;
let gcs: GcsServer;
let front: Server;
let elsewhere: import('node:net').Server;
let frontUrl = '';
let elsewhereUrl = '';
let work = '';
/** Which requests the front answers with a 307 to the elsewhere server. */
let redirectWhen: (req: IncomingMessage) => boolean = () => false;
/** What reached the elsewhere relay: connections, bytes, and whether they held the CSEK header. */
let reached: { connections: number; bytes: number; key: boolean };
const relayed = new Set<import('node:net').Socket>();
/** Where the front's 307 points: the elsewhere relay unless a case says otherwise. */
let redirectTo = () => elsewhereUrl;

function forward(req: IncomingMessage, res: import('node:http').ServerResponse): void {
  const up = httpRequest({ host: '127.0.0.1', port: gcs.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}

async function listen(server: Server | import('node:net').Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

beforeAll(async () => {
  gcs = await startGcsServer();
  await fetch(`${gcs.url}/storage/v1/b?project=test`, { method: 'POST', body: JSON.stringify({ name: BUCKET }), headers: { 'content-type': 'application/json' } });
  elsewhere = createTcpServer((socket) => {
    reached.connections++;
    relayed.add(socket);
    socket.on('close', () => relayed.delete(socket));
    const up = connect(gcs.port, '127.0.0.1');
    socket.on('data', (d: Buffer) => {
      reached.bytes += d.length;
      if (d.toString('latin1').toLowerCase().includes('x-goog-encryption-key:')) reached.key = true;
    });
    socket.pipe(up).pipe(socket);
    socket.on('error', () => up.destroy());
    up.on('error', () => socket.destroy());
  });
  elsewhereUrl = await listen(elsewhere);
  front = createServer((req, res) => {
    if (!redirectWhen(req)) return forward(req, res);
    req.resume();
    res.writeHead(307, { location: `${redirectTo()}${req.url}${req.url?.includes('?') ? '&' : '?'}again=1` });
    res.end();
  });
  frontUrl = await listen(front);
  work = mkdtempSync(join(tmpdir(), 'bc-gcs-redirect-'));
  writeFileSync(join(work, 'key'), KEY.toString('base64'));
}, 60_000);

afterAll(async () => {
  front?.closeAllConnections();
  for (const socket of relayed) socket.destroy();
  for (const s of [front, elsewhere]) await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  await gcs?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  redirectWhen = () => false;
  redirectTo = () => elsewhereUrl;
  reached = { connections: 0, bytes: 0, key: false };
});

const cli = (...args: string[]) => ['--cloud-provider', 'google-cloud-storage', '--google-customer-key-file', join(work, 'key'), `gs://${BUCKET}/pg`, 'srv', ...args];
const env = () => cleanEnv({ STORAGE_EMULATOR_HOST: frontUrl });
const REFUSED = /: HTTP 307: http:\/\/127\.0\.0\.1:\d+ redirected to another origin, which is not followed/;

describe('GCS: a redirect to another origin is not followed', () => {
  it('wal-restore: the download (which carries the CSEK) is redirected: exit 4, one line, nothing reaches the other origin', async () => {
    const segment = segmentFor(SEGMENT);
    const archived = await runBin('barman-cloud-wal-archive', cli(writeWalFile(work, SEGMENT, segment)), { env: env() });
    expect({ code: archived.code, stderr: archived.stderr }).toEqual({ code: 0, stderr: '' });

    redirectWhen = (req) => req.method === 'GET' && /[?&]alt=media/.test(req.url ?? '');
    const dest = join(work, 'RECOVERYXLOG');
    const r = await runBin('barman-cloud-wal-restore', cli(SEGMENT, dest), { env: env() });
    expect(reached).toEqual({ connections: 0, bytes: 0, key: false });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(REFUSED);
    expect(existsSync(dest)).toBe(false);

    // the same request without the redirect restores the segment
    redirectWhen = () => false;
    const ok = await runBin('barman-cloud-wal-restore', cli(SEGMENT, dest), { env: env() });
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(dest).equals(segment)).toBe(true);
  }, 60_000);

  it('wal-restore through a forward proxy (HTTP_PROXY): the redirected download is not sent through it either', async () => {
    const name = '000000010000000000000004';
    const segment = segmentFor(name);
    const archived = await runBin('barman-cloud-wal-archive', cli(writeWalFile(work, name, segment)), { env: env() });
    expect({ code: archived.code, stderr: archived.stderr }).toEqual({ code: 0, stderr: '' });
    const proxy = await startForwardProxy();
    try {
      redirectWhen = (req) => req.method === 'GET' && /[?&]alt=media/.test(req.url ?? '');
      const dest = join(work, 'RECOVERYXLOG-proxied');
      const r = await runBin('barman-cloud-wal-restore', cli(name, dest), { env: cleanEnv({ STORAGE_EMULATOR_HOST: frontUrl, HTTP_PROXY: proxy.url }) });
      expect(proxy.seen.some((s) => s.line.startsWith(`GET ${frontUrl}/`)), JSON.stringify(proxy.seen)).toBe(true);
      expect(proxy.seen.filter((s) => s.line.includes(elsewhereUrl))).toEqual([]);
      expect(reached).toEqual({ connections: 0, bytes: 0, key: false });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(REFUSED);
      expect(existsSync(dest)).toBe(false);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('a redirect within the endpoint\'s origin is still followed: wal-restore exit 0, the segment intact', async () => {
    const name = '000000010000000000000005';
    const segment = segmentFor(name);
    const archived = await runBin('barman-cloud-wal-archive', cli(writeWalFile(work, name, segment)), { env: env() });
    expect({ code: archived.code, stderr: archived.stderr }).toEqual({ code: 0, stderr: '' });
    let redirected = 0;
    redirectTo = () => frontUrl;
    redirectWhen = (req) => req.method === 'GET' && /[?&]alt=media/.test(req.url ?? '') && !/[?&]again=1/.test(req.url ?? '') && ++redirected > 0;
    const dest = join(work, 'RECOVERYXLOG-same-origin');
    const r = await runBin('barman-cloud-wal-restore', cli(name, dest), { env: env() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(redirected).toBe(1);
    expect(readFileSync(dest).equals(segment)).toBe(true);
  }, 60_000);

  it('backup-list: the listing is redirected: exit 4, one line, nothing reaches the other origin', async () => {
    redirectWhen = (req) => req.method === 'GET' && /\/o(\?|$)/.test(req.url ?? '');
    const r = await runBin('barman-cloud-backup-list', cli(), { env: env() });
    expect(reached).toEqual({ connections: 0, bytes: 0, key: false });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(REFUSED);
  }, 60_000);

  // A body over 32 MiB goes through a resumable session: opened by the client (gaxios), its chunks
  // sent by our own loop (teeny-request). Each path is redirected in turn.
  it.each([
    ['the session is opened (gaxios)', (req: IncomingMessage) => req.method === 'POST' && /uploadType=resumable/.test(req.url ?? '') && !/upload_id=/.test(req.url ?? '')],
    ['a chunk is sent (our chunk loop)', (req: IncomingMessage) => req.method === 'PUT' && /upload_id=/.test(req.url ?? '')],
  ])('a resumable upload, redirected when %s: refused, nothing reaches the other origin', async (_, when) => {
    const store = await openObjectStore({
      provider: 'google-cloud-storage', bucket: BUCKET, retry: { ...DEFAULT_RETRY, maxAttempts: 1 }, apiEndpoint: frontUrl, projectId: 'test', customerKey: KEY,
    });
    try {
      redirectWhen = when;
      await expect(store.put('pg/big', randomBytes(40 * 1024 * 1024))).rejects.toThrow(REFUSED);
      expect(reached).toEqual({ connections: 0, bytes: 0, key: false });
      expect(await store.head('pg/big')).toBeNull();
    } finally {
      await store.close();
    }
  }, 60_000);
});

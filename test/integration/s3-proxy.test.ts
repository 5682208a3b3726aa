// S3 through a forward proxy named by the environment, as barman-cloud's boto3 honours
// http_proxy / https_proxy / no_proxy (docs/configuration.md#proxies): the WAL commands run through
// a real proxy in front of moto (plain HTTP, then HTTPS through a CONNECT tunnel with the endpoint's
// own CA), no_proxy reaches the store directly, and a proxy's password is never printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { createS3Bucket, freePort, makeTestCA, startMoto, type ServerHandle, type TestCA } from '../helpers/servers.ts';
import { startForwardProxy, type Proxy } from '../helpers/proxy.ts';
import { segmentFor, walSegmentBytes, writeWalFile } from '../helpers/wal-segment.ts';

const BUCKET = 'proxied';
const PASSWORD = 'pa$s w0rd';
const CREDENTIALS = `walker:${PASSWORD}`;
const KEYS = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_DEFAULT_REGION: 'us-east-1' };

let moto: ServerHandle;
let motoTls: ServerHandle;
let ca: TestCA;
let proxy: Proxy & { seen: { line: string; auth?: string }[] };
const work = mkdtempSync(join(tmpdir(), 'bc-proxy-'));

const proxyUrl = (base = proxy.url) => base.replace('http://', `http://walker:${encodeURIComponent(PASSWORD)}@`);
const basic = `Basic ${Buffer.from(CREDENTIALS).toString('base64')}`;

async function roundTrip(endpoint: string, server: string, wal: string, env: Record<string, string>) {
  const data = segmentFor(wal);
  const path = writeWalFile(join(work, server), wal, data);
  const archived = await runBin('barman-cloud-wal-archive', ['--endpoint-url', endpoint, `s3://${BUCKET}/p`, server, path], { env: cleanEnv(env) });
  const dest = join(work, `${server}-${wal}.restored`);
  const restored = await runBin('barman-cloud-wal-restore', ['--endpoint-url', endpoint, `s3://${BUCKET}/p`, server, wal, dest], { env: cleanEnv(env) });
  return { archived, restored, same: restored.code === 0 && readFileSync(dest).equals(data) };
}

beforeAll(async () => {
  ca = makeTestCA();
  [moto, motoTls] = await Promise.all([startMoto(), startMoto({ tls: ca })]);
  await createS3Bucket(moto.url, BUCKET);
  await createS3Bucket(motoTls.url, BUCKET, ca.caPem);
  proxy = await startForwardProxy(CREDENTIALS);
});

afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
  await motoTls?.stop();
});

describe('S3 through a proxy from the environment', () => {
  it('http endpoint, HTTP_PROXY with credentials: wal-archive and wal-restore go through it', async () => {
    const before = proxy.seen.length;
    const r = await roundTrip(moto.url, 'plain', '000000010000000000000001', { ...KEYS, HTTP_PROXY: proxyUrl() });
    expect(r.archived.code, r.archived.stderr).toBe(0);
    expect(r.restored.code, r.restored.stderr).toBe(0);
    expect(r.same).toBe(true);
    const seen = proxy.seen.slice(before);
    expect(seen.some((s) => s.line.startsWith(`PUT ${moto.url}/${BUCKET}/p/plain/wals/`)), JSON.stringify(seen)).toBe(true);
    expect(seen.some((s) => s.line.startsWith(`GET ${moto.url}/${BUCKET}/p/plain/wals/`)), JSON.stringify(seen)).toBe(true);
    for (const s of seen) expect(s.auth).toBe(basic);
  });

  it('https endpoint, https_proxy: a CONNECT tunnel, and the endpoint\'s certificate still checked at its end', async () => {
    const before = proxy.seen.length;
    const env = { ...KEYS, https_proxy: proxyUrl(), AWS_CA_BUNDLE: ca.caFile };
    const r = await roundTrip(motoTls.url, 'tls', '000000010000000000000002', env);
    expect(r.archived.code, r.archived.stderr).toBe(0);
    expect(r.restored.code, r.restored.stderr).toBe(0);
    expect(r.same).toBe(true);
    const seen = proxy.seen.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(s).toEqual({ line: `CONNECT 127.0.0.1:${motoTls.port}`, auth: basic });
    // Without the CA the tunnel opens, and the certificate at its end is refused.
    const { AWS_CA_BUNDLE: _, ...noCa } = env;
    const refused = await roundTrip(motoTls.url, 'tls', '000000010000000000000003', noCa);
    expect(refused.archived.code).not.toBe(0);
    expect(refused.archived.stderr).toMatch(/certificate/i);
  });

  it('no_proxy naming the endpoint\'s host reaches the store directly', async () => {
    const before = proxy.seen.length;
    const lists = ['127.0.0.1', `localhost, .0.0.1:${moto.port}`, '*'];
    for (const [i, noProxy] of lists.entries()) {
      const r = await roundTrip(moto.url, 'direct', `00000001000000000000000${i + 4}`, { ...KEYS, HTTP_PROXY: proxyUrl(), NO_PROXY: noProxy });
      expect(r.archived.code, `${noProxy}: ${r.archived.stderr}`).toBe(0);
      expect(r.same, noProxy).toBe(true);
    }
    expect(proxy.seen.slice(before)).toEqual([]);
  });

  it('a proxy that is down or refuses the credentials: the call fails as for an unreachable store, naming the proxy but never its password', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const wal = '000000010000000000000009';
    const direct = await runBin('barman-cloud-wal-restore', ['--endpoint-url', down, `s3://${BUCKET}/p`, 'plain', wal, join(work, 'x')], { env: cleanEnv(KEYS) });
    const viaDown = await runBin('barman-cloud-wal-restore', ['--endpoint-url', moto.url, `s3://${BUCKET}/p`, 'plain', wal, join(work, 'x')],
      { env: cleanEnv({ ...KEYS, HTTP_PROXY: proxyUrl(down) }) });
    expect(viaDown.code, viaDown.stderr).toBe(direct.code);
    expect(viaDown.stderr).toContain(`through the proxy ${down}`);
    const wrong = proxy.url.replace('http://', 'http://walker:not-it@');
    const refused = await runBin('barman-cloud-wal-archive', ['--endpoint-url', moto.url, `s3://${BUCKET}/p`, 'plain', writeWalFile(join(work, 'w'), wal, walSegmentBytes())],
      { env: cleanEnv({ ...KEYS, HTTP_PROXY: wrong }) });
    expect(refused.code).not.toBe(0);
    for (const r of [viaDown, refused]) {
      expect(r.stderr).not.toContain(PASSWORD);
      expect(r.stderr).not.toContain(encodeURIComponent(PASSWORD));
      expect(r.stderr).not.toContain('not-it');
      expect(r.stdout).toBe('');
    }
  });
});

// Azure Blob Storage and Google Cloud Storage through a forward proxy named by the environment, as
// barman-cloud's Azure and Google SDKs honour http_proxy / https_proxy / no_proxy
// (docs/configuration.md#proxies). Our Azure driver gives the SDK an agent of its own (timeouts,
// CA), which turns the SDK's proxy support off: the driver applies the proxy itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { AZURITE_ACCOUNT, azuriteConnectionString, freePort, makeTestCA, startAzurite, startGcs, type ServerHandle, type TestCA } from '../helpers/servers.ts';
import { startForwardProxy, type Proxy } from '../helpers/proxy.ts';
import { segmentFor, writeWalFile } from '../helpers/wal-segment.ts';

const PASSWORD = 'pr0xy s3cret';
const CREDENTIALS = `walker:${PASSWORD}`;
const basic = `Basic ${Buffer.from(CREDENTIALS).toString('base64')}`;

let azurite: ServerHandle;
let azuriteTls: ServerHandle;
let gcs: ServerHandle;
let ca: TestCA;
let proxy: Proxy & { seen: { line: string; auth?: string }[] };
const work = mkdtempSync(join(tmpdir(), 'bc-provider-proxy-'));

const proxyUrl = (base = proxy.url) => base.replace('http://', `http://walker:${encodeURIComponent(PASSWORD)}@`);

interface Target {
  args: string[];
  env: Record<string, string>;
}

const azureTarget = (server: ServerHandle): Target => ({
  args: ['--cloud-provider', 'azure-blob-storage', `${server.url}/${AZURITE_ACCOUNT}/pgcontainer/p`],
  env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(server.url) },
});
const gcsTarget = (): Target => ({ args: ['--cloud-provider', 'google-cloud-storage', 'gs://pgbucket/p'], env: { STORAGE_EMULATOR_HOST: gcs.url } });

async function roundTrip(t: Target, server: string, wal: string, env: Record<string, string>) {
  const data = segmentFor(wal);
  const path = writeWalFile(join(work, server), wal, data);
  const all = cleanEnv({ ...t.env, ...env });
  const archived = await runBin('barman-cloud-wal-archive', [...t.args, server, path], { env: all });
  const dest = join(work, `${server}-${wal}.restored`);
  const restored = await runBin('barman-cloud-wal-restore', [...t.args, server, wal, dest], { env: all });
  return { archived, restored, same: restored.code === 0 && readFileSync(dest).equals(data) };
}

beforeAll(async () => {
  ca = makeTestCA();
  [azurite, azuriteTls, gcs] = await Promise.all([startAzurite(), startAzurite({ tls: ca }), startGcs()]);
  proxy = await startForwardProxy(CREDENTIALS);
  // containers and the bucket made directly, not through the proxy
  for (const t of [azureTarget(azurite), { ...azureTarget(azuriteTls), env: { ...azureTarget(azuriteTls).env, REQUESTS_CA_BUNDLE: ca.caFile } }, gcsTarget()]) {
    const r = await runBin('barman-cloud-check-wal-archive', [...t.args, 'setup'], { env: cleanEnv(t.env) });
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await Promise.all([azurite?.stop(), azuriteTls?.stop(), gcs?.stop()]);
});

describe('Azure Blob Storage through a proxy from the environment', () => {
  it('http endpoint, HTTP_PROXY with credentials: wal-archive and wal-restore go through it', async () => {
    const before = proxy.seen.length;
    const r = await roundTrip(azureTarget(azurite), 'az-plain', '000000010000000000000001', { HTTP_PROXY: proxyUrl() });
    expect(r.archived.code, r.archived.stderr).toBe(0);
    expect(r.restored.code, r.restored.stderr).toBe(0);
    expect(r.same).toBe(true);
    const seen = proxy.seen.slice(before);
    const blob = `${azurite.url}/${AZURITE_ACCOUNT}/pgcontainer/p/az-plain/wals/0000000100000000/000000010000000000000001`;
    expect(seen.some((s) => s.line.startsWith(`PUT ${blob}`)), JSON.stringify(seen)).toBe(true);
    expect(seen.some((s) => s.line.startsWith(`GET ${blob}`)), JSON.stringify(seen)).toBe(true);
    for (const s of seen) expect(s.auth).toBe(basic);
  });

  it("https endpoint, https_proxy: a CONNECT tunnel, and the endpoint's certificate checked at its end", async () => {
    const before = proxy.seen.length;
    const env = { https_proxy: proxyUrl(), REQUESTS_CA_BUNDLE: ca.caFile };
    const r = await roundTrip(azureTarget(azuriteTls), 'az-tls', '000000010000000000000002', env);
    expect(r.archived.code, r.archived.stderr).toBe(0);
    expect(r.same).toBe(true);
    const seen = proxy.seen.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(s).toEqual({ line: `CONNECT 127.0.0.1:${azuriteTls.port}`, auth: basic });
    const { REQUESTS_CA_BUNDLE: _, ...noCa } = env;
    const refused = await roundTrip(azureTarget(azuriteTls), 'az-tls', '000000010000000000000003', noCa);
    expect(refused.archived.code).not.toBe(0);
    expect(refused.archived.stderr).toMatch(/certificate/i);
  });

  it("no_proxy naming the endpoint's host reaches the store directly", async () => {
    const before = proxy.seen.length;
    const r = await roundTrip(azureTarget(azurite), 'az-direct', '000000010000000000000004', { HTTP_PROXY: proxyUrl(), no_proxy: '127.0.0.1' });
    expect(r.archived.code, r.archived.stderr).toBe(0);
    expect(r.same).toBe(true);
    expect(proxy.seen.slice(before)).toEqual([]);
  });

  it('a proxy that is down: the call fails, and its password is never printed', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const t = azureTarget(azurite);
    const r = await runBin('barman-cloud-wal-restore', ['-vv', ...t.args, 'az-plain', '000000010000000000000001', join(work, 'never')],
      { env: cleanEnv({ ...t.env, HTTP_PROXY: proxyUrl(down) }) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toContain(PASSWORD);
    expect(r.stderr).not.toContain(encodeURIComponent(PASSWORD));
  });
});

describe('Google Cloud Storage through a proxy from the environment', () => {
  it('HTTP_PROXY: wal-archive and wal-restore go through it (the Google client honours it)', async () => {
    const before = proxy.seen.length;
    const r = await roundTrip(gcsTarget(), 'gs-plain', '000000010000000000000001', { HTTP_PROXY: proxyUrl() });
    expect(r.archived.code, r.archived.stderr).toBe(0);
    expect(r.same).toBe(true);
    const seen = proxy.seen.slice(before);
    expect(seen.some((s) => s.line.startsWith(`POST ${gcs.url}/upload/storage/v1/b/pgbucket/o`)), JSON.stringify(seen)).toBe(true);
    expect(seen.some((s) => s.line.startsWith(`GET ${gcs.url}/storage/v1/b/pgbucket/o/p%2Fgs-plain%2Fwals`)), JSON.stringify(seen)).toBe(true);
  });
});

// Starts the real servers the tests run against: moto_server (S3), Ceph's RADOS Gateway (a second
// S3), azurite (Azure Blob), our GCS JSON-API test server, and a loopback managed-identity token
// endpoint. Each start function returns
// a handle whose stop() ends only the process it started.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createServer as createNetServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startJsonEndpoint } from './json-endpoint.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export interface ServerHandle {
  url: string;
  port: number;
  stop(): Promise<void>;
}

// Children run in their own process group (detached) so that a wrapper script (pyenv's moto_server
// shim) and everything under it is stopped together; whatever is still running when this process
// ends is killed, so no server outlives the test run that started it.
const started = new Set<ChildProcess>();
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}
process.once('exit', () => {
  for (const child of started) killGroup(child, 'SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    for (const child of started) killGroup(child, 'SIGKILL');
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createNetServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} before listening`);
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
}

function track(child: ChildProcess, what: string): { stderr: () => string } {
  started.add(child);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  child.stdout?.resume();
  child.once('exit', () => started.delete(child));
  return { stderr: () => `${what}: ${err}` };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((res) => {
    const t = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    killGroup(child, 'SIGTERM');
  });
}

/** A throw-away CA and a server certificate for 127.0.0.1 / localhost, made with openssl. */
export interface TestCA {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
}

/** `dnsNames`: more names the server certificate is valid for (production-shaped host names). */
export function makeTestCA(dnsNames: string[] = []): TestCA {
  const dir = mkdtempSync(join(tmpdir(), 'bc-ca-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=barman-cloud-ts test CA']);
  const san = ['IP:127.0.0.1', 'DNS:localhost', ...dnsNames.map((n) => `DNS:${n}`)].join(',');
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server.key'),
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
  };
}

export function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** moto_server on loopback; with `tls` it serves HTTPS with the given certificate. */
export async function startMoto(opts: { tls?: TestCA } = {}): Promise<ServerHandle> {
  const port = await freePort();
  const args = ['-H', '127.0.0.1', '-p', String(port)];
  if (opts.tls) args.push('-c', opts.tls.certFile, '-k', opts.tls.keyFile);
  const child = spawn('moto_server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const t = track(child, 'moto_server');
  try {
    await waitForPort(port, child, 'moto_server');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${t.stderr()}`);
  }
  const scheme = opts.tls ? 'https' : 'http';
  return { url: `${scheme}://127.0.0.1:${port}`, port, stop: () => stopChild(child) };
}

export const AZURITE_ACCOUNT = 'devstoreaccount1';
// The published, well-known Azurite development key (not a secret).
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function azuriteConnectionString(url: string): string {
  const scheme = url.startsWith('https') ? 'https' : 'http';
  return `DefaultEndpointsProtocol=${scheme};AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${url}/${AZURITE_ACCOUNT};`;
}

/** azurite's blob service, in memory; `tls` + `oauth` enable bearer-token auth over HTTPS. */
export async function startAzurite(opts: { tls?: TestCA; oauth?: boolean } = {}): Promise<ServerHandle> {
  const port = await freePort();
  const main = join(ROOT, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
  if (!existsSync(main)) throw new Error('azurite is not installed (npm ci)');
  const args = [
    main, '--blobHost', '127.0.0.1', '--blobPort', String(port),
    '--skipApiVersionCheck', '--disableTelemetry', '--silent', '--inMemoryPersistence', '--loose',
  ];
  if (opts.tls) args.push('--cert', opts.tls.certFile, '--key', opts.tls.keyFile);
  if (opts.oauth) args.push('--oauth', 'basic');
  // Run in a scratch directory: azurite may leave debug or extent files in its working directory.
  const cwd = mkdtempSync(join(tmpdir(), 'bc-azurite-'));
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const t = track(child, 'azurite');
  try {
    await waitForPort(port, child, 'azurite');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${t.stderr()}`);
  }
  const scheme = opts.tls ? 'https' : 'http';
  return { url: `${scheme}://127.0.0.1:${port}`, port, stop: () => stopChild(child) };
}

/** Our GCS JSON-API test server, as a child process (so a test can kill it like a real server). */
export async function startGcs(): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'test', 'servers', 'gcs-server.mjs'), '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const t = track(child, 'gcs-server');
  try {
    await waitForPort(port, child, 'gcs-server');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${t.stderr()}`);
  }
  return { url: `http://127.0.0.1:${port}`, port, stop: () => stopChild(child) };
}

function b64url(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** An unsigned JWT with the claims azurite checks: audience storage, an Entra issuer. */
export function fakeEntraToken(): string {
  const now = Math.floor(Date.now() / 1000);
  const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  return [
    b64url({ alg: 'RS256', typ: 'JWT' }),
    b64url({
      aud: 'https://storage.azure.com',
      iss: `https://sts.windows.net/${tenant}/`,
      iat: now - 60, nbf: now - 60, exp: now + 3600,
      oid: '00000000-0000-0000-0000-000000000001', tid: tenant,
    }),
    'c2lnbmF0dXJl',
  ].join('.');
}

/**
 * A loopback endpoint speaking the App Service managed-identity protocol that @azure/identity uses
 * with IDENTITY_ENDPOINT / IDENTITY_HEADER. Records how often it was asked.
 */
export async function startTokenServer(): Promise<ServerHandle & { header: string; requests: () => number }> {
  const header = 'test-identity-header';
  let requests = 0;
  const endpoint = await startJsonEndpoint(({ url, headers }) => {
    const resource = url.searchParams.get('resource');
    if (headers['x-identity-header'] !== header || !resource) return { status: 400, doc: { error: 'bad_request' } };
    requests++;
    return {
      status: 200,
      doc: { access_token: fakeEntraToken(), expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource, token_type: 'Bearer' },
    };
  });
  return { url: `${endpoint.origin}/token`, port: endpoint.port, header, requests: () => requests, stop: endpoint.stop };
}

/** Create a bucket on moto (or RGW, with its keys) with a plain signed request through the SDK (test set-up only). */
export async function createS3Bucket(
  endpoint: string, bucket: string, ca?: string, keys: S3Keys = { accessKeyId: 'testing', secretAccessKey: 'testing' },
): Promise<void> {
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const { NodeHttpHandler } = await import('@smithy/node-http-handler');
  const { Agent } = await import('node:https');
  const client = new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: keys,
    ...(ca ? { requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca }) }) } : {}),
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

// ---- Ceph RADOS Gateway: a second, independent S3 implementation --------------------------------

/** Fixed keys of the RGW admin user every cluster starts with (test-only, not secrets). */
export const RGW_ADMIN = { accessKeyId: 'BCTSRGWADMIN00000001', secretAccessKey: 'bc-ts-rgw-admin-test-key' };

const RGW_TOOLS = ['radosgw', 'radosgw-admin', 'ceph-mon', 'ceph-osd', 'monmaptool', 'ceph'];

/** Whether Debian's Ceph packages (radosgw ceph-mon ceph-osd ceph-common ceph-base) are installed. */
export function rgwAvailable(): boolean {
  return RGW_TOOLS.every(commandExists);
}

export interface S3Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface RgwHandle extends ServerHandle {
  admin: S3Keys;
  /** Milliseconds from spawning the cluster to radosgw answering with the admin user in place. */
  startMs: number;
  /** Another RGW user (its own keys, no access to others' buckets unless a policy grants it). */
  createUser(uid: string): Promise<S3Keys>;
  /** `https://127.0.0.1:PORT`, when started with `tls` (beast's ssl_endpoint beside the plain one). */
  httpsUrl?: string;
}

/**
 * A one-host Ceph cluster (monitor, memstore OSD, radosgw) on loopback, from test/servers/rgw.mjs,
 * in a scratch directory that stop() removes.
 */
export async function startRgw(opts: { tls?: TestCA; sseCOverHttp?: boolean } = {}): Promise<RgwHandle> {
  // The cluster picks its monitor/OSD ports in a random window; a clash with another test's
  // cluster makes a daemon exit at once, so try again a couple of times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRgwOnce(opts.tls, opts.sseCOverHttp);
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

async function startRgwOnce(tls?: TestCA, sseCOverHttp = false): Promise<RgwHandle> {
  const port = await freePort();
  const sslPort = tls ? await freePort() : 0;
  const dir = mkdtempSync(join(tmpdir(), 'bc-rgw-'));
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'test', 'servers', 'rgw.mjs'), '--dir', dir, '--port', String(port),
      '--access-key', RGW_ADMIN.accessKeyId, '--secret-key', RGW_ADMIN.secretAccessKey,
      ...(tls ? ['--ssl-port', String(sslPort), '--ssl-cert', tls.certFile, '--ssl-key', tls.keyFile] : []),
      ...(sseCOverHttp ? ['--sse-c-over-http'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  started.add(child);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  child.once('exit', () => started.delete(child));
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  let conf: string;
  try {
    conf = await new Promise<string>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error('RGW did not start within 60 s')), 60_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(timer);
          res((JSON.parse(line) as { conf: string }).conf);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`test/servers/rgw.mjs exited with code ${code} before it was ready`));
      });
    });
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${err}`);
  }
  const startMs = Date.now() - t0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    ...(tls ? { httpsUrl: `https://127.0.0.1:${sslPort}` } : {}),
    admin: RGW_ADMIN,
    startMs,
    stop,
    async createUser(uid) {
      const keys = { accessKeyId: `BCTS${uid.toUpperCase().replace(/[^A-Z0-9]/g, '')}`.padEnd(20, '0'), secretAccessKey: `${uid}-test-key` };
      execFileSync('radosgw-admin', [
        '-c', conf, '-n', 'client.rgw', 'user', 'create', '--uid', uid, '--display-name', uid,
        '--access-key', keys.accessKeyId, '--secret', keys.secretAccessKey,
      ], { stdio: 'pipe' });
      return keys;
    },
  };
}

/**
 * Let RGW user `uid` do exactly one thing in `bucket` (owned by `owner`): PutObject. No list, no
 * get, no delete: the least-privilege archive credential.
 */
export async function grantPutObjectOnly(endpoint: string, owner: S3Keys, bucket: string, uid: string): Promise<void> {
  const { S3Client, PutBucketPolicyCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: owner });
  const policy = {
    Version: '2012-10-17',
    Statement: [{
      Effect: 'Allow',
      Principal: { AWS: [`arn:aws:iam:::user/${uid}`] },
      Action: ['s3:PutObject'],
      Resource: [`arn:aws:s3:::${bucket}/*`],
    }],
  };
  try {
    await client.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
  } finally {
    client.destroy();
  }
}

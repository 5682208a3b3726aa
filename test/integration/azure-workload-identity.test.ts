// Azure Workload Identity (#13 item 5): AZURE_FEDERATED_TOKEN_FILE + AZURE_CLIENT_ID +
// AZURE_TENANT_ID + AZURE_AUTHORITY_HOST, as the workload-identity webhook injects them, through the
// real executables. azurite runs HTTPS with bearer-token auth (--oauth basic); a loopback token
// authority accepts the client assertion only when it is the federated token file's content and
// answers with a token azurite takes (aud storage, Entra issuer). The storage URL is the production
// form https://<account>.blob.core.windows.net/<container>/<path> (barman's DefaultAzureCredential
// applies to it without any flag); test/helpers/redirect-tls.mjs sends those TLS connections, and the
// authority's instance-discovery request to login.microsoftonline.com, to the loopback servers.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AZURITE_ACCOUNT, AZURITE_KEY, ROOT, fakeEntraToken, makeTestCA, startAzurite, type ServerHandle, type TestCA } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startJsonEndpoint, type JsonEndpoint } from '../helpers/json-endpoint.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import { walLike } from '../fixtures/wal-like.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const ACCOUNT_HOST = `${AZURITE_ACCOUNT}.blob.core.windows.net`;
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const CONTAINER = 'workload';
const SEGMENT = '000000010000000000000001';

let ca: TestCA;
let azurite: ServerHandle;
let authority: JsonEndpoint | undefined;
let authorityPort: number;
let work: string;
let tokenFile: string;
/** What the authority was asked, in order: "<METHOD> <path>" plus, for token requests, whether the assertion matched. */
const asked: string[] = [];


beforeAll(async () => {
  ca = makeTestCA([ACCOUNT_HOST, 'login.microsoftonline.com']);
  azurite = await startAzurite({ tls: ca, oauth: true });
  work = mkdtempSync(join(tmpdir(), 'bc-azwi-'));
  tokenFile = join(work, 'azure-identity-token');
  writeFileSync(tokenFile, 'federated-service-account-token-1');
  // The container, made with the account key (azurite takes it under --oauth too).
  const store = await openObjectStore({
    provider: 'azure-blob-storage', bucket: CONTAINER, retry: DEFAULT_RETRY, ca: ca.caPem,
    accountUrl: `${azurite.url}/${AZURITE_ACCOUNT}`,
    auth: { kind: 'shared-key', accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY },
  });
  await store.createBucket();
  await store.close();

  authority = await startJsonEndpoint((req) => {
    const { url, origin: base, body } = req;
    const json = (status: number, doc: unknown) => ({ status, doc });
    if (url.pathname === '/common/discovery/instance') {
      asked.push(`${req.method} ${url.pathname}`);
      return json(200, {
        tenant_discovery_endpoint: `${base}/${TENANT}/v2.0/.well-known/openid-configuration`,
        'api-version': '1.1',
        metadata: [{ preferred_network: `127.0.0.1:${authorityPort}`, preferred_cache: `127.0.0.1:${authorityPort}`, aliases: [`127.0.0.1:${authorityPort}`] }],
      });
    }
    if (url.pathname === `/${TENANT}/v2.0/.well-known/openid-configuration`) {
      asked.push(`${req.method} ${url.pathname}`);
      return json(200, {
        token_endpoint: `${base}/${TENANT}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/${TENANT}/oauth2/v2.0/authorize`,
        issuer: `${base}/${TENANT}/v2.0`,
        jwks_uri: `${base}/${TENANT}/discovery/v2.0/keys`,
        end_session_endpoint: `${base}/${TENANT}/oauth2/v2.0/logout`,
      });
    }
    if (url.pathname === `/${TENANT}/oauth2/v2.0/token` && req.method === 'POST') {
      const form = new URLSearchParams(body);
      const ok = form.get('client_assertion') === readFileSync(tokenFile, 'utf8') &&
        form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' &&
        form.get('client_id') === CLIENT_ID && form.get('grant_type') === 'client_credentials' &&
        (form.get('scope') ?? '').includes('https://storage.azure.com/');
      asked.push(`POST token ${ok ? 'accepted' : 'refused'}`);
      if (!ok) {
        return json(401, {
          error: 'invalid_client',
          error_description: 'AADSTS700213: No matching federated identity record found for presented assertion.',
        });
      }
      return json(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: fakeEntraToken() });
    }
    asked.push(`unexpected ${req.method} ${url.pathname}`);
    return json(404, { error: 'not_found' });
  }, { cert: readFileSync(ca.certFile), key: readFileSync(ca.keyFile) });
  authorityPort = authority.port;
});

afterAll(async () => {
  await authority?.stop();
  await azurite?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

/** Exactly what the workload-identity webhook injects, plus the CA (as CloudNativePG's endpointCA does). */
function wiEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return cleanEnv({
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    AZURE_CLIENT_ID: CLIENT_ID,
    AZURE_TENANT_ID: TENANT,
    AZURE_AUTHORITY_HOST: `https://127.0.0.1:${authorityPort}/`,
    REQUESTS_CA_BUNDLE: ca.caFile,
    NODE_EXTRA_CA_CERTS: undefined,
    SSL_CERT_FILE: undefined,
    BC_TEST_REDIRECT: `${ACCOUNT_HOST}=${azurite.port},login.microsoftonline.com=${authorityPort}`,
    ...extra,
  });
}

const redirect = ['--import', join(ROOT, 'test', 'helpers', 'redirect-tls.mjs')];
const dest = (...credential: string[]) =>
  ['--cloud-provider', 'azure-blob-storage', ...credential, `https://${ACCOUNT_HOST}/${CONTAINER}/pfx`, 'srv'];

describe('Azure Workload Identity through bin/ (azurite --oauth basic, loopback token authority)', () => {
  it('without any flag: wal-archive, wal-restore and backup-list get their token with the federated token', async () => {
    const segment = join(work, SEGMENT);
    const bytes = withLongPageHeader(walLike(1024 * 1024), SEGMENT);
    writeFileSync(segment, bytes);
    const before = asked.length;

    const archived = await runBin('barman-cloud-wal-archive', [...dest(), segment], { env: wiEnv(), nodeArgs: redirect });
    expect({ code: archived.code, stderr: archived.stderr }).toEqual({ code: 0, stderr: '' });
    const out = join(work, 'restored');
    const restored = await runBin('barman-cloud-wal-restore', [...dest(), SEGMENT, out], { env: wiEnv(), nodeArgs: redirect });
    expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(out).equals(bytes)).toBe(true);
    const listed = await runBin('barman-cloud-backup-list', ['--format', 'json', ...dest()], { env: wiEnv(), nodeArgs: redirect });
    expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(listed.stdout)).toEqual({ backups_list: [] });

    // Per process: MSAL's instance discovery (sent to login.microsoftonline.com for an authority it
    // does not know, redirected here), the tenant's OpenID configuration, then the client assertion.
    const perProcess = [
      'GET /common/discovery/instance', `GET /${TENANT}/v2.0/.well-known/openid-configuration`, 'POST token accepted',
    ];
    expect(asked.slice(before)).toEqual([...perProcess, ...perProcess, ...perProcess]);
    expect(asked.filter((a) => a.startsWith('unexpected'))).toEqual([]);
  });

  it("the plugin's useDefaultAzureCredentials shape (--credential default) and inheritFromAzureAD (--credential managed-identity) work too", async () => {
    const before = asked.length;
    for (const flag of [['--credential', 'default'], ['--credential', 'managed-identity']]) {
      // @azure/identity's managed-identity token exchange builds its own credential without our TLS
      // options, so only Node's own trust store reaches it: the test CA goes there (the real authority,
      // login.microsoftonline.com, has a public certificate).
      const extra: Record<string, string> = flag[1] === 'managed-identity' ? { NODE_EXTRA_CA_CERTS: ca.caFile } : {};
      const listed = await runBin('barman-cloud-backup-list', ['--format', 'json', ...dest(...flag)], { env: wiEnv(extra), nodeArgs: redirect });
      expect({ flag, code: listed.code, stderr: listed.stderr }).toEqual({ flag, code: 0, stderr: '' });
    }
    expect(asked.slice(before).filter((a) => a.startsWith('POST token'))).toEqual(['POST token accepted', 'POST token accepted']);
  });

  it('a federated token the authority refuses: exit 4, one line with the authority\'s reason, the token never printed', async () => {
    const wrong = join(work, 'wrong-token');
    writeFileSync(wrong, 'some-other-service-account-token');
    for (const [cmd, args] of [
      ['barman-cloud-wal-restore', [...dest(), SEGMENT, join(work, 'never')]],
      ['barman-cloud-backup-list', [...dest()]],
    ] as const) {
      const r = await runBin(cmd, [...args], { env: wiEnv({ AZURE_FEDERATED_TOKEN_FILE: wrong }), nodeArgs: redirect, timeoutMs: 60_000 });
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(4);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/ERROR: .*Azure credential could not get a token: .*AADSTS700213/);
      expect(r.stderr).not.toContain('some-other-service-account-token');
    }
  }, 120_000);
});

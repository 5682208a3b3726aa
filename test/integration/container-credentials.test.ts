// EKS Pod Identity without flags (#13 item 5): AWS_CONTAINER_CREDENTIALS_FULL_URI +
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE name a loopback credentials endpoint (node:http here) that
// answers only when the Authorization header is the token file's content, as the Pod Identity agent
// does. moto accepts any keys, so a command that succeeds signed with what the endpoint served.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startJsonEndpoint, type JsonEndpoint } from '../helpers/json-endpoint.ts';
import { ContainerCredentialsProvider } from '../../src/storage/s3/container-credentials.ts';
import { AccessDeniedError } from '../../src/errors.ts';
import { DEFAULT_RETRY } from '../../src/storage/config.ts';
import { walLike } from '../fixtures/wal-like.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const BUCKET = 'podidentity';
const SECRET = 'pod-identity-secret-key-value';
const SESSION = 'pod-identity-session-token-value';
const SEGMENT = '000000010000000000000001';

let moto: ServerHandle;
let endpoint: JsonEndpoint | undefined;
let endpointUrl: string;
let work: string;
let tokenFile: string;
/** The Authorization header of every request the endpoint received. */
const asked: string[] = [];
let lifetimeMs = 3_600_000;
/** The endpoint answers this many next requests with 503 (a restarting agent). */
let unavailable = 0;

beforeAll(async () => {
  moto = await startMoto();
  await createS3Bucket(moto.url, BUCKET);
  work = mkdtempSync(join(tmpdir(), 'bc-podid-'));
  tokenFile = join(work, 'eks-pod-identity-token');
  // As the kubelet writes a projected token: no trailing newline.
  writeFileSync(tokenFile, 'projected-token-1');
  endpoint = await startJsonEndpoint((req) => {
    const auth = req.headers.authorization ?? '';
    asked.push(auth);
    if (unavailable > 0) {
      unavailable--;
      return { status: 503, doc: { message: 'agent restarting' } };
    }
    if (auth !== readFileSync(tokenFile, 'utf8')) return { status: 401, doc: { message: 'invalid authorization token' } };
    return {
      status: 200,
      doc: { AccessKeyId: 'ASIAPODIDENTITY', SecretAccessKey: SECRET, Token: SESSION, Expiration: new Date(Date.now() + lifetimeMs).toISOString() },
    };
  });
  endpointUrl = `${endpoint.origin}/v1/credentials`;
});

afterAll(async () => {
  await endpoint?.stop();
  await moto?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Only the two Pod Identity variables, the region and a HOME without AWS files. */
function podEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const home = join(work, 'home');
  mkdirSync(home, { recursive: true });
  return cleanEnv({
    HOME: home,
    AWS_CONTAINER_CREDENTIALS_FULL_URI: endpointUrl,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    AWS_DEFAULT_REGION: 'us-east-1',
    ...extra,
  });
}

const dest = (): string[] => ['--endpoint-url', moto.url, '--cloud-provider', 'aws-s3', `s3://${BUCKET}/pfx`, 'srv'];

describe('EKS Pod Identity (container credentials endpoint) through bin/', () => {
  it('wal-archive, wal-restore and backup-list sign with the served credentials; wal-archive loads no AWS SDK', async () => {
    const segment = join(work, SEGMENT);
    const bytes = withLongPageHeader(walLike(1024 * 1024), SEGMENT);
    writeFileSync(segment, bytes);
    const trace = join(work, 'trace.txt');
    writeFileSync(trace, '');
    const before = asked.length;

    const archived = await runBin('barman-cloud-wal-archive', [...dest(), segment], {
      env: podEnv({ BC_TRACE_MODULES: trace }),
      nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')],
    });
    expect({ code: archived.code, stderr: archived.stderr }).toEqual({ code: 0, stderr: '' });
    // The lean client signed: ~200 ms of SDK loading saved on every archive_command call.
    expect(readFileSync(trace, 'utf8')).not.toMatch(/@aws-sdk/);

    const out = join(work, 'restored');
    const restored = await runBin('barman-cloud-wal-restore', [...dest(), SEGMENT, out], { env: podEnv() });
    expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(out).equals(bytes)).toBe(true);

    const listed = await runBin('barman-cloud-backup-list', ['--format', 'json', ...dest()], { env: podEnv() });
    expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(listed.stdout)).toEqual({ backups_list: [] });

    // One question per process, each carrying the token file's content.
    expect(asked.slice(before)).toEqual(['projected-token-1', 'projected-token-1', 'projected-token-1']);
  });

  it('with an AWS config file present the SDK chain decides, and reaches the same endpoint with the same token', async () => {
    // An AWS config file present: its default profile could hold credentials of higher rank, so the
    // SDK's own chain decides, and reaches the same endpoint.
    const home = join(work, 'home-with-config');
    mkdirSync(join(home, '.aws'), { recursive: true });
    writeFileSync(join(home, '.aws', 'config'), '[default]\nregion = us-east-1\n');
    const before = asked.length;
    const listed = await runBin('barman-cloud-backup-list', ['--format', 'json', ...dest()], { env: podEnv({ HOME: home }) });
    expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: '' });
    expect(asked.slice(before)).toEqual(['projected-token-1']);
  });

  it('a token the endpoint refuses: exit 4 (barman: a credential retrieval error is a general error), one line naming the endpoint, no secret', async () => {
    const wrong = join(work, 'wrong-token');
    writeFileSync(wrong, 'not-the-projected-token');
    const segment = join(work, '000000010000000000000002');
    writeFileSync(segment, walLike(1024 * 1024, 7));
    for (const [cmd, args] of [
      ['barman-cloud-wal-archive', [...dest(), segment]],
      ['barman-cloud-wal-restore', [...dest(), SEGMENT, join(work, 'never')]],
      ['barman-cloud-backup-list', [...dest()]],
    ] as const) {
      const r = await runBin(cmd, [...args], { env: podEnv({ AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: wrong }) });
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(4);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/ERROR: .*container credentials endpoint http:\/\/127\.0\.0\.1:\d+\/v1\/credentials refused the request \(HTTP 401/);
      expect(r.stderr).not.toContain('not-the-projected-token');
    }
  });

  it('a plain-http endpoint that is not loopback, ECS or EKS is refused before any request (exit 4)', async () => {
    const segment = join(work, SEGMENT);
    const r = await runBin('barman-cloud-wal-archive', [...dest(), segment], {
      env: podEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://192.0.2.10/v1/credentials' }),
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/192\.0\.2\.10 is not a loopback, ECS or EKS Pod Identity address/);
  });

  it('the provider fetches again near expiry and reads the rotated token file each time', async () => {
    lifetimeMs = 60_000; // inside the 5-minute renewal margin: every get() refreshes
    try {
      const provider = new ContainerCredentialsProvider({ url: endpointUrl, authorizationTokenFile: tokenFile }, DEFAULT_RETRY);
      const before = asked.length;
      const first = await provider.get();
      expect(first).toMatchObject({ accessKeyId: 'ASIAPODIDENTITY', secretAccessKey: SECRET, sessionToken: SESSION });
      writeFileSync(tokenFile, 'projected-token-2'); // the kubelet rotated the projected token
      await provider.get();
      expect(asked.slice(before)).toEqual(['projected-token-1', 'projected-token-2']);
      lifetimeMs = 3_600_000;
      const cached = new ContainerCredentialsProvider({ url: endpointUrl, authorizationTokenFile: tokenFile }, DEFAULT_RETRY);
      await cached.get();
      await cached.get();
      expect(asked.slice(before + 2)).toEqual(['projected-token-2']);
      writeFileSync(tokenFile, 'projected-token-3');
      const stale = new ContainerCredentialsProvider({ url: endpointUrl, authorizationToken: 'projected-token-2' }, DEFAULT_RETRY);
      await expect(stale.get()).rejects.toBeInstanceOf(AccessDeniedError);
    } finally {
      lifetimeMs = 3_600_000;
      // As the kubelet writes a projected token: no trailing newline.
  writeFileSync(tokenFile, 'projected-token-1');
    }
  });

  it('an endpoint that answers 503 is asked again with the store\'s retry policy, as often as it allows', async () => {
    const source = { url: endpointUrl, authorizationTokenFile: tokenFile };
    const policy = { maxAttempts: 5, baseDelayMs: 10, maxDelayMs: 20 };
    let before = asked.length;
    unavailable = 4; // the fifth attempt is answered
    await expect(new ContainerCredentialsProvider(source, policy).get()).resolves.toMatchObject({ accessKeyId: 'ASIAPODIDENTITY' });
    expect(asked.length - before).toBe(5);
    before = asked.length;
    unavailable = 5; // the policy allows five attempts: all refused
    await expect(new ContainerCredentialsProvider(source, policy).get()).rejects.toThrow(/HTTP 503/);
    expect(asked.length - before).toBe(5);
    unavailable = 0;
  });
});

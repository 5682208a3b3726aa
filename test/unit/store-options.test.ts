import { describe, it, expect, beforeAll } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../../src/cli/parse.ts';
import { commandByName } from '../../src/cli/spec.ts';
import { resolveLoadedStore, type Env, type StoreOptions } from '../../src/cli/store.ts';
import { declarationFor, PROVIDERS, providerNamed, type AnyStorageProvider } from '../../src/storage/registry.ts';
import { CliError, GeneralError } from '../../src/errors.ts';
import { redact, setLogSink } from '../../src/log.ts';
import { main } from '../../src/cli/main.ts';

// Every provider's code, loaded once, so that each case resolves synchronously (resolveStore()
// only adds the load of the one provider a command uses).
const loaded = new Map<string, AnyStorageProvider>();
const resolveStore = (rawUrl: string, opts: StoreOptions, env: Env) =>
  resolveLoadedStore(rawUrl, opts, env, loaded.get(declarationFor(rawUrl, opts['cloud-provider']).name)!);

let dir: string;
let caFile: string;
beforeAll(async () => {
  for (const p of PROVIDERS) loaded.set(p.name, await providerNamed(p.name));
  dir = mkdtempSync(join(tmpdir(), 'bc-opts-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
});

function resolve(argv: string[], env: Env = {}, command: 'backup-list' | 'backup' = 'backup-list') {
  const o = parseArgs(commandByName(command)!, [...argv, 'srv']);
  if (o.kind !== 'args') throw new Error('no args');
  const p = o.args.positionals;
  return resolveStore('source_url' in p ? p.source_url : p.destination_url, o.args.options, env);
}

describe('S3 settings from flags and the environment', () => {
  it('maps the variables the JS SDK does not read itself', () => {
    const { config } = resolve(['s3://b/p'], {
      AWS_DEFAULT_REGION: 'eu-west-3', AWS_CA_BUNDLE: caFile, AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK',
      AWS_SESSION_TOKEN: 'ST', AWS_MAX_ATTEMPTS: '7', AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    });
    expect(config).toMatchObject({
      provider: 'aws-s3', bucket: 'b', region: 'eu-west-3', credentials: { accessKeyId: 'AK', secretAccessKey: 'SK', sessionToken: 'ST' },
      requestChecksumCalculation: 'when_required', retry: { maxAttempts: 7 },
    });
    expect(config.ca).toContain('BEGIN CERTIFICATE');
  });

  it('lets flags win over the environment', () => {
    const id = join(dir, 'id');
    const secret = join(dir, 'secret');
    writeFileSync(id, 'FLAGID\n');
    writeFileSync(secret, 'FLAGSECRET\n');
    const { config } = resolve(
      ['--s3-region', 'us-west-2', '--s3-access-key-id-file', id, '--s3-secret-access-key-file', secret, '--endpoint-ca', caFile,
        '--read-timeout', '9', '-P', 'prof', 's3://b'],
      { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'ENV', AWS_SECRET_ACCESS_KEY: 'ENV', AWS_PROFILE: 'envprof', AWS_CA_BUNDLE: '/nonexistent' },
    );
    expect(config).toMatchObject({ region: 'us-west-2', profile: 'prof', credentials: { accessKeyId: 'FLAGID', secretAccessKey: 'FLAGSECRET' }, retry: { readTimeoutMs: 9000 } });
    // Secrets read from files are registered for redaction.
    expect(redact('key=FLAGSECRET')).toBe('key=***');
  });

  // The CloudNativePG plugin sets AWS_CA_BUNDLE whenever endpointCA is configured, and the projected
  // file can be missing for a while: boto3 ignores it on http and fails on https (exit 4, retried).
  it('reads a CA bundle named by the environment only when TLS needs it', () => {
    const missing = join(dir, 'no-such-ca.pem');
    const http = resolve(['--endpoint-url', 'http://127.0.0.1:9000', 's3://b'], { AWS_CA_BUNDLE: missing });
    expect(http.config.ca).toBeUndefined();
    // Not even read when it is there (hosts export it for every tool: a WAL call's CPU).
    expect(resolve(['--endpoint-url', 'http://127.0.0.1:9000', 's3://b'], { AWS_CA_BUNDLE: caFile }).config.ca).toBeUndefined();
    expect(resolve(['--endpoint-url', 'https://s3.example', 's3://b'], { AWS_CA_BUNDLE: caFile }).config.ca).toContain('BEGIN CERTIFICATE');
    expect(() => resolve(['--endpoint-url', 'https://s3.example', 's3://b'], { AWS_CA_BUNDLE: missing })).toThrow(GeneralError);
    expect(() => resolve(['s3://b'], { AWS_CA_BUNDLE: missing })).toThrow(GeneralError);
    expect(() => resolve(['s3://b'], { AWS_CA_BUNDLE: missing })).not.toThrow(CliError);
    expect(() => resolve(['--cloud-provider', 'azure-blob-storage', 'https://acct.blob.core.windows.net/c'], { REQUESTS_CA_BUNDLE: missing, AZURE_STORAGE_CONNECTION_STRING: 'x' }))
      .toThrow(GeneralError);
    expect(resolve(['--cloud-provider', 'azure-blob-storage', 'http://127.0.0.1:10000/acct/c'], { REQUESTS_CA_BUNDLE: missing, AZURE_STORAGE_CONNECTION_STRING: 'x' }).config.ca)
      .toBeUndefined();
    expect(resolve(['--cloud-provider', 'azure-blob-storage', 'http://127.0.0.1:10000/acct/c'], { REQUESTS_CA_BUNDLE: caFile, AZURE_STORAGE_CONNECTION_STRING: 'x' }).config.ca)
      .toBeUndefined();
    // The flag is an argument: a missing file stays a usage error.
    expect(() => resolve(['--endpoint-ca', missing, '--endpoint-url', 'http://127.0.0.1:9000', 's3://b'])).toThrow(CliError);
  });

  it('uses only the ambient role with --s3-inherit-from-iam-role', () => {
    const { config } = resolve(['--s3-inherit-from-iam-role', 's3://b'], { AWS_ACCESS_KEY_ID: 'A', AWS_SECRET_ACCESS_KEY: 'S' });
    expect(config).toMatchObject({ inheritFromIamRole: true, credentials: undefined });
  });

  it('rejects bad checksum modes and SSE-KMS key without aws:kms', () => {
    expect(() => resolve(['s3://b'], { AWS_RESPONSE_CHECKSUM_VALIDATION: 'sometimes' })).toThrow(CliError);
    const o = parseArgs(commandByName('wal-archive')!, ['--sse-kms-key-id', 'k', 's3://b', 'srv', 'w']);
    if (o.kind !== 'args') throw new Error();
    expect(() => resolveStore('s3://b', o.args.options, {})).toThrow(GeneralError);
  });
});

describe('S3 as boto3 resolves it: profiles, their region, the endpoint variable', () => {
  it('takes a named profile over environment keys when -P is given, not when AWS_PROFILE is', () => {
    const env = { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_CONFIG_FILE: join(dir, 'none') };
    expect(resolve(['-P', 'prod', 's3://b/p'], env).config).toMatchObject({ profile: 'prod', credentials: undefined });
    expect(resolve(['s3://b/p'], { ...env, AWS_PROFILE: 'prod' }).config).toMatchObject({
      profile: 'prod', credentials: { accessKeyId: 'AK' },
    });
  });

  it('tells the SDK driver to use the profile only when environment keys would win, from the env passed in', () => {
    const none = { AWS_CONFIG_FILE: join(dir, 'none') };
    expect(resolve(['-P', 'prod', 's3://b/p'], { ...none, AWS_ACCESS_KEY_ID: 'AK' }).config).toMatchObject({ profileOverEnvKeys: true });
    expect(resolve(['-P', 'prod', 's3://b/p'], none).config).not.toHaveProperty('profileOverEnvKeys');
    expect(resolve(['s3://b/p'], { ...none, AWS_ACCESS_KEY_ID: 'AK' }).config).not.toHaveProperty('profileOverEnvKeys');
  });

  it("reads the profile's region from the shared config file when nothing else sets one", () => {
    const cfg = join(dir, 'aws-config');
    writeFileSync(cfg, '[default]\nregion = eu-west-1\n\n[profile prod]\noutput = json\nregion=ap-south-2\n[profile other]\nregion = us-west-2\n');
    expect(resolve(['s3://b/p'], { AWS_CONFIG_FILE: cfg }).config).toMatchObject({ region: 'eu-west-1' });
    expect(resolve(['-P', 'prod', 's3://b/p'], { AWS_CONFIG_FILE: cfg }).config).toMatchObject({ region: 'ap-south-2' });
    expect(resolve(['s3://b/p'], { AWS_CONFIG_FILE: cfg, AWS_PROFILE: 'other' }).config).toMatchObject({ region: 'us-west-2' });
    expect(resolve(['-P', 'prod', 's3://b/p'], { AWS_CONFIG_FILE: cfg, AWS_REGION: 'eu-north-1' }).config).toMatchObject({ region: 'eu-north-1' });
    expect(resolve(['-P', 'nosuch', 's3://b/p'], { AWS_CONFIG_FILE: cfg }).config).toMatchObject({ region: undefined });
  });

  it('takes the endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL unless --endpoint-url is given', () => {
    const none = { AWS_CONFIG_FILE: join(dir, 'none') };
    expect(resolve(['s3://b/p'], { ...none, AWS_ENDPOINT_URL: 'http://a:1' }).config).toMatchObject({ endpointUrl: 'http://a:1' });
    expect(resolve(['s3://b/p'], { ...none, AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'http://s3:2' }).config)
      .toMatchObject({ endpointUrl: 'http://s3:2' });
    expect(resolve(['--endpoint-url', 'http://f:3', 's3://b/p'], { ...none, AWS_ENDPOINT_URL: 'http://a:1' }).config)
      .toMatchObject({ endpointUrl: 'http://f:3' });
  });
});

describe('Azure authentication in barman order', () => {
  const url = ['--cloud-provider', 'azure-blob-storage', 'https://acct.blob.core.windows.net/cont/path'];
  it('credential flag, then connection string, then SAS, then key, then default', () => {
    const all = { AZURE_STORAGE_CONNECTION_STRING: 'AccountName=a;AccountKey=k', AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=x', AZURE_STORAGE_KEY: 'key' };
    expect(resolve(['--azure-credential', 'managed-identity', ...url], all).config).toMatchObject({ auth: { kind: 'token-credential', credential: 'managed-identity' } });
    expect(resolve(url, all).config).toMatchObject({ auth: { kind: 'connection-string' } });
    expect(resolve(url, { AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=x', AZURE_STORAGE_KEY: 'key' }).config).toMatchObject({ auth: { kind: 'sas' } });
    expect(resolve(url, { AZURE_STORAGE_KEY: 'key' }).config).toMatchObject({ auth: { kind: 'shared-key', accountName: 'acct' } });
    expect(resolve(url, {}).config).toMatchObject({ auth: { kind: 'token-credential', credential: 'default' }, accountUrl: 'https://acct.blob.core.windows.net' });
    expect(resolve(['--azure-use-default-azure-credentials', ...url], {}).config).toMatchObject({ auth: { credential: 'default' } });
    expect(resolve(['--azure-inherit-from-azure-ad', ...url], all).config).toMatchObject({ auth: { credential: 'managed-identity' } });
  });

  it('maps REQUESTS_CA_BUNDLE for Azure only', () => {
    expect(resolve(url, { REQUESTS_CA_BUNDLE: caFile }).config.ca).toContain('BEGIN CERTIFICATE');
    expect(resolve(['s3://b'], { REQUESTS_CA_BUNDLE: caFile }).config.ca).toBeUndefined();
  });

  it("keeps NODE_EXTRA_CA_CERTS's certificates beside an explicit CA, read from the env passed in", () => {
    const extra = join(dir, 'node-extra.pem');
    writeFileSync(extra, '-----BEGIN CERTIFICATE-----\nNODEEXTRA\n-----END CERTIFICATE-----\n');
    expect(resolve(['--endpoint-ca', caFile, ...url], { NODE_EXTRA_CA_CERTS: extra }).config).toMatchObject({
      nodeExtraCa: expect.stringContaining('NODEEXTRA'),
    });
    // Without an explicit CA Node's own trust store, NODE_EXTRA_CA_CERTS included, is used as it is.
    expect(resolve(url, { NODE_EXTRA_CA_CERTS: extra }).config).not.toHaveProperty('nodeExtraCa');
    expect(resolve(['--endpoint-ca', caFile, ...url], { NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') }).config).not.toHaveProperty('nodeExtraCa');
  });
});

describe('GCS', () => {
  it('uses STORAGE_EMULATOR_HOST and tolerates an empty credentials file', () => {
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '');
    const { config } = resolve(['--cloud-provider', 'google-cloud-storage', 'gs://b/x'], {
      STORAGE_EMULATOR_HOST: '127.0.0.1:4443', GOOGLE_APPLICATION_CREDENTIALS: empty,
    });
    expect(config).toMatchObject({ provider: 'google-cloud-storage', bucket: 'b', apiEndpoint: 'http://127.0.0.1:4443', keyFilename: empty });
  });

  it('ignores a key file with --google-gke-environment', () => {
    const { config } = resolve(['--cloud-provider', 'google-cloud-storage', '--google-gke-environment', 'gs://b'], { GOOGLE_APPLICATION_CREDENTIALS: '/x.json' });
    expect(config).toMatchObject({ keyFilename: undefined });
  });
});

describe('where the credentials come from, in words', () => {
  const source = (argv: string[], env: Env = {}) => {
    const o = parseArgs(commandByName('backup-list')!, [...argv, 'srv']);
    if (o.kind !== 'args') throw new Error('no args');
    return resolveStore(o.args.positionals.source_url, o.args.options, env).credentialSource;
  };

  it('names the flag, variable, profile or chain, never a value', () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIDVALUE', AWS_SECRET_ACCESS_KEY: 'SECRETVALUE' };
    expect(source(['s3://b'], env)).toBe('environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
    expect(source(['s3://b'], { AWS_PROFILE: 'prod' })).toBe('profile prod of the shared AWS config and credentials files');
    expect(source(['--s3-inherit-from-iam-role', 's3://b'], env)).toMatch(/^the ambient IAM role only/);
    expect(source(['s3://b'])).toBe('the AWS SDK default credential chain');
    expect(source(['--cloud-provider', 'azure-blob-storage', 'https://acct.blob.core.windows.net/c'], { AZURE_STORAGE_KEY: 'S0MEKEY' }))
      .toBe('the key of account acct (AZURE_STORAGE_KEY)');
    expect(source(['--cloud-provider', 'azure-blob-storage', '--azure-credential', 'managed-identity', 'https://acct.blob.core.windows.net/c']))
      .toBe('Azure managed-identity credential (--azure-credential managed-identity)');
    expect(source(['--cloud-provider', 'google-cloud-storage', 'gs://b'], { STORAGE_EMULATOR_HOST: 'localhost:1' })).toMatch(/^none \(STORAGE_EMULATOR_HOST/);
    expect(source(['--cloud-provider', 'google-cloud-storage', 'gs://b'])).toBe('Application Default Credentials');
    expect(source(['file:///tmp'])).toBe('none needed (local directory)');
  });
});

describe('container credentials (EKS Pod Identity, ECS): our provider only where the default chain would reach them', () => {
  const pod = (extra: Env = {}): Env => ({
    HOME: join(dir, 'empty-home'),
    AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials',
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token',
    ...extra,
  });

  it('takes FULL_URI with its token file, or the ECS relative form first, or the token itself', () => {
    expect(resolve(['s3://b'], pod()).config).toMatchObject({
      containerCredentials: {
        url: 'http://169.254.170.23/v1/credentials',
        authorizationTokenFile: '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token',
      },
    });
    expect(resolve(['s3://b'], pod({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/abc' })).config)
      .toMatchObject({ containerCredentials: { url: 'http://169.254.170.2/v2/credentials/abc' } });
    const withToken = resolve(['s3://b'], pod({ AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '', AWS_CONTAINER_AUTHORIZATION_TOKEN: 'tok-value' }));
    expect(withToken.config).toMatchObject({ containerCredentials: { authorizationToken: 'tok-value' } });
    expect(redact('Authorization: tok-value')).not.toContain('tok-value');
    expect(withToken.credentialSource).toBe('the container credentials endpoint http://169.254.170.23/v1/credentials');
    // s3Credentials.inheritFromIAMRole: container credentials are part of the ambient role.
    expect(resolve(['--s3-inherit-from-iam-role', 's3://b'], pod()).config).toHaveProperty('containerCredentials');
  });

  it('leaves the decision to the SDK chain when something of higher rank could apply', () => {
    const profileHome = join(dir, 'home-with-config');
    mkdirSync(join(profileHome, '.aws'), { recursive: true });
    writeFileSync(join(profileHome, '.aws', 'config'), '[default]\nregion = eu-west-1\n');
    for (const env of [
      pod({ AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' }),
      pod({ AWS_PROFILE: 'prod' }),
      pod({ AWS_WEB_IDENTITY_TOKEN_FILE: '/token', AWS_ROLE_ARN: 'arn:aws:iam::1:role/r' }),
      pod({ HOME: profileHome }),
      pod({ AWS_SHARED_CREDENTIALS_FILE: caFile }),
    ]) {
      expect(resolve(['s3://b'], env).config).not.toHaveProperty('containerCredentials', expect.anything());
    }
  });
});

describe('the SSE-C key file', () => {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff));
  const file = (name: string, content: string | Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  it('takes 32 raw bytes or their base64 (whitespace around it ignored), from the flag or the variable', () => {
    const raw = file('raw.key', key);
    const b64 = file('b64.key', `  ${key.toString('base64')}\n`);
    for (const [argv, env] of [
      [['--sse-customer-key-file', raw], {}],
      [['--sse-customer-key-file', b64], {}],
      [[], { BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE: b64 }],
    ] as [string[], Env][]) {
      const { config } = resolve([...argv, 's3://b/p'], env);
      expect(config.provider === 'aws-s3' && config.sseCustomerKey).toEqual(key);
    }
    // Registered as a secret in its base64 form, which is what travels in the header.
    expect(redact(`x ${key.toString('base64')} y`)).toBe('x *** y');
  });

  it('refuses a file that is not a 256-bit key, -e with it, and any store but S3 (exit 3, the key never in the message)', () => {
    const bad = [file('short.key', key.subarray(0, 31)), file('long.b64', randomLikeBase64(48)), file('text.key', 'not a key at all, surely not\n')];
    for (const p of bad) expect(() => resolve(['--sse-customer-key-file', p, 's3://b/p'])).toThrow(CliError);
    const good = file('ok.key', key);
    expect(() => resolve(['--sse-customer-key-file', good, '-e', 'AES256', 's3://b/p'], {}, 'backup')).toThrow(/--encryption AES256 cannot be combined with --sse-customer-key-file/);
    expect(() => resolve(['--sse-customer-key-file', good, 's3://b/p'], {}, 'backup')).not.toThrow();
    expect(() => resolve(['--sse-customer-key-file', good, 'file:///tmp/x'])).toThrow(/only supported on S3/);
    expect(() => resolve(['--cloud-provider', 'google-cloud-storage', 'gs://b/p'], { BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE: good }))
      .toThrow(/BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE: .*only supported on S3/);
    expect(() => resolve(['--sse-customer-key-file', join(dir, 'missing.key'), 's3://b/p'])).toThrow(/cannot read .*ENOENT/);
  });
});

describe('the Azure (CPK) and GCS (CSEK) customer key files', () => {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 53 + 7) & 0xff));
  const file = (name: string, content: string | Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  const azure = ['--cloud-provider', 'azure-blob-storage', '--azure-connection-string-file'];
  const stores = [
    { flag: '--azure-customer-key-file', variable: 'BARMAN_CLOUD_AZURE_CUSTOMER_KEY_FILE', provider: 'azure-blob-storage', url: 'https://acct.blob.core.windows.net/c/p' },
    { flag: '--google-customer-key-file', variable: 'BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE', provider: 'google-cloud-storage', url: 'gs://b/p' },
  ] as const;

  it('take the same key file as SSE-C, from the flag or the variable, into their own store only', () => {
    const connection = file('conn.txt', 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net');
    const raw = file('cpk-raw.key', key);
    const b64 = file('cpk-b64.key', `${key.toString('base64')}\n`);
    for (const s of stores) {
      const pre = s.provider === 'azure-blob-storage' ? [...azure, connection] : ['--cloud-provider', s.provider];
      for (const [argv, env] of [[[s.flag, raw], {}], [[], { [s.variable]: b64 }]] as [string[], Env][]) {
        const { config } = resolve([...pre, ...argv, s.url], env);
        expect(config.provider).toBe(s.provider);
        expect((config as { customerKey?: Buffer }).customerKey).toEqual(key);
      }
      expect(() => resolve([...pre, s.flag, file('bad.key', 'short'), s.url])).toThrow(CliError);
      // Refused elsewhere, the key never in the message.
      for (const other of ['s3://b/p', 'file:///tmp/x']) {
        expect(() => resolve([s.flag, raw, other])).toThrow(new RegExp(`^${s.flag}: .*only supported on`));
        expect(() => resolve([other], { [s.variable]: raw })).toThrow(new RegExp(`^${s.variable}: .*only supported on`));
      }
    }
    expect(() => resolve([...azure, connection, '--encryption-scope', 'sc', '--azure-customer-key-file', raw, stores[0].url], {}, 'backup'))
      .toThrow(/--encryption-scope cannot be combined with --azure-customer-key-file/);
    expect(() => resolve(['--cloud-provider', 'google-cloud-storage', '--kms-key-name', 'k', 'gs://b/p'], { BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE: raw }, 'backup'))
      .toThrow(/--kms-key-name cannot be combined with BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE/);
  });
});

describe('--read-timeout', () => {
  it('a limit past what Node\'s timers hold (~24.8 days) is held to it, not turned into one that fires at once', () => {
    expect(resolve(['--read-timeout', '3000000', 's3://b']).config.retry.readTimeoutMs).toBe(2 ** 31 - 1);
    expect(resolve(['--read-timeout', '2147483', 's3://b']).config.retry.readTimeoutMs).toBe(2_147_483_000);
    expect(() => resolve(['--read-timeout', '0', 's3://b'])).toThrow(CliError);
  });
});

describe('counts from the environment (one reader: positiveIntegerFromEnv)', () => {
  it('AWS_MAX_ATTEMPTS: a positive integer sets the policy, empty is unset, anything else is a usage error naming it', () => {
    expect(resolve(['s3://b'], { AWS_MAX_ATTEMPTS: '2' }).config.retry.maxAttempts).toBe(2);
    expect(resolve(['s3://b'], { AWS_MAX_ATTEMPTS: '' }).config.retry.maxAttempts).toBe(resolve(['s3://b']).config.retry.maxAttempts);
    for (const bad of ['0', '-1', '2.5', 'three']) {
      expect(() => resolve(['s3://b'], { AWS_MAX_ATTEMPTS: bad })).toThrow(new CliError(`AWS_MAX_ATTEMPTS must be a positive integer, not '${bad}'`));
    }
  });

  it('the WAL commands\' parallelism variables: exit 3 and one line naming the variable, before the store is asked', async () => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    try {
      const io = { stdout: () => undefined, stderr: (t: string) => lines.push(t) };
      const store = `file://${join(dir, 'no-store-here')}`;
      const archive = await main('wal-archive', [store, 'srv', join(dir, '000000010000000000000001')], { BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL: '0' }, io);
      const restore = await main('wal-restore', [store, 'srv', '000000010000000000000001', join(dir, 'RECOVERYXLOG')], { BARMAN_CLOUD_WAL_RESTORE_PARALLEL: 'x' }, io);
      expect([archive, restore]).toEqual([3, 3]);
      expect(lines[0]).toMatch(/ERROR: BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL must be a positive integer, not '0'\n$/);
      expect(lines[1]).toMatch(/ERROR: BARMAN_CLOUD_WAL_RESTORE_PARALLEL must be a positive integer, not 'x'\n$/);
      // The prefetch window has the bound of --parallel (docs/commands/wal-restore.md#prefetch).
      const many = await main('wal-restore', [store, 'srv', '000000010000000000000001', join(dir, 'RECOVERYXLOG')], { BARMAN_CLOUD_WAL_RESTORE_PARALLEL: '1025' }, io);
      expect(many).toBe(3);
      expect(lines[2]).toMatch(/ERROR: BARMAN_CLOUD_WAL_RESTORE_PARALLEL must be at most 1024, not '1025'\n$/);
      expect(lines).toHaveLength(3);
    } finally {
      setLogSink((l) => process.stderr.write(l));
    }
  });
});

function randomLikeBase64(bytes: number): string {
  return Buffer.from(Array.from({ length: bytes }, (_, i) => i)).toString('base64');
}

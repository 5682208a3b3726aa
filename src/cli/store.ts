// Flags + environment → a resolved StoreConfig. Precedence: flags > environment > the provider's
// own default chain. The only module that reads credential-related environment variables;
// contradictory combinations follow the ObjectStore validation rules (cnpg-usage §1.2–1.4).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError, GeneralError } from '../errors.js';
import { log, registerSecret } from '../log.js';
import { DEFAULT_RETRY, type RetryPolicy, type StoreConfig, type AzureStoreConfig, type AzureCredentialKind } from '../storage/config.js';
import type { ContainerCredentialsSource } from '../storage/container-credentials.js';
import { isLocalUrl, parseStoreUrl, type ParsedUrl } from '../storage/url.js';

export type Env = Record<string, string | undefined>;

export interface ResolvedStore {
  config: StoreConfig;
  url: ParsedUrl;
  /** Where the credentials come from, in words, never the values (for `doctor`). */
  credentialSource: string;
}

function readSecretFile(flag: string, path: string): string {
  try {
    const value = readFileSync(path, 'utf8').trim();
    registerSecret(value);
    return value;
  } catch (e) {
    throw new CliError(`argument ${flag}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * A customer-provided key (S3 SSE-C, Azure CPK, GCS CSEK: AES-256 for all three): a file of
 * exactly 32 bytes (`openssl rand 32`), or the base64 of 32 bytes (`openssl rand -base64 32`,
 * surrounding whitespace ignored). The two cannot be confused: base64 of 32 bytes is 44
 * characters. Read from a file only, so it never appears in argv or `ps`.
 */
function readCustomerKey(from: string, path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new CliError(`${from}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (raw.length === 32) {
    registerSecret(raw.toString('base64'));
    return raw;
  }
  const text = raw.toString('latin1').trim();
  const key = /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (!key || key.length !== 32) {
    throw new CliError(`${from}: ${path} must hold a 256-bit key: 32 bytes, or their base64 (44 characters)`);
  }
  registerSecret(text);
  return key;
}

function readCa(flagOrVar: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`${flagOrVar}: cannot read CA file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * A CA bundle named by an environment variable (AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE) is read as
 * boto3 and azure-core do: only when TLS is used. The CloudNativePG plugin sets the variable whenever
 * endpointCA is configured and the projected file can be missing for a while, so an unreadable
 * bundle is ignored on an http:// endpoint and is a general error (exit 4: retried by the operator)
 * on https, never a usage error (exit 3 means "invalid WAL name" to wal-restore's callers).
 */
function readEnvCa(variable: string, path: string, endpointUrl: string | undefined): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    if (endpointUrl !== undefined && /^http:\/\//i.test(endpointUrl)) {
      log.debug(`${variable}: cannot read CA file ${path} (${why}); not needed for ${endpointUrl}`);
      return undefined;
    }
    throw new GeneralError(`${variable}: cannot read CA file ${path}: ${why}`);
  }
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

function retryPolicy(opts: Record<string, unknown>, env: Env): RetryPolicy {
  const policy = { ...DEFAULT_RETRY };
  const readTimeout = opts['read-timeout'] as number | undefined;
  if (readTimeout !== undefined) {
    if (readTimeout < 1) throw new CliError(`argument --read-timeout: must be at least 1 second`);
    policy.readTimeoutMs = readTimeout * 1000;
  }
  const attempts = nonEmpty(env.AWS_MAX_ATTEMPTS);
  if (attempts !== undefined) {
    const n = Number(attempts);
    if (!Number.isInteger(n) || n < 1) throw new CliError(`AWS_MAX_ATTEMPTS must be a positive integer, not '${attempts}'`);
    policy.maxAttempts = n;
  }
  return policy;
}

function checksumMode(name: string, value: string | undefined): 'when_supported' | 'when_required' | undefined {
  const v = nonEmpty(value)?.toLowerCase();
  if (v === undefined) return undefined;
  if (v === 'when_supported' || v === 'when_required') return v;
  throw new CliError(`${name} must be when_supported or when_required, not '${value}'`);
}

/**
 * The customer-provided key options, one per provider (S3 SSE-C, Azure CPK, GCS CSEK): the same
 * 32-byte AES-256 key file, sent with every object write and read.
 */
const CUSTOMER_KEYS = [
  { provider: 'aws-s3', option: 'sse-customer-key-file', variable: 'BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE', what: 'customer-provided keys (SSE-C)', where: 'S3' },
  { provider: 'azure-blob-storage', option: 'azure-customer-key-file', variable: 'BARMAN_CLOUD_AZURE_CUSTOMER_KEY_FILE', what: 'customer-provided keys (CPK)', where: 'Azure' },
  { provider: 'google-cloud-storage', option: 'google-customer-key-file', variable: 'BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE', what: 'customer-supplied encryption keys (CSEK)', where: 'GCS' },
] as const;

/**
 * Which customer key applies, from its flag or else its variable: `from` names the one used, in
 * messages. One given for another store is refused, not ignored: the user asked for encryption.
 */
function customerKeySource(provider: ParsedUrl['provider'], opts: Record<string, unknown>, env: Env): { from: string; path: string } | undefined {
  let found: { from: string; path: string } | undefined;
  for (const k of CUSTOMER_KEYS) {
    const flag = opts[k.option] as string | undefined;
    const path = flag ?? nonEmpty(env[k.variable]);
    if (path === undefined) continue;
    const from = flag !== undefined ? `--${k.option}` : k.variable;
    if (k.provider !== provider) {
      throw new CliError(`${from}: ${k.what} are only supported on ${k.where}, not on ${provider === 'file' ? 'a local directory store' : provider}`);
    }
    found = { from, path };
  }
  return found;
}

/** Flags that belong to one provider; giving them for another is a contradiction. */
const PROVIDER_FLAGS: Record<string, string[]> = {
  'aws-s3': ['s3-region', 's3-access-key-id-file', 's3-secret-access-key-file', 's3-session-token-file', 's3-inherit-from-iam-role'],
  'azure-blob-storage': [
    'azure-storage-account', 'azure-storage-key-file', 'azure-storage-sas-token-file', 'azure-connection-string-file',
    'azure-inherit-from-azure-ad', 'azure-use-default-azure-credentials',
  ],
  'google-cloud-storage': ['google-application-credentials', 'google-gke-environment'],
};

export function resolveStore(rawUrl: string, opts: Record<string, unknown>, env: Env): ResolvedStore {
  const provider = opts['cloud-provider'] as Exclude<StoreConfig['provider'], 'file'>;
  const given = (k: string) => opts[k] !== undefined && opts[k] !== false;
  for (const [p, flags] of Object.entries(PROVIDER_FLAGS)) {
    const wrong = flags.filter(given);
    if (p !== provider && wrong.length > 0 && !isLocalUrl(rawUrl)) {
      throw new CliError(`--${wrong[0]} cannot be used with --cloud-provider ${provider}`);
    }
  }
  const url = parseStoreUrl(rawUrl, provider);
  const retry = retryPolicy(opts, env);
  const customerKey = customerKeySource(url.provider, opts, env);
  const caFlag = opts['endpoint-ca'] as string | undefined;

  if (url.provider === 'file') {
    return { url, config: { provider: 'file', bucket: url.bucket, retry }, credentialSource: 'none needed (local directory)' };
  }

  if (url.provider === 'aws-s3') {
    const endpointUrl = (opts['endpoint-url'] as string | undefined) ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
    const envCa = nonEmpty(env.AWS_CA_BUNDLE);
    const inherit = opts['s3-inherit-from-iam-role'] === true;
    const keyIdFile = opts['s3-access-key-id-file'] as string | undefined;
    const secretFile = opts['s3-secret-access-key-file'] as string | undefined;
    const tokenFile = opts['s3-session-token-file'] as string | undefined;
    if (inherit && (keyIdFile || secretFile || tokenFile)) {
      throw new CliError('--s3-inherit-from-iam-role cannot be combined with access key files');
    }
    if (Boolean(keyIdFile) !== Boolean(secretFile)) {
      throw new CliError('--s3-access-key-id-file and --s3-secret-access-key-file must be given together');
    }
    let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
    const profile = (opts['aws-profile'] as string | undefined) ?? nonEmpty(env.AWS_PROFILE);
    let credentialSource = inherit
      ? 'the ambient IAM role only (--s3-inherit-from-iam-role: web identity, container or instance metadata)'
      : profile ? `profile ${profile} of the shared AWS config and credentials files` : 'the AWS SDK default credential chain';
    if (keyIdFile && secretFile) {
      credentialSource = `access key files --s3-access-key-id-file / --s3-secret-access-key-file${tokenFile ? ' / --s3-session-token-file' : ''}`;
      credentials = {
        accessKeyId: readSecretFile('--s3-access-key-id-file', keyIdFile),
        secretAccessKey: readSecretFile('--s3-secret-access-key-file', secretFile),
        sessionToken: tokenFile ? readSecretFile('--s3-session-token-file', tokenFile) : undefined,
      };
    } else if (!inherit && opts['aws-profile'] === undefined && nonEmpty(env.AWS_ACCESS_KEY_ID) && nonEmpty(env.AWS_SECRET_ACCESS_KEY)) {
      // As boto3: a profile named on the command line takes its own keys, not the environment's.
      credentialSource = `environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY${nonEmpty(env.AWS_SESSION_TOKEN) ? ' / AWS_SESSION_TOKEN' : ''}`;
      credentials = {
        accessKeyId: env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
        sessionToken: nonEmpty(env.AWS_SESSION_TOKEN),
      };
    }
    if (credentials) {
      registerSecret(credentials.secretAccessKey);
      registerSecret(credentials.sessionToken);
    }
    const containerCredentials = credentials ? undefined : containerSource(env, profile);
    if (containerCredentials) {
      credentialSource = `the container credentials endpoint ${containerCredentials.url}` +
        (containerCredentials.authorizationTokenFile ? ' with the token of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE' : '');
    }
    const encryption = opts.encryption as string | undefined;
    if (encryption !== undefined && encryption !== 'AES256' && encryption !== 'aws:kms') {
      throw new GeneralError(`Unsupported encryption type: ${encryption}`);
    }
    if (opts['sse-kms-key-id'] !== undefined && encryption !== 'aws:kms') {
      throw new GeneralError('Encryption type must be "aws:kms" if SSE KMS Key ID is specified');
    }
    if (encryption !== undefined && customerKey) {
      // S3 refuses both on one request (InvalidArgument): say so before anything is uploaded.
      throw new CliError(`--encryption ${encryption} cannot be combined with ${customerKey.from} (SSE-C): choose one server-side encryption`);
    }
    return {
      url,
      config: {
        provider: 'aws-s3',
        bucket: url.bucket,
        retry,
        ca: caFlag ? readCa('--endpoint-ca', caFlag) : envCa ? readEnvCa('AWS_CA_BUNDLE', envCa, endpointUrl ?? 'https://') : undefined,
        // boto3 (1.28+) and the SDK also read the endpoint from the environment.
        endpointUrl,
        region: (opts['s3-region'] as string | undefined) ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ??
          profileRegion(env, profile),
        profile,
        credentials,
        containerCredentials,
        inheritFromIamRole: inherit,
        requestChecksumCalculation: checksumMode('AWS_REQUEST_CHECKSUM_CALCULATION', env.AWS_REQUEST_CHECKSUM_CALCULATION),
        responseChecksumValidation: checksumMode('AWS_RESPONSE_CHECKSUM_VALIDATION', env.AWS_RESPONSE_CHECKSUM_VALIDATION),
        serverSideEncryption: encryption as 'AES256' | 'aws:kms' | undefined,
        sseKmsKeyId: opts['sse-kms-key-id'] as string | undefined,
        ...(customerKey ? { sseCustomerKey: readCustomerKey(customerKey.from, customerKey.path) } : {}),
      },
      credentialSource,
    };
  }

  if (url.provider === 'azure-blob-storage') {
    const envCa = nonEmpty(env.REQUESTS_CA_BUNDLE);
    const { auth, source } = azureAuth(url, opts, env);
    const scope = opts['encryption-scope'] as string | undefined;
    if (scope !== undefined && customerKey) {
      // Azure takes one or the other on a request: say so before anything is uploaded.
      throw new CliError(`--encryption-scope cannot be combined with ${customerKey.from}: choose one server-side encryption`);
    }
    return {
      url,
      config: {
        provider: 'azure-blob-storage',
        bucket: url.bucket,
        retry,
        ca: caFlag ? readCa('--endpoint-ca', caFlag) : envCa ? readEnvCa('REQUESTS_CA_BUNDLE', envCa, url.accountUrl) : undefined,
        accountUrl: url.accountUrl,
        auth,
        encryptionScope: scope,
        ...(customerKey ? { customerKey: readCustomerKey(customerKey.from, customerKey.path) } : {}),
      },
      credentialSource: source,
    };
  }

  // google-cloud-storage
  const keyFlag = opts['google-application-credentials'] as string | undefined;
  const gke = opts['google-gke-environment'] === true;
  if (keyFlag && gke) {
    throw new CliError('--google-application-credentials and --google-gke-environment are mutually exclusive');
  }
  const kmsKeyName = opts['kms-key-name'] as string | undefined;
  if (kmsKeyName !== undefined && customerKey) {
    // GCS refuses a KMS key name and a customer-supplied key on one request.
    throw new CliError(`--kms-key-name cannot be combined with ${customerKey.from}: choose one server-side encryption`);
  }
  const emulator = nonEmpty(env.STORAGE_EMULATOR_HOST);
  const keyFilename = gke ? undefined : (keyFlag ?? nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS));
  const credentialSource = emulator
    ? 'none (STORAGE_EMULATOR_HOST: anonymous access to an emulator)'
    : keyFilename
      ? `service-account key file ${keyFilename} (${keyFlag ? '--google-application-credentials' : 'GOOGLE_APPLICATION_CREDENTIALS'})`
      : `Application Default Credentials${gke ? ' (--google-gke-environment)' : ''}`;
  return {
    url,
    config: {
      provider: 'google-cloud-storage',
      bucket: url.bucket,
      retry,
      ca: caFlag ? readCa('--endpoint-ca', caFlag) : undefined,
      apiEndpoint: emulator ? (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`) : undefined,
      keyFilename,
      projectId: nonEmpty(env.GOOGLE_CLOUD_PROJECT) ?? nonEmpty(env.GCLOUD_PROJECT),
      kmsKeyName,
      ...(customerKey ? { customerKey: readCustomerKey(customerKey.from, customerKey.path) } : {}),
    },
    credentialSource,
  };
}

/**
 * Azure authentication in barman's order (docs/format.md#credentials): an explicit credential type, else a
 * connection string, else a SAS token, else an account key, else DefaultAzureCredential.
 * Our ObjectStore-style flags must name exactly one method (cnpg-usage §1.3).
 */
function azureAuth(url: ParsedUrl, opts: Record<string, unknown>, env: Env): { auth: AzureStoreConfig['auth']; source: string } {
  const flagMethods = [
    ['--azure-connection-string-file', opts['azure-connection-string-file']],
    ['--azure-storage-key-file', opts['azure-storage-key-file']],
    ['--azure-storage-sas-token-file', opts['azure-storage-sas-token-file']],
    ['--azure-inherit-from-azure-ad', opts['azure-inherit-from-azure-ad'] || undefined],
    ['--azure-use-default-azure-credentials', opts['azure-use-default-azure-credentials'] || undefined],
  ].filter(([, v]) => v !== undefined) as [string, unknown][];
  const [first, second] = flagMethods;
  if (first && second) {
    throw new CliError(`${first[0]} and ${second[0]} are mutually exclusive: choose one way to authenticate`);
  }
  const credentialFlag = opts['azure-credential'] as AzureCredentialKind | undefined;
  let credential: AzureCredentialKind | undefined = credentialFlag;
  if (opts['azure-inherit-from-azure-ad']) credential = 'managed-identity';
  if (opts['azure-use-default-azure-credentials']) credential = 'default';
  if (credentialFlag && first && !second && credential !== credentialFlag) {
    throw new CliError(`--azure-credential ${credentialFlag} contradicts ${first[0]}`);
  }
  if (credential && first && !second && !['--azure-inherit-from-azure-ad', '--azure-use-default-azure-credentials'].includes(first[0])) {
    throw new CliError(`--azure-credential cannot be combined with ${first[0]}`);
  }

  const account = (opts['azure-storage-account'] as string | undefined) ?? url.accountName ?? nonEmpty(env.AZURE_STORAGE_ACCOUNT);
  if (credential) {
    if (!url.accountUrl) throw new GeneralError('an account URL is needed to use --azure-credential');
    const flag = flagMethods[0]?.[0] ?? `--azure-credential ${credentialFlag}`;
    return { auth: { kind: 'token-credential', credential }, source: `Azure ${credential} credential (${flag})` };
  }
  const connFile = opts['azure-connection-string-file'] as string | undefined;
  const connectionString = connFile
    ? readSecretFile('--azure-connection-string-file', connFile)
    : flagMethods.length === 0 ? nonEmpty(env.AZURE_STORAGE_CONNECTION_STRING) : undefined;
  if (connectionString) {
    registerSecret(connectionString);
    const from = connFile ? '--azure-connection-string-file' : 'AZURE_STORAGE_CONNECTION_STRING';
    return { auth: { kind: 'connection-string', connectionString }, source: `a connection string (${from})` };
  }
  if (url.emulated && flagMethods.length === 0) {
    // barman: the emulator URL form needs a connection string (docs/format.md#urls).
    throw new GeneralError('A connection string must be provided when using emulated storage');
  }
  const sasFile = opts['azure-storage-sas-token-file'] as string | undefined;
  const sasToken = sasFile
    ? readSecretFile('--azure-storage-sas-token-file', sasFile)
    : flagMethods.length === 0 ? nonEmpty(env.AZURE_STORAGE_SAS_TOKEN) : undefined;
  if (sasToken) {
    registerSecret(sasToken.replace(/^\?/, ''));
    const from = sasFile ? '--azure-storage-sas-token-file' : 'AZURE_STORAGE_SAS_TOKEN';
    return { auth: { kind: 'sas', sasToken }, source: `a SAS token (${from})` };
  }
  const keyFile = opts['azure-storage-key-file'] as string | undefined;
  const accountKey = keyFile
    ? readSecretFile('--azure-storage-key-file', keyFile)
    : flagMethods.length === 0 ? nonEmpty(env.AZURE_STORAGE_KEY) : undefined;
  if (accountKey) {
    if (!account) throw new CliError('an account name is needed with an account key (--azure-storage-account)');
    registerSecret(accountKey);
    const from = keyFile ? '--azure-storage-key-file' : 'AZURE_STORAGE_KEY';
    return { auth: { kind: 'shared-key', accountName: account, accountKey }, source: `the key of account ${account} (${from})` };
  }
  return { auth: { kind: 'token-credential', credential: 'default' }, source: 'the DefaultAzureCredential chain (no other credential given)' };
}

/**
 * The container credentials endpoint (EKS Pod Identity, ECS task role), when it is what the SDK's
 * default chain and boto3's would use: no profile, no web identity, no shared credentials or config
 * file that could hold credentials of higher rank. Anything else stays with the SDK's chain.
 */
function containerSource(env: Env, profile: string | undefined): ContainerCredentialsSource | undefined {
  const relative = nonEmpty(env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI);
  const full = nonEmpty(env.AWS_CONTAINER_CREDENTIALS_FULL_URI);
  if (!relative && !full) return undefined;
  if (profile || nonEmpty(env.AWS_WEB_IDENTITY_TOKEN_FILE)) return undefined;
  const home = env.HOME || homedir();
  const files = [nonEmpty(env.AWS_SHARED_CREDENTIALS_FILE) ?? join(home, '.aws', 'credentials'), nonEmpty(env.AWS_CONFIG_FILE) ?? join(home, '.aws', 'config')];
  if (files.some((f) => existsSync(f))) return undefined;
  const tokenFile = nonEmpty(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE);
  const token = tokenFile ? undefined : nonEmpty(env.AWS_CONTAINER_AUTHORIZATION_TOKEN);
  registerSecret(token);
  return {
    // Both SDKs give the relative form (ECS) precedence.
    url: relative ? `http://169.254.170.2${relative.startsWith('/') ? '' : '/'}${relative}` : full!,
    ...(tokenFile ? { authorizationTokenFile: tokenFile } : {}),
    ...(token ? { authorizationToken: token } : {}),
  };
}

/** The `region` of a profile in the shared AWS config file, as boto3 reads it when nothing else sets one. */
function profileRegion(env: Env, profile: string | undefined): string | undefined {
  const file = nonEmpty(env.AWS_CONFIG_FILE) ?? join(env.HOME || homedir(), '.aws', 'config');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const want = !profile || profile === 'default' ? ['default', 'profile default'] : [`profile ${profile}`];
  let inSection = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) inSection = want.includes(section[1]!.replace(/\s+/g, ' '));
    else if (inSection) {
      const kv = /^region\s*=\s*(\S+)/.exec(line);
      if (kv) return kv[1];
    }
  }
  return undefined;
}

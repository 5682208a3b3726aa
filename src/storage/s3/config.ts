// The S3 store's config, and how flags + environment build it (precedence: flags > environment >
// the SDK's default chain). Pure apart from reading the files the flags and variables name.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError, GeneralError } from '../../errors.js';
import { registerSecret } from '../../log.js';
import type { StoreConfigBase } from '../config.js';
import { nonEmpty, readCa, readCustomerKey, readEnvCa, readSecretFile, type Env, type Resolved, type ResolveInput } from '../provider.js';
import type { ContainerCredentialsSource } from './container-credentials.js';
import { proxyFor, registerProxySecrets, type ProxySetting } from '../proxy.js';

export interface S3StoreConfig extends StoreConfigBase {
  provider: 'aws-s3';
  /** Custom endpoint (MinIO, moto, …); path-style addressing is used with it. */
  endpointUrl?: string;
  region?: string;
  /** Named profile of the shared config/credentials files. */
  profile?: string;
  /**
   * A profile is named while AWS_ACCESS_KEY_ID is set: without static credentials, use the profile's
   * only, as boto3 does (the SDK's default chain would take the environment's keys, with a warning).
   */
  profileOverEnvKeys?: boolean;
  /** Static credentials; when absent the SDK's default chain runs (env, web identity, profile, IMDS). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * A container credentials endpoint (EKS Pod Identity, ECS) that the default chain would reach
   * first: asked by our own small provider, so the lean client can sign with its answer.
   */
  containerCredentials?: ContainerCredentialsSource;
  /**
   * s3Credentials.inheritFromIAMRole: skip static keys from the environment and use only the ambient
   * role (web identity, container or instance metadata).
   */
  inheritFromIamRole?: boolean;
  /** AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_supported' | 'when_required'. */
  requestChecksumCalculation?: 'when_supported' | 'when_required';
  responseChecksumValidation?: 'when_supported' | 'when_required';
  /** Server-side encryption for uploads (docs/format.md#encryption). */
  serverSideEncryption?: 'AES256' | 'aws:kms';
  sseKmsKeyId?: string;
  /**
   * SSE-C: the 32-byte AES-256 key S3 encrypts object bodies with and needs again to read them
   * (HEAD included). Never stored by S3, so never recoverable from it.
   */
  sseCustomerKey?: Buffer;
  /**
   * 'auto' (default): with static or container credentials, the lean SigV4 client serves the small requests of
   * the WAL hot path and the SDK is loaded only for the rest; 'sdk': always the AWS SDK.
   */
  client?: 'auto' | 'sdk';
  /** The HTTP(S) proxy the endpoint is reached through (src/storage/proxy.ts); requests go through the SDK then. */
  proxy?: ProxySetting;
}

/** The options S3 reads (cli/store.ts checks each name and kind against the option table). */
export type S3Options = {
  readonly 'endpoint-url': string | undefined;
  readonly 'aws-profile': string | undefined;
  readonly 's3-region': string | undefined;
  readonly 's3-access-key-id-file': string | undefined;
  readonly 's3-secret-access-key-file': string | undefined;
  readonly 's3-session-token-file': string | undefined;
  readonly 's3-inherit-from-iam-role': boolean;
  /** Named by `customerKey`: the CLI reads it and passes the file in. */
  readonly 'sse-customer-key-file': string | undefined;
  // Server-side encryption: only the uploading commands (wal-archive, backup) have these.
  readonly encryption?: string | undefined;
  readonly 'sse-kms-key-id'?: string | undefined;
};

function checksumMode(name: string, value: string | undefined): 'when_supported' | 'when_required' | undefined {
  const v = nonEmpty(value)?.toLowerCase();
  if (v === undefined) return undefined;
  if (v === 'when_supported' || v === 'when_required') return v;
  throw new CliError(`${name} must be when_supported or when_required, not '${value}'`);
}

export function resolveS3({ url, options: opts, env, retry, caFile, customerKeyFile }: ResolveInput<S3Options>): Resolved<S3StoreConfig> {
  const endpointUrl = opts['endpoint-url'] ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const envCa = nonEmpty(env.AWS_CA_BUNDLE);
  const inherit = opts['s3-inherit-from-iam-role'];
  const keyIdFile = opts['s3-access-key-id-file'];
  const secretFile = opts['s3-secret-access-key-file'];
  const tokenFile = opts['s3-session-token-file'];
  if (inherit && (keyIdFile || secretFile || tokenFile)) {
    throw new CliError('--s3-inherit-from-iam-role cannot be combined with access key files');
  }
  if (Boolean(keyIdFile) !== Boolean(secretFile)) {
    throw new CliError('--s3-access-key-id-file and --s3-secret-access-key-file must be given together');
  }
  let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  const profile = opts['aws-profile'] ?? nonEmpty(env.AWS_PROFILE);
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
  const encryption = opts.encryption;
  if (encryption !== undefined && encryption !== 'AES256' && encryption !== 'aws:kms') {
    throw new GeneralError(`Unsupported encryption type: ${encryption}`);
  }
  if (opts['sse-kms-key-id'] !== undefined && encryption !== 'aws:kms') {
    throw new GeneralError('Encryption type must be "aws:kms" if SSE KMS Key ID is specified');
  }
  if (encryption !== undefined && customerKeyFile) {
    // S3 refuses both on one request (InvalidArgument): say so before anything is uploaded.
    throw new CliError(`--encryption ${encryption} cannot be combined with ${customerKeyFile.from} (SSE-C): choose one server-side encryption`);
  }
  const region = opts['s3-region'] ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? profileRegion(env, profile);
  const proxy = proxyFor(endpointUrl ?? `https://s3.${region ?? 'us-east-1'}.amazonaws.com`, env);
  if (proxy) registerProxySecrets(proxy);
  return {
    config: {
      provider: 'aws-s3',
      bucket: url.bucket,
      retry,
      ca: caFile ? readCa('--endpoint-ca', caFile) : envCa ? readEnvCa('AWS_CA_BUNDLE', envCa, endpointUrl ?? 'https://') : undefined,
      // boto3 (1.28+) and the SDK also read the endpoint from the environment.
      endpointUrl,
      region,
      profile,
      ...(profile && nonEmpty(env.AWS_ACCESS_KEY_ID) ? { profileOverEnvKeys: true } : {}),
      credentials,
      containerCredentials,
      inheritFromIamRole: inherit,
      requestChecksumCalculation: checksumMode('AWS_REQUEST_CHECKSUM_CALCULATION', env.AWS_REQUEST_CHECKSUM_CALCULATION),
      responseChecksumValidation: checksumMode('AWS_RESPONSE_CHECKSUM_VALIDATION', env.AWS_RESPONSE_CHECKSUM_VALIDATION),
      serverSideEncryption: encryption,
      sseKmsKeyId: opts['sse-kms-key-id'],
      ...(customerKeyFile ? { sseCustomerKey: readCustomerKey(customerKeyFile.from, customerKeyFile.path) } : {}),
      ...(proxy ? { proxy } : {}),
    },
    credentialSource,
  };
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

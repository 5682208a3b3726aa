// The Azure Blob Storage store's config, and how flags + environment build it: exactly one way to
// authenticate, in barman's order (docs/format.md#credentials).
import { readFileSync } from 'node:fs';
import { CliError, GeneralError } from '../../errors.js';
import { registerSecret } from '../../log.js';
import type { StoreConfigBase } from '../config.js';
import { nonEmpty, readCa, readCustomerKey, readEnvCa, readSecretFile, type Env, type Resolved, type ResolveInput } from '../provider.js';
import type { ParsedUrl } from '../url.js';
import { proxyVariables } from '../proxy.js';

export type AzureCredentialKind = 'azure-cli' | 'managed-identity' | 'default';

export interface AzureStoreConfig extends StoreConfigBase {
  provider: 'azure-blob-storage';
  /** https://<account>.blob.core.windows.net or, for an emulator, http://host:port/<account>. */
  accountUrl?: string;
  /** Exactly one way to authenticate, chosen by the CLI in barman's order (docs/format.md#credentials). */
  auth:
    | { kind: 'connection-string'; connectionString: string }
    | { kind: 'sas'; sasToken: string }
    | { kind: 'shared-key'; accountName: string; accountKey: string }
    | { kind: 'token-credential'; credential: AzureCredentialKind };
  encryptionScope?: string;
  /**
   * Customer-provided key (CPK): the 32-byte AES-256 key sent with every blob write and read.
   * Azure keeps only its SHA-256 and refuses reads without it (409); the SDK sends it over HTTPS only.
   */
  customerKey?: Buffer;
  /**
   * The certificates of NODE_EXTRA_CA_CERTS, when `ca` is given: an explicit CA list replaces Node's
   * trust store, that file included, so the driver lists them again.
   */
  nodeExtraCa?: string;
  /** http(s)_proxy / no_proxy from the environment: the driver picks the proxy once it knows its endpoint (src/storage/proxy.ts). */
  proxyEnv?: Env;
}

/** The options Azure reads (cli/store.ts checks each name and kind against the option table). */
export type AzureOptions = {
  readonly 'azure-credential': AzureCredentialKind | undefined;
  readonly 'azure-storage-account': string | undefined;
  readonly 'azure-storage-key-file': string | undefined;
  readonly 'azure-storage-sas-token-file': string | undefined;
  readonly 'azure-connection-string-file': string | undefined;
  readonly 'azure-inherit-from-azure-ad': boolean;
  readonly 'azure-use-default-azure-credentials': boolean;
  /** Named by `customerKey`: the CLI reads it and passes the file in. */
  readonly 'azure-customer-key-file': string | undefined;
  /** Only the uploading commands (wal-archive, backup) have it. */
  readonly 'encryption-scope'?: string | undefined;
};

export function resolveAzure({ url, options: opts, env, retry, caFile, customerKeyFile }: ResolveInput<AzureOptions>): Resolved<AzureStoreConfig> {
  const envCa = nonEmpty(env.REQUESTS_CA_BUNDLE);
  const { auth, source } = azureAuth(url, opts, env);
  const ca = caFile ? readCa('--endpoint-ca', caFile) : envCa ? readEnvCa('REQUESTS_CA_BUNDLE', envCa, url.accountUrl) : undefined;
  const nodeExtraCa = ca ? nodeExtraCerts(env) : undefined;
  const scope = opts['encryption-scope'];
  if (scope !== undefined && customerKeyFile) {
    // Azure takes one or the other on a request: say so before anything is uploaded.
    throw new CliError(`--encryption-scope cannot be combined with ${customerKeyFile.from}: choose one server-side encryption`);
  }
  return {
    config: {
      provider: 'azure-blob-storage',
      bucket: url.bucket,
      retry,
      ca,
      accountUrl: url.accountUrl,
      auth,
      encryptionScope: scope,
      ...(customerKeyFile ? { customerKey: readCustomerKey(customerKeyFile.from, customerKeyFile.path) } : {}),
      ...(nodeExtraCa ? { nodeExtraCa } : {}),
      proxyEnv: proxyVariables(env),
    },
    credentialSource: source,
  };
}

function nodeExtraCerts(env: Env): string | undefined {
  const file = nonEmpty(env.NODE_EXTRA_CA_CERTS);
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch {
    // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS.
    return undefined;
  }
}

/**
 * Azure authentication in barman's order (docs/format.md#credentials): an explicit credential type, else a
 * connection string, else a SAS token, else an account key, else DefaultAzureCredential.
 * Our ObjectStore-style flags must name exactly one method (docs/configuration.md#rules, rule 3).
 */
function azureAuth(url: ParsedUrl, opts: AzureOptions, env: Env): { auth: AzureStoreConfig['auth']; source: string } {
  const methods: readonly (readonly [flag: string, given: string | true | undefined])[] = [
    ['--azure-connection-string-file', opts['azure-connection-string-file']],
    ['--azure-storage-key-file', opts['azure-storage-key-file']],
    ['--azure-storage-sas-token-file', opts['azure-storage-sas-token-file']],
    ['--azure-inherit-from-azure-ad', opts['azure-inherit-from-azure-ad'] || undefined],
    ['--azure-use-default-azure-credentials', opts['azure-use-default-azure-credentials'] || undefined],
  ];
  const flagMethods = methods.filter(([, v]) => v !== undefined);
  const [first, second] = flagMethods;
  if (first && second) {
    throw new CliError(`${first[0]} and ${second[0]} are mutually exclusive: choose one way to authenticate`);
  }
  const credentialFlag = opts['azure-credential'];
  let credential: AzureCredentialKind | undefined = credentialFlag;
  if (opts['azure-inherit-from-azure-ad']) credential = 'managed-identity';
  if (opts['azure-use-default-azure-credentials']) credential = 'default';
  if (credentialFlag && first && !second && credential !== credentialFlag) {
    throw new CliError(`--azure-credential ${credentialFlag} contradicts ${first[0]}`);
  }
  if (credential && first && !second && !['--azure-inherit-from-azure-ad', '--azure-use-default-azure-credentials'].includes(first[0])) {
    throw new CliError(`--azure-credential cannot be combined with ${first[0]}`);
  }

  const account = opts['azure-storage-account'] ?? url.accountName ?? nonEmpty(env.AZURE_STORAGE_ACCOUNT);
  if (credential) {
    if (!url.accountUrl) throw new GeneralError('an account URL is needed to use --azure-credential');
    const flag = flagMethods[0]?.[0] ?? `--azure-credential ${credentialFlag}`;
    return { auth: { kind: 'token-credential', credential }, source: `Azure ${credential} credential (${flag})` };
  }
  const connFile = opts['azure-connection-string-file'];
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
  const sasFile = opts['azure-storage-sas-token-file'];
  const sasToken = sasFile
    ? readSecretFile('--azure-storage-sas-token-file', sasFile)
    : flagMethods.length === 0 ? nonEmpty(env.AZURE_STORAGE_SAS_TOKEN) : undefined;
  if (sasToken) {
    registerSecret(sasToken.replace(/^\?/, ''));
    const from = sasFile ? '--azure-storage-sas-token-file' : 'AZURE_STORAGE_SAS_TOKEN';
    return { auth: { kind: 'sas', sasToken }, source: `a SAS token (${from})` };
  }
  const keyFile = opts['azure-storage-key-file'];
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

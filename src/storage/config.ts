// Typed, fully resolved driver configuration. The CLI layer builds these from flags and the
// environment (flags > env > provider default chain); drivers never read process.env themselves,
// except where a provider SDK's own default credential chain does.
import type { ObjectStore, ProviderName } from './types.js';
import type { ContainerCredentialsSource } from './container-credentials.js';

/** The one retry / timeout policy, mapped by each driver onto its SDK's options. */
export interface RetryPolicy {
  /** Total attempts per request, first one included. */
  maxAttempts: number;
  /** First back-off delay; doubles each retry, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** TCP/TLS connection set-up limit. */
  connectTimeoutMs: number;
  /** Longest silence allowed on an open request (barman's --read-timeout, default 60 s). */
  readTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 3,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  connectTimeoutMs: 10_000,
  readTimeoutMs: 60_000,
};

interface CommonConfig {
  /** Bucket / container (the root directory for the file store). */
  bucket: string;
  retry: RetryPolicy;
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  ca?: string;
}

export interface FileStoreConfig extends CommonConfig {
  provider: 'file';
}

export interface S3StoreConfig extends CommonConfig {
  provider: 'aws-s3';
  /** Custom endpoint (MinIO, moto, …); path-style addressing is used with it. */
  endpointUrl?: string;
  region?: string;
  /** Named profile of the shared config/credentials files. */
  profile?: string;
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
}

export type AzureCredentialKind = 'azure-cli' | 'managed-identity' | 'default';

export interface AzureStoreConfig extends CommonConfig {
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
}

export interface GcsStoreConfig extends CommonConfig {
  provider: 'google-cloud-storage';
  /** JSON API endpoint, e.g. from STORAGE_EMULATOR_HOST; anonymous credentials are used with it. */
  apiEndpoint?: string;
  /** Service-account key file (GOOGLE_APPLICATION_CREDENTIALS); absent → Application Default Credentials. */
  keyFilename?: string;
  projectId?: string;
  /** CMEK key for uploaded objects (docs/format.md#encryption). */
  kmsKeyName?: string;
  /**
   * Customer-supplied encryption key (CSEK): the 32-byte AES-256 key sent with every upload and
   * media download; GCS keeps only its SHA-256 and refuses to serve the data without it (400).
   */
  customerKey?: Buffer;
}

export type StoreConfig = FileStoreConfig | S3StoreConfig | AzureStoreConfig | GcsStoreConfig;

/**
 * Open a driver. Each provider's SDK is loaded only here, on demand, so a command that uses S3
 * never loads the Azure or GCS SDK (lean hot path for wal-archive / wal-restore).
 */
export async function openObjectStore(config: StoreConfig): Promise<ObjectStore> {
  switch (config.provider) {
    case 'file':
      return new (await import('./file.js')).FileObjectStore(config);
    case 'aws-s3':
      if ((config.credentials || config.containerCredentials) && config.client !== 'sdk') return new (await import('./s3-lean.js')).LeanS3ObjectStore(config);
      return new (await import('./s3.js')).S3ObjectStore(config);
    case 'azure-blob-storage':
      return new (await import('./azure.js')).AzureObjectStore(config);
    case 'google-cloud-storage':
      return new (await import('./gcs.js')).GcsObjectStore(config);
  }
}

export type { ProviderName };

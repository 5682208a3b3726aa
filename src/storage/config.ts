// The one retry policy, the fields every store config has, and openObjectStore(). Each provider's
// own config type and its resolution from flags + environment live in its folder (s3/config.ts, …);
// drivers never read the environment themselves, except where a provider SDK's own default chain does.
import { providerNamed, type StoreConfig } from './registry.js';
import type { ObjectStore } from './types.js';

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

/**
 * The longest delay Node's timers hold (2^31 − 1 ms, ~24.8 days): a longer one fires at once, so a
 * --read-timeout past it would fail every request. Longer limits are held to it.
 */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 3,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  connectTimeoutMs: 10_000,
  readTimeoutMs: 60_000,
};

/** What every provider's config has; each provider's folder extends it (s3/config.ts, …). */
export interface StoreConfigBase {
  /** Bucket / container (the root directory for the file store). */
  bucket: string;
  retry: RetryPolicy;
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  ca?: string;
}

export type { StoreConfig, ProviderName } from './registry.js';
// Each provider's config type, for the modules that import it from here (a new provider need not add one).
export type { S3StoreConfig } from './s3/config.js';
export type { AzureStoreConfig, AzureCredentialKind } from './azure/config.js';
export type { GcsStoreConfig } from './gcs/config.js';
export type { FileStoreConfig } from './file/config.js';

/**
 * Open a driver. Each provider loads its SDK only here, on demand, so a command that uses S3
 * never loads the Azure or GCS SDK (lean hot path for wal-archive / wal-restore).
 */
export async function openObjectStore(config: StoreConfig): Promise<ObjectStore> {
  return (await providerNamed(config.provider)).open(config);
}

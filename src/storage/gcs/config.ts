// The Google Cloud Storage store's config, and how flags + environment build it.
import { CliError } from '../../errors.js';
import type { StoreConfigBase } from '../config.js';
import { nonEmpty, readCa, readCustomerKey, type Resolved, type ResolveInput } from '../provider.js';

export interface GcsStoreConfig extends StoreConfigBase {
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

/** The options GCS reads (cli/store.ts checks each name and kind against the option table). */
export type GcsOptions = {
  readonly 'google-application-credentials': string | undefined;
  readonly 'google-gke-environment': boolean;
  /** Named by `customerKey`: the CLI reads it and passes the file in. */
  readonly 'google-customer-key-file': string | undefined;
  /** Only the uploading commands (wal-archive, backup) have it. */
  readonly 'kms-key-name'?: string | undefined;
};

export function resolveGcs({ url, options: opts, env, retry, caFile, customerKeyFile }: ResolveInput<GcsOptions>): Resolved<GcsStoreConfig> {
  const keyFlag = opts['google-application-credentials'];
  const gke = opts['google-gke-environment'];
  if (keyFlag && gke) {
    throw new CliError('--google-application-credentials and --google-gke-environment are mutually exclusive');
  }
  const kmsKeyName = opts['kms-key-name'];
  if (kmsKeyName !== undefined && customerKeyFile) {
    // GCS refuses a KMS key name and a customer-supplied key on one request.
    throw new CliError(`--kms-key-name cannot be combined with ${customerKeyFile.from}: choose one server-side encryption`);
  }
  const emulator = nonEmpty(env.STORAGE_EMULATOR_HOST);
  const keyFilename = gke ? undefined : (keyFlag ?? nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS));
  const credentialSource = emulator
    ? 'none (STORAGE_EMULATOR_HOST: anonymous access to an emulator)'
    : keyFilename
      ? `service-account key file ${keyFilename} (${keyFlag ? '--google-application-credentials' : 'GOOGLE_APPLICATION_CREDENTIALS'})`
      : `Application Default Credentials${gke ? ' (--google-gke-environment)' : ''}`;
  return {
    config: {
      provider: 'google-cloud-storage',
      bucket: url.bucket,
      retry,
      ca: caFile ? readCa('--endpoint-ca', caFile) : undefined,
      apiEndpoint: emulator ? (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`) : undefined,
      keyFilename,
      projectId: nonEmpty(env.GOOGLE_CLOUD_PROJECT) ?? nonEmpty(env.GCLOUD_PROJECT),
      kmsKeyName,
      ...(customerKeyFile ? { customerKey: readCustomerKey(customerKeyFile.from, customerKeyFile.path) } : {}),
    },
    credentialSource,
  };
}

// What the CLI's option table needs from GCS, as data only (no SDK, no node:fs): the launcher
// answers --version from the table without loading storage code.
import type { ProviderDeclaration } from '../provider.js';
import type { GcsOptions } from './config.js';

export const gcs = {
  name: 'google-cloud-storage',
  cloudProvider: true,
  options: [
    {
      long: '--google-application-credentials', kind: 'value', metavar: 'FILE', extension: true,
      env: ['GOOGLE_APPLICATION_CREDENTIALS'],
      help: 'GCS: service-account key file (googleCredentials.applicationCredentials)',
    },
    {
      long: '--google-gke-environment', kind: 'flag', extension: true,
      help: 'GCS: Application Default Credentials / GKE workload identity (googleCredentials.gkeEnvironment)',
    },
    {
      long: '--google-customer-key-file', kind: 'value', metavar: 'FILE', extension: true, env: ['BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE'],
      help: 'GCS: file holding the 32-byte customer-supplied encryption key (raw, or base64 of it) for every object written, needed to read them back',
    },
  ],
  flags: ['google-application-credentials', 'google-gke-environment'],
  customerKey: { option: 'google-customer-key-file', variable: 'BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE', what: 'customer-supplied encryption keys (CSEK)', where: 'GCS' },
} as const satisfies ProviderDeclaration<GcsOptions>;

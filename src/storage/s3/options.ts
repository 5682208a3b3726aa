// What the CLI's option table needs from S3, as data only (no SDK, no node:fs): the launcher answers
// --version from the table without loading storage code.
import type { ProviderDeclaration } from '../provider.js';
import type { S3Options } from './config.js';

export const s3 = {
  name: 'aws-s3',
  cloudProvider: true,
  options: [
    { long: '--endpoint-url', kind: 'value', metavar: 'ENDPOINT_URL', help: 'S3: custom endpoint (MinIO, Ceph, any S3-compatible store)' },
    {
      short: '-P', long: '--aws-profile', aliases: ['--profile'], kind: 'value', metavar: 'AWS_PROFILE', env: ['AWS_PROFILE'],
      help: 'S3: profile of the shared AWS config and credentials files',
    },
    // One flag per ObjectStore field, for use outside Kubernetes (docs/format.md#providers, docs/configuration.md#objectstore-field--flag--environment).
    {
      long: '--s3-region', kind: 'value', metavar: 'REGION', extension: true, env: ['AWS_REGION', 'AWS_DEFAULT_REGION'],
      help: 'S3: region (s3Credentials.region)',
    },
    {
      long: '--s3-access-key-id-file', kind: 'value', metavar: 'FILE', extension: true, env: ['AWS_ACCESS_KEY_ID'],
      help: 'S3: file holding the access key id (s3Credentials.accessKeyId)',
    },
    {
      long: '--s3-secret-access-key-file', kind: 'value', metavar: 'FILE', extension: true, env: ['AWS_SECRET_ACCESS_KEY'],
      help: 'S3: file holding the secret access key (s3Credentials.secretAccessKey)',
    },
    {
      long: '--s3-session-token-file', kind: 'value', metavar: 'FILE', extension: true, env: ['AWS_SESSION_TOKEN'],
      help: 'S3: file holding a session token (s3Credentials.sessionToken)',
    },
    {
      long: '--sse-customer-key-file', kind: 'value', metavar: 'FILE', extension: true, env: ['BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE'],
      help: 'S3: file holding the 32-byte SSE-C key (raw, or base64 of it) that encrypts every object written and is needed to read them back',
    },
    {
      long: '--s3-inherit-from-iam-role', kind: 'flag', extension: true,
      help: 'S3: use the ambient role only: web identity (IRSA), container or instance metadata (s3Credentials.inheritFromIAMRole)',
    },
  ],
  flags: ['s3-region', 's3-access-key-id-file', 's3-secret-access-key-file', 's3-session-token-file', 's3-inherit-from-iam-role'],
  customerKey: { option: 'sse-customer-key-file', variable: 'BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE', what: 'customer-provided keys (SSE-C)', where: 'S3' },
} as const satisfies ProviderDeclaration<S3Options>;

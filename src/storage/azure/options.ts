// What the CLI's option table needs from Azure, as data only (no SDK, no node:fs): the launcher
// answers --version from the table without loading storage code.
import type { ProviderDeclaration } from '../provider.js';
import type { AzureOptions } from './config.js';

export const azure = {
  name: 'azure-blob-storage',
  cloudProvider: true,
  options: [
    {
      long: '--azure-credential', aliases: ['--credential', '--default'], kind: 'value', metavar: 'AZURE_CREDENTIAL',
      choices: ['azure-cli', 'managed-identity', 'default'],
      help: 'Azure: authenticate with this credential type instead of a connection string, SAS token or key',
    },
    // One flag per ObjectStore field, for use outside Kubernetes (docs/format.md#providers, docs/configuration.md#objectstore-field--flag--environment).
    {
      long: '--azure-storage-account', kind: 'value', metavar: 'NAME', extension: true, env: ['AZURE_STORAGE_ACCOUNT'],
      help: 'Azure: storage account name (azureCredentials.storageAccount)',
    },
    {
      long: '--azure-storage-key-file', kind: 'value', metavar: 'FILE', extension: true, env: ['AZURE_STORAGE_KEY'],
      help: 'Azure: file holding the account key (azureCredentials.storageKey)',
    },
    {
      long: '--azure-storage-sas-token-file', kind: 'value', metavar: 'FILE', extension: true, env: ['AZURE_STORAGE_SAS_TOKEN'],
      help: 'Azure: file holding a SAS token (azureCredentials.storageSasToken)',
    },
    {
      long: '--azure-connection-string-file', kind: 'value', metavar: 'FILE', extension: true,
      env: ['AZURE_STORAGE_CONNECTION_STRING'],
      help: 'Azure: file holding a connection string (azureCredentials.connectionString)',
    },
    {
      long: '--azure-customer-key-file', kind: 'value', metavar: 'FILE', extension: true, env: ['BARMAN_CLOUD_AZURE_CUSTOMER_KEY_FILE'],
      help: 'Azure: file holding the 32-byte customer-provided key (raw, or base64 of it) for every blob written, needed to read them back (HTTPS only)',
    },
    {
      long: '--azure-inherit-from-azure-ad', kind: 'flag', extension: true,
      help: 'Azure: managed identity, same as --azure-credential managed-identity (azureCredentials.inheritFromAzureAD)',
    },
    {
      long: '--azure-use-default-azure-credentials', kind: 'flag', extension: true,
      help: 'Azure: DefaultAzureCredential chain, same as --azure-credential default (azureCredentials.useDefaultAzureCredentials)',
    },
  ],
  flags: [
    'azure-storage-account', 'azure-storage-key-file', 'azure-storage-sas-token-file', 'azure-connection-string-file',
    'azure-inherit-from-azure-ad', 'azure-use-default-azure-credentials',
  ],
  customerKey: { option: 'azure-customer-key-file', variable: 'BARMAN_CLOUD_AZURE_CUSTOMER_KEY_FILE', what: 'customer-provided keys (CPK)', where: 'Azure' },
} as const satisfies ProviderDeclaration<AzureOptions>;

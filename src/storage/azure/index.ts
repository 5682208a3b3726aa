// Azure Blob Storage: https://<account>.blob.core.windows.net/<container>/<path>, or an emulator's
// http://host:port/<account>/<container>/<path> (docs/format.md#urls).
import { GeneralError } from '../../errors.js';
import { splitScheme, type StorageProvider } from '../provider.js';
import type { ParsedUrl } from '../url.js';
import { resolveAzure, type AzureOptions, type AzureStoreConfig } from './config.js';

const AZURE_DOMAIN = 'blob.core.windows.net';

function parseAzureUrl(url: string): ParsedUrl {
  const p = splitScheme(url);
  if (!p || !['http', 'https'].includes(p.scheme) || p.netloc === '') {
    throw new GeneralError(`Invalid azure URL address: ${url}`);
  }
  const segments = p.path.replace(/^\//, '').split('/');
  const host = p.netloc.replace(/:\d+$/, '');
  if (host.endsWith(AZURE_DOMAIN)) {
    if (!segments[0]) throw new GeneralError(`Invalid azure URL address: ${url}`);
    return {
      provider: 'azure-blob-storage',
      bucket: segments[0],
      path: segments.slice(1).join('/'),
      accountUrl: `${p.scheme}://${p.netloc}`,
      accountName: host.split('.')[0],
      emulated: false,
    };
  }
  // Emulator (Azurite) form: http://host:port/<account>/<container>/<path>
  if (!segments[0] || !segments[1]) throw new GeneralError(`Invalid azure URL address: ${url}`);
  return {
    provider: 'azure-blob-storage',
    bucket: segments[1],
    path: segments.slice(2).join('/'),
    accountUrl: `${p.scheme}://${p.netloc}/${segments[0]}`,
    accountName: segments[0],
    emulated: true,
  };
}

export const azureProvider: StorageProvider<AzureStoreConfig, AzureOptions> = {
  name: 'azure-blob-storage',
  bucketWord: 'container',
  parseUrl: parseAzureUrl,
  resolve: resolveAzure,
  partLimits: { maxParts: 50_000, minPartSize: 64 * 1024 },
  describe(config, path) {
    return `azure-blob-storage, container ${config.bucket}, path ${path}, account ${config.accountUrl ?? '(from the connection string)'}`;
  },
  async open(config) {
    return new (await import('./azure.js')).AzureObjectStore(config);
  },
};

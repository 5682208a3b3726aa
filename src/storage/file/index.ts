// The local directory store: file:///dir or /dir, whatever --cloud-provider says.
import { GeneralError } from '../../errors.js';
import type { StorageProvider } from '../provider.js';
import { resolveFile, type FileOptions, type FileStoreConfig } from './config.js';

export const fileProvider: StorageProvider<FileStoreConfig, FileOptions> = {
  name: 'file',
  bucketWord: 'directory',
  parseUrl(url) {
    let root = url;
    if (url.startsWith('file://')) {
      const u = new URL(url);
      if (u.host !== '' && u.host !== 'localhost') throw new GeneralError(`Invalid file URL address: ${url}`);
      root = decodeURIComponent(u.pathname);
    }
    root = root.replace(/\/+$/, '') || '/';
    if (!root.startsWith('/')) throw new GeneralError(`Invalid file URL address: ${url}`);
    return { provider: 'file', bucket: root, path: '' };
  },
  resolve: resolveFile,
  partLimits: { maxParts: 10_000, minPartSize: 8 * 1024 * 1024 },
  describe: (config) => `local directory ${config.bucket}`,
  async open(config) {
    return new (await import('./file.js')).FileObjectStore(config);
  },
};

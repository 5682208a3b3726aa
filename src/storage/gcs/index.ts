// Google Cloud Storage: gs://bucket/path, or a console URL (docs/format.md#urls).
import { GeneralError } from '../../errors.js';
import { splitScheme, type StorageProvider } from '../provider.js';
import { resolveGcs, type GcsOptions, type GcsStoreConfig } from './config.js';

const GCS_CONSOLE = /^https:\/\/console\.cloud\.google\.com\/storage\/browser\/([^/]+)(\/.*)?$/;
const RESUMABLE_CHUNK = 256 * 1024;

export const gcsProvider: StorageProvider<GcsStoreConfig, GcsOptions> = {
  name: 'google-cloud-storage',
  bucketWord: 'bucket',
  parseUrl(url) {
    const console = GCS_CONSOLE.exec(url);
    if (console) {
      return { provider: 'google-cloud-storage', bucket: console[1] ?? '', path: (console[2] ?? '').replace(/^\/+|\/+$/g, '') };
    }
    const p = splitScheme(url);
    if (!p || p.scheme !== 'gs' || p.netloc === '') throw new GeneralError(`Invalid gs URL address: ${url}`);
    return { provider: 'google-cloud-storage', bucket: p.netloc, path: p.path.replace(/^\/+|\/+$/g, '') };
  },
  resolve: resolveGcs,
  // barman spools each whole GCS part on disk; we stream resumable chunks instead, in multiples of 256 KiB.
  partLimits: { maxParts: 10_000, minPartSize: 8 * 1024 * 1024, partSizeMultiple: RESUMABLE_CHUNK },
  describe(config, path) {
    return `google-cloud-storage, bucket ${config.bucket}, path ${path}, endpoint ${config.apiEndpoint ?? 'https://storage.googleapis.com'}`;
  },
  async open(config) {
    return new (await import('./gcs.js')).GcsObjectStore(config);
  },
};

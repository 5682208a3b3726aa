// Amazon S3 and S3-compatible stores (MinIO, Ceph RGW, …): s3://bucket/path.
import { GeneralError } from '../../errors.js';
import { splitScheme, type StorageProvider } from '../provider.js';
import { resolveS3, type S3Options, type S3StoreConfig } from './config.js';

export const s3Provider: StorageProvider<S3StoreConfig, S3Options> = {
  name: 'aws-s3',
  bucketWord: 'bucket',
  parseUrl(url) {
    const p = splitScheme(url);
    if (!p || p.scheme !== 's3' || p.netloc === '') throw new GeneralError(`Invalid s3 URL address: ${url}`);
    return { provider: 'aws-s3', bucket: p.netloc, path: p.path.replace(/^\//, '') };
  },
  resolve: resolveS3,
  partLimits: { maxParts: 10_000, minPartSize: 5 * 1024 * 1024 },
  describe(config, path) {
    const proxy = config.proxy ? `, through the proxy ${config.proxy.shown}` : '';
    return `aws-s3, bucket ${config.bucket}, path ${path}, endpoint ${config.endpointUrl ?? `AWS S3 in ${config.region ?? 'us-east-1'}`}${proxy}`;
  },
  endpointHint: '--endpoint-url',
  async open(config) {
    // With static or container credentials the lean SigV4 client serves the WAL hot path; the SDK
    // driver is loaded only for everything else. Through a proxy, the SDK driver does it all: its
    // agents speak to proxies (a well-kept library), the lean client's exchange does not.
    if ((config.credentials || config.containerCredentials) && config.client !== 'sdk' && !config.proxy) {
      return new (await import('./s3-lean.js')).LeanS3ObjectStore(config);
    }
    return new (await import('./s3.js')).S3ObjectStore(config);
  },
};

// Destination/source URL parsing per provider (docs/format.md#urls), plus our local directory store.
import { GeneralError } from '../errors.js';
import type { ProviderName } from './types.js';

export interface ParsedUrl {
  provider: ProviderName;
  /** Bucket / container; the root directory for the file store. */
  bucket: string;
  /** barman's `P`: the key prefix inside the bucket, possibly empty, trailing '/' kept (S3, Azure). */
  path: string;
  /** Azure only: scheme://host[:port] for the real service, scheme://host:port/<account> for an emulator. */
  accountUrl?: string;
  /** Azure only: the account named by the URL (host label, or first path segment for an emulator). */
  accountName?: string;
  /** Azure only: an emulator-style URL (host not under blob.core.windows.net). */
  emulated?: boolean;
}

/** A `file://` URL or an absolute path selects the local directory store, whatever the provider flag. */
export function isLocalUrl(url: string): boolean {
  return url.startsWith('file://') || url.startsWith('/');
}

export function parseStoreUrl(url: string, provider: Exclude<ProviderName, 'file'>): ParsedUrl {
  if (isLocalUrl(url)) return parseFileUrl(url);
  switch (provider) {
    case 'aws-s3':
      return parseS3Url(url);
    case 'azure-blob-storage':
      return parseAzureUrl(url);
    case 'google-cloud-storage':
      return parseGcsUrl(url);
  }
}

function parseFileUrl(url: string): ParsedUrl {
  let root = url;
  if (url.startsWith('file://')) {
    const u = new URL(url);
    if (u.host !== '' && u.host !== 'localhost') throw new GeneralError(`Invalid file URL address: ${url}`);
    root = decodeURIComponent(u.pathname);
  }
  root = root.replace(/\/+$/, '') || '/';
  if (!root.startsWith('/')) throw new GeneralError(`Invalid file URL address: ${url}`);
  return { provider: 'file', bucket: root, path: '' };
}

function splitScheme(url: string): { scheme: string; netloc: string; path: string } | null {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(url);
  return m ? { scheme: (m[1] ?? '').toLowerCase(), netloc: m[2] ?? '', path: m[3] ?? '' } : null;
}

function parseS3Url(url: string): ParsedUrl {
  const p = splitScheme(url);
  if (!p || p.scheme !== 's3' || p.netloc === '') throw new GeneralError(`Invalid s3 URL address: ${url}`);
  return { provider: 'aws-s3', bucket: p.netloc, path: p.path.replace(/^\//, '') };
}

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

const GCS_CONSOLE = /^https:\/\/console\.cloud\.google\.com\/storage\/browser\/([^/]+)(\/.*)?$/;

function parseGcsUrl(url: string): ParsedUrl {
  const console = GCS_CONSOLE.exec(url);
  if (console) {
    return { provider: 'google-cloud-storage', bucket: console[1] ?? '', path: (console[2] ?? '').replace(/^\/+|\/+$/g, '') };
  }
  const p = splitScheme(url);
  if (!p || p.scheme !== 'gs' || p.netloc === '') throw new GeneralError(`Invalid gs URL address: ${url}`);
  return { provider: 'google-cloud-storage', bucket: p.netloc, path: p.path.replace(/^\/+|\/+$/g, '') };
}

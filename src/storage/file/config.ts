// The local directory store's config: its root directory, nothing else to resolve.
import type { StoreConfigBase } from '../config.js';
import type { Resolved, ResolveInput } from '../provider.js';

export interface FileStoreConfig extends StoreConfigBase {
  provider: 'file';
}

/** The local directory store reads no option. */
export type FileOptions = Record<never, never>;

export function resolveFile({ url, retry }: ResolveInput<FileOptions>): Resolved<FileStoreConfig> {
  return { config: { provider: 'file', bucket: url.bucket, retry }, credentialSource: 'none needed (local directory)' };
}

// Destination/source URL → provider, bucket and path (docs/format.md#urls). Each provider parses
// its own URL form (its folder's index.ts); this asks the registry which provider a URL is for.
import type { ProviderName } from './types.js';
import { providerFor } from './registry.js';

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

/** The URL read by its provider: the one its form selects (file://, /path), else --cloud-provider's. */
export async function parseStoreUrl(url: string, cloudProvider: string): Promise<ParsedUrl> {
  return (await providerFor(url, cloudProvider)).parseUrl(url);
}

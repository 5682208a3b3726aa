// The store providers. Adding one: a folder beside s3/ whose index.ts exports a StorageProvider,
// and its line below (docs/architecture.md#what-a-new-provider-needs). Each entry holds only URL
// parsing, config resolution and limits; its driver and SDK are loaded by open(), on demand.
import { CliError } from '../errors.js';
import { azureProvider } from './azure/index.js';
import { fileProvider } from './file/index.js';
import { gcsProvider } from './gcs/index.js';
import type { StorageProvider } from './provider.js';
import { s3Provider } from './s3/index.js';

export const PROVIDERS = [s3Provider, azureProvider, gcsProvider, fileProvider] as const;

type AnyProvider = (typeof PROVIDERS)[number];
export type ProviderName = AnyProvider['name'];
/** Every provider's config, told apart by `provider`. */
export type StoreConfig = AnyProvider extends infer P ? (P extends StorageProvider<infer C> ? C : never) : never;

/** The provider's entry; a name not in the list is a usage error. */
export function providerNamed(name: string): StorageProvider<StoreConfig> {
  const found = PROVIDERS.find((p) => p.name === name);
  if (!found) throw new CliError(`unknown cloud provider ${name}`);
  // Each entry is typed by its own config; callers hand it back only the config it resolved.
  return found as unknown as StorageProvider<StoreConfig>;
}

/** The provider of a URL: the one whose URL form claims it (file://, /path), else the one --cloud-provider names. */
export function providerFor(url: string, cloudProvider: string): StorageProvider<StoreConfig> {
  const claimed = PROVIDERS.find((p) => p.claims?.(url));
  return providerNamed(claimed?.name ?? cloudProvider);
}

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
export type StoreConfig = AnyProvider extends infer P ? (P extends StorageProvider<infer C, infer _O> ? C : never) : never;

/** The intersection of the members of a union. */
type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
/**
 * Every option some provider reads, with its kind: what the CLI hands to resolve() (whichever
 * provider it picked), and checks against its option table (cli/store.ts).
 */
export type ProviderOptions = Intersection<AnyProvider extends infer P ? (P extends StorageProvider<infer _C, infer O> ? O : never) : never>;

/** Any provider of the list: its config is one of them all, its options among everyone's. */
export type AnyStorageProvider = StorageProvider<StoreConfig, ProviderOptions>;

/** The provider's entry; a name not in the list is a usage error. */
export function providerNamed(name: string): AnyStorageProvider {
  const found = PROVIDERS.find((p) => p.name === name);
  if (!found) throw new CliError(`unknown cloud provider ${name}`);
  // Each entry is typed by its own config and options; callers hand it back only the config it
  // resolved, and options holding every provider's (ProviderOptions).
  return found as unknown as AnyStorageProvider;
}

/** The provider of a URL: the one whose URL form claims it (file://, /path), else the one --cloud-provider names. */
export function providerFor(url: string, cloudProvider: string): AnyStorageProvider {
  const claimed = PROVIDERS.find((p) => p.claims?.(url));
  return providerNamed(claimed?.name ?? cloudProvider);
}

// The store providers: the one list. Adding one: a folder beside s3/ (options.ts, index.ts,
// config.ts, its driver) and its line in PROVIDERS (docs/architecture.md#what-a-new-provider-needs).
// Each line is the folder's data-only declaration, from which the CLI's option table takes the
// --cloud-provider choices and the provider's flags, and a loader of its index.ts (URL parsing,
// config resolution, limits), which a command imports only for the provider it uses.
import { CliError } from '../errors.js';
import { azure } from './azure/options.js';
import { file } from './file/options.js';
import { gcs } from './gcs/options.js';
import type { ProviderDeclaration, StorageProvider } from './provider.js';
import { s3 } from './s3/options.js';

export const PROVIDERS = [
  { ...s3, load: async () => (await import('./s3/index.js')).s3Provider },
  { ...azure, load: async () => (await import('./azure/index.js')).azureProvider },
  { ...gcs, load: async () => (await import('./gcs/index.js')).gcsProvider },
  { ...file, load: async () => (await import('./file/index.js')).fileProvider },
] as const;

type Entry = (typeof PROVIDERS)[number];
type Loaded = Awaited<ReturnType<Entry['load']>>;
export type ProviderName = Entry['name'];
/** Every provider's config, told apart by `provider`. */
export type StoreConfig = Loaded extends infer P ? (P extends StorageProvider<infer C, infer _O> ? C : never) : never;

/** The intersection of the members of a union. */
type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
/**
 * Every option some provider reads, with its kind: what the CLI hands to resolve() (whichever
 * provider it picked), and checks against its option table (cli/store.ts).
 */
export type ProviderOptions = Intersection<Loaded extends infer P ? (P extends StorageProvider<infer _C, infer O> ? O : never) : never>;

/** Any provider of the list: its config is one of them all, its options among everyone's. */
export type AnyStorageProvider = StorageProvider<StoreConfig, ProviderOptions>;
/** Any provider's declaration, its flags among everyone's options. */
export type AnyProviderDeclaration = ProviderDeclaration<ProviderOptions> & { readonly name: ProviderName };

function entryNamed(name: string): Entry {
  const found = PROVIDERS.find((p) => p.name === name);
  if (!found) throw new CliError(`unknown cloud provider ${name}`);
  return found;
}

/** The declaration of the provider of a URL: the one whose URL form claims it (file://, /path), else the one --cloud-provider names. */
export function declarationFor(url: string, cloudProvider: string): AnyProviderDeclaration {
  const claimed = PROVIDERS.find((p) => 'claims' in p && p.claims(url));
  // Each declaration is typed by its own options; as one of them all, its flags are among everyone's.
  return entryNamed(claimed?.name ?? cloudProvider) as AnyProviderDeclaration;
}

/** The provider's code (a name not in the list is a usage error). */
export async function providerNamed(name: string): Promise<AnyStorageProvider> {
  // Each provider is typed by its own config and options; callers hand it back only the config it
  // resolved, and options holding every provider's (ProviderOptions).
  return (await entryNamed(name).load()) as unknown as AnyStorageProvider;
}

/** The provider of a URL: the one whose URL form claims it, else the one --cloud-provider names. */
export async function providerFor(url: string, cloudProvider: string): Promise<AnyStorageProvider> {
  return providerNamed(declarationFor(url, cloudProvider).name);
}

// Flags + environment → a resolved StoreConfig. Precedence: flags > environment > the provider's
// own default chain. The registry picks the provider; its folder (storage/<provider>/config.ts)
// builds the config from the options and the environment handed over here; contradictory
// combinations follow the ObjectStore validation rules (docs/configuration.md#rules).
import { CliError } from '../errors.js';
import { DEFAULT_RETRY, LONGEST_TIMER_MS, type RetryPolicy, type StoreConfig } from '../storage/config.js';
import { nonEmpty, type Env } from '../storage/provider.js';
import {
  PROVIDERS, declarationFor, providerNamed, type AnyProviderDeclaration, type AnyStorageProvider, type ProviderOptions,
} from '../storage/registry.js';
import type { ParsedUrl } from '../storage/url.js';
import type { CommonOptions, UploadEncryptionOptions } from './spec.js';

export type { Env };

/** The options a store is resolved from: every store command's, plus the uploaders' server-side encryption. */
export type StoreOptions = CommonOptions & UploadEncryptionOptions;

/**
 * The options in O that the table does not give every store command, or gives as another kind
 * (never when all are there). O: what the providers declare they read (storage/<provider>/config.ts),
 * which they cannot take from the table themselves (storage does not import the CLI).
 */
export type NotInTable<O> = {
  [K in keyof O]-?: K extends keyof StoreOptions ? (StoreOptions[K] extends O[K] ? never : K) : K;
}[keyof O];
/** tsc stops here, naming the option, when a provider reads one the table lacks or reads it as another kind. */
type None<T extends never> = T;
type ProvidersReadTableOptions = None<NotInTable<ProviderOptions>>;

export interface ResolvedStore {
  config: StoreConfig;
  url: ParsedUrl;
  /** Where the credentials come from, in words, never the values (for `doctor`). */
  credentialSource: string;
  /** The provider that resolved it: its declaration, and its code (limits, doctor's words, driver). */
  declaration: AnyProviderDeclaration;
  provider: AnyStorageProvider;
}

function retryPolicy(opts: StoreOptions, env: Env): RetryPolicy {
  const policy = { ...DEFAULT_RETRY };
  const readTimeout = opts['read-timeout'];
  if (readTimeout !== undefined) {
    if (readTimeout < 1) throw new CliError(`argument --read-timeout: must be at least 1 second`);
    policy.readTimeoutMs = Math.min(readTimeout * 1000, LONGEST_TIMER_MS);
  }
  const attempts = positiveIntegerFromEnv(env, 'AWS_MAX_ATTEMPTS');
  if (attempts !== undefined) policy.maxAttempts = attempts;
  return policy;
}

/**
 * The one reader of a count from the environment (AWS_MAX_ATTEMPTS, the WAL commands' parallelism):
 * unset or empty is undefined, anything but a positive integer (up to `max`) exits 3 naming the variable.
 */
export function positiveIntegerFromEnv(env: Env, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${name} must be a positive integer, not '${raw}'`);
  if (n > max) throw new CliError(`${name} must be at most ${max}, not '${raw}'`);
  return n;
}

/**
 * Which customer-provided key file applies (docs/encryption.md): each provider that has one names its
 * option and variable; the flag wins over the variable. One given for another store is refused, not
 * ignored: the user asked for encryption and would not get it.
 */
function customerKeySource(provider: AnyProviderDeclaration, opts: StoreOptions, env: Env): { from: string; path: string } | undefined {
  let found: { from: string; path: string } | undefined;
  for (const p of PROVIDERS) {
    const k = 'customerKey' in p ? p.customerKey : undefined;
    if (!k) continue;
    const flag = opts[k.option];
    const path = flag ?? nonEmpty(env[k.variable]);
    if (path === undefined) continue;
    const from = flag !== undefined ? `--${k.option}` : k.variable;
    if (p.name !== provider.name) {
      throw new CliError(`${from}: ${k.what} are only supported on ${k.where}, not on ${provider.cloudProvider ? provider.name : 'a local directory store'}`);
    }
    found = { from, path };
  }
  return found;
}

/** The store a command names: its provider's code is loaded (only that provider's), then resolveLoadedStore(). */
export async function resolveStore(rawUrl: string, opts: StoreOptions, env: Env): Promise<ResolvedStore> {
  const provider = await providerNamed(declarationFor(rawUrl, opts['cloud-provider']).name);
  return resolveLoadedStore(rawUrl, opts, env, provider);
}

/** The store a command names, once the code of the provider declarationFor() picks is loaded (`provider`). */
export function resolveLoadedStore(rawUrl: string, opts: StoreOptions, env: Env, provider: AnyStorageProvider): ResolvedStore {
  const declaration = declarationFor(rawUrl, opts['cloud-provider']);
  const claimed = declaration.claims?.(rawUrl) === true;
  const given = (k: keyof ProviderOptions) => opts[k] !== undefined && opts[k] !== false;
  // A provider's own flags with another provider are a contradiction (tolerated for a URL whose
  // form chose the store, as a file:// URL, whatever --cloud-provider says).
  for (const other of PROVIDERS) {
    const flags: readonly (keyof ProviderOptions)[] = other.flags;
    const wrong = flags.filter(given);
    if (other.name !== opts['cloud-provider'] && wrong.length > 0 && !claimed) {
      throw new CliError(`--${wrong[0]} cannot be used with --cloud-provider ${opts['cloud-provider']}`);
    }
  }
  const url = provider.parseUrl(rawUrl);
  const retry = retryPolicy(opts, env);
  const customerKeyFile = customerKeySource(declaration, opts, env);
  const { config, credentialSource } = provider.resolve({
    url,
    options: opts,
    env,
    retry,
    ...(opts['endpoint-ca'] !== undefined ? { caFile: opts['endpoint-ca'] } : {}),
    ...(customerKeyFile ? { customerKeyFile } : {}),
  });
  return { url, config, credentialSource, declaration, provider };
}

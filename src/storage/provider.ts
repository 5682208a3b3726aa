// What one storage provider gives the rest of the program (restic's backend registry and WAL-G's
// storages are the model). Its folder's options.ts declares, as data, its name, URL claim and
// flags (the CLI's table is built from them); its index.ts, loaded on demand, how its URLs read,
// how flags + environment become its config, its upload limits, how doctor describes it, and a lazy
// loader for its driver. registry.ts lists the declarations, each with the loader of its index.ts.
import { readFileSync } from 'node:fs';
import { CliError, GeneralError } from '../errors.js';
import { log, registerSecret } from '../log.js';
import type { RetryPolicy } from './config.js';
import type { ObjectStore } from './types.js';
import type { ParsedUrl } from './url.js';

/** The environment, passed in by the CLI: nothing below src/cli/ reads it from the process. */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The option values a provider reads, by long name without the dashes (`'endpoint-url'`), each with
 * its kind: a string value (or one of its choices) or undefined, a switch a boolean. Each provider
 * declares its own in its config.ts. Storage cannot import the CLI's option table, so the CLI
 * checks at compile time that the table gives every store command these names with these kinds
 * (cli/store.ts, `NotInTable`): a misspelled or mistyped option fails tsc on either side.
 */
export type OptionValues = { readonly [name: string]: string | boolean | undefined };

/** The names in O whose values are words, not switches. */
type WordOptions<O> = { [K in keyof O]-?: O[K] extends string | undefined ? K : never }[keyof O] & string;

/** Everything a provider's config is built from. */
export interface ResolveInput<O extends OptionValues = OptionValues> {
  url: ParsedUrl;
  /** The command's parsed options: at least those the provider declared. */
  options: O;
  env: Env;
  retry: RetryPolicy;
  /** --endpoint-ca, when given. */
  caFile?: string;
  /** A customer-provided encryption key file and where it was named (flag or variable); only for providers with `customerKey`. */
  customerKeyFile?: { from: string; path: string };
}

export interface Resolved<C> {
  config: C;
  /** Where the credentials come from, in words, never the values (for `doctor`). */
  credentialSource: string;
}

/** Multipart limits that decide a backup's part size (docs/format.md#tar-parts). */
export interface PartLimits {
  /** Most parts one object may have. */
  maxParts: number;
  /** Smallest part the store accepts (the last excepted). */
  minPartSize: number;
  /** Part sizes must be a multiple of this (GCS resumable chunks: 256 KiB). */
  partSizeMultiple?: number;
}

/**
 * A backup's part size under these limits (docs/format.md#tar-parts): barman's formula, twice the
 * size that would fill the part count with the largest archive, never below the provider's minimum
 * nor --min-chunk-size.
 */
export function partSize({ maxParts, minPartSize, partSizeMultiple }: PartLimits, maxArchiveSize: number, minChunkSize?: number): number {
  const size = Math.max(2 * Math.floor(maxArchiveSize / maxParts), minPartSize, minChunkSize ?? 0);
  return partSizeMultiple ? Math.ceil(size / partSizeMultiple) * partSizeMultiple : size;
}

/**
 * One option of the CLI's table, declared by the provider that owns it (its folder's options.ts).
 * The same shape as the table's OptionSpec (cli/spec.ts), which storage cannot import; the table
 * checks these against it (`satisfies`).
 */
export interface ProviderOptionSpec {
  short?: string;
  long: `--${string}`;
  /** Other long names with the same meaning (barman's deprecated spellings). */
  aliases?: readonly string[];
  kind: 'flag' | 'value';
  metavar?: string;
  choices?: readonly string[];
  help: string;
  /** Environment variables that provide this setting when the flag is absent. */
  env?: readonly string[];
  /** Not one of barman's flags: listed after barman's own in --help and left out of the usage line. */
  extension?: boolean;
}

/**
 * What the CLI's option table and its argument checks need from a provider, as data only (its
 * folder's options.ts: no SDK, no driver, no node:fs), so that the launcher can answer `--version`
 * from the table without loading storage code. O: the options its resolve() reads.
 */
export interface ProviderDeclaration<O extends OptionValues = OptionValues> {
  /** The --cloud-provider value (or 'file' for the local directory store, chosen by its URL form). */
  readonly name: string;
  /** False for a store chosen only by its URL form (file://, /path), never by --cloud-provider. */
  readonly cloudProvider: boolean;
  /** True when this URL's form selects the provider whatever --cloud-provider says (file:// and absolute paths). */
  claims?(url: string): boolean;
  /** Its options in the table of every store command, in --help order (barman's first, then ours). */
  readonly options: readonly ProviderOptionSpec[];
  /** Flags that belong to this provider only; giving one with another provider is a usage error. */
  readonly flags: readonly (keyof O & string)[];
  /**
   * Its customer-provided encryption key option (S3 SSE-C, Azure CPK, GCS CSEK: a 256-bit key sent
   * with every object write and read), and the variable that can name the file instead. A key given
   * for another provider is refused up front: the user asked for encryption and would not get it.
   */
  readonly customerKey?: { readonly option: WordOptions<O>; readonly variable: string; readonly what: string; readonly where: string };
}

/**
 * The rest of a provider, loaded (with its config code) only when a command uses it. C: its config;
 * O: the options its resolve() reads.
 */
export interface StorageProvider<C extends { provider: string; bucket: string } = { provider: string; bucket: string }, O extends OptionValues = OptionValues> {
  /** Its declaration's name. */
  readonly name: C['provider'];
  /** What the bucket is called in messages: bucket, container, directory. */
  readonly bucketWord: string;
  parseUrl(url: string): ParsedUrl;
  /** Flags + environment → this provider's config. Reads credential files, never the process environment. */
  resolve(input: ResolveInput<O>): Resolved<C>;
  readonly partLimits: PartLimits;
  /** Where the store is, in words (no credentials), for doctor. */
  describe(config: C, path: string): string;
  /** Extra advice for an unreachable endpoint, e.g. which flag sets it. */
  readonly endpointHint?: string;
  /** Load the driver (dynamic import: a command never loads another provider's SDK). */
  open(config: C): Promise<ObjectStore>;
}

// ---- helpers the providers' resolve() share ---------------------------------------------------

export const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

/** scheme://netloc/path, scheme lower-cased; null when the URL has no scheme. */
export function splitScheme(url: string): { scheme: string; netloc: string; path: string } | null {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(url);
  return m ? { scheme: (m[1] ?? '').toLowerCase(), netloc: m[2] ?? '', path: m[3] ?? '' } : null;
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** A secret given as a file path on the command line; registered with the logger so it is never printed. */
export function readSecretFile(flag: string, path: string): string {
  try {
    const value = readFileSync(path, 'utf8').trim();
    registerSecret(value);
    return value;
  } catch (e) {
    throw new CliError(`argument ${flag}: cannot read ${path}: ${errno(e)}`);
  }
}

export function readCa(flagOrVar: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`${flagOrVar}: cannot read CA file ${path}: ${errno(e)}`);
  }
}

/**
 * A CA bundle named by an environment variable (AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE) is read as
 * boto3 and azure-core do: only when TLS is used. On an http:// endpoint it is not read at all
 * (hosts export the variable for every tool: reading ~200 KB of system bundle cost a WAL call a few
 * ms of CPU; docs/benchmarks-history.md). The CloudNativePG plugin sets it whenever endpointCA is configured
 * and the projected file can be missing for a while: on https an unreadable bundle is a general
 * error (exit 4: retried by the operator), never a usage error (exit 3 means "invalid WAL name" to
 * wal-restore's callers).
 */
export function readEnvCa(variable: string, path: string, endpointUrl: string | undefined): string | undefined {
  if (endpointUrl !== undefined && /^http:\/\//i.test(endpointUrl)) {
    log.debug(`${variable}: CA file ${path} not read; not needed for ${endpointUrl}`);
    return undefined;
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new GeneralError(`${variable}: cannot read CA file ${path}: ${errno(e)}`);
  }
}

/**
 * A customer-provided 256-bit key: a file of exactly 32 bytes (`openssl rand 32`), or the base64 of
 * 32 bytes (`openssl rand -base64 32`, surrounding whitespace ignored). The two cannot be confused:
 * base64 of 32 bytes is 44 characters. Read from a file only, so it never appears in argv or `ps`.
 */
export function readCustomerKey(from: string, path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new CliError(`${from}: cannot read ${path}: ${errno(e)}`);
  }
  if (raw.length === 32) {
    registerSecret(raw.toString('base64'));
    return raw;
  }
  const text = raw.toString('latin1').trim();
  const key = /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (!key || key.length !== 32) {
    throw new CliError(`${from}: ${path} must hold a 256-bit key: 32 bytes, or their base64 (44 characters)`);
  }
  registerSecret(text);
  return key;
}

// The command definitions: one table that the parser, the help texts and the shell
// completions are all built from. Flags, defaults and choices follow barman-cloud 3.17
// (docs/format.md#arguments, #commands; usage lines as barman/clients/cloud_*.py build them); options marked `extension` are ours (ObjectStore fields, docs/format.md#providers).
import {
  parseCompressionLevel, parseHeartbeatSeconds, parseInteger, parseNonNegativeInteger, parsePositiveInteger, parsePrefetchCount, parseSize, parseTargetTimeline,
} from './types.js';
import { PROVIDERS } from '../storage/registry.js';

/** The barman-cloud release whose CLI contract we implement (printed by `--version`). */
export const BARMAN_CONTRACT_VERSION = '3.17.0';

/**
 * What --async assumes when the count was not given (neither option nor its variable): a worker
 * that moves one file at a time would make --async alone no faster than without it. 8 uploads is
 * the setting benchmarked against pgBackRest's process-max=8; 16 segments in all (15 ahead) is the
 * prefetch the restore benchmarks use (~240 MiB of spool at 16 MiB segments). The shell front in
 * bin/ assumes the same numbers (src/cli/fast-path.ts).
 */
export const ASYNC_DEFAULT_MAX_PARALLEL = 8;
export const ASYNC_DEFAULT_PARALLEL = 16;
/**
 * Set by an --async call (to `archive` or `restore`) in the environment of the detached `--async` worker that
 * src/cli/commands/wal.ts starts; the launcher keeps every compiler tier for it (src/cli/launch.ts).
 */
export const ASYNC_WORKER_ENV = 'BARMAN_CLOUD_ASYNC_WORKER';

export type OptionKind =
  /** boolean switch */
  | 'flag'
  /** counted switch (-v, -q) */
  | 'count'
  /** one value */
  | 'value'
  /** one value, repeatable, collected into a list */
  | 'append'
  /** argparse nargs="*": takes every following non-option word */
  | 'list';

export interface OptionSpec {
  short?: string;
  /** `--name`; the code reads the value as `options['name']` (see OptionsOf). */
  long: `--${string}`;
  /** Other long names with the same meaning (barman's deprecated spellings). */
  aliases?: readonly string[];
  kind: OptionKind;
  metavar?: string;
  choices?: readonly string[];
  /** Usual values that are not enforced (barman accepts others): offered by shell completion. */
  suggestions?: readonly string[];
  parse?: (raw: string) => unknown;
  default?: unknown;
  help: string;
  /** Environment variables that provide this setting when the flag is absent. */
  env?: readonly string[];
  /** Options in the same group are mutually exclusive. */
  group?: string;
  /** Not one of barman's flags: an addition of ours. Abbreviations prefer barman's own flags. */
  extension?: boolean;
}

export interface PositionalSpec {
  name: string;
  help: string;
  optional?: boolean;
  choices?: readonly string[];
}

export type CommandName =
  | 'wal-archive' | 'wal-restore' | 'backup' | 'backup-list' | 'backup-show'
  | 'backup-delete' | 'backup-keep' | 'restore' | 'check-wal-archive' | 'doctor'
  | 'verify' | 'completion';

export interface CommandSpec {
  name: CommandName;
  /** The drop-in executable name. */
  prog: string;
  description: string;
  positionals: readonly PositionalSpec[];
  options: readonly OptionSpec[];
  /** Groups of which exactly one option must be given. */
  requiredGroups?: readonly string[];
  /** Exit codes, for the help text. */
  exitCodes: readonly (readonly [number, string])[];
  /** Only a `barman-cloud <command>` subcommand: no barman-cloud-<command> executable of its own. */
  umbrellaOnly?: boolean;
}

// The providers' own options and the --cloud-provider choices come from the registry's data-only
// declarations (storage/<provider>/options.ts): a new provider adds no line here.
const CLOUD_PROVIDERS = PROVIDERS.filter((p): p is Extract<(typeof PROVIDERS)[number], { cloudProvider: true }> => p.cloudProvider)
  .map((p) => p.name);
type ProviderOption = (typeof PROVIDERS)[number]['options'][number];
const isExtension = (o: ProviderOption): boolean => 'extension' in o && o.extension === true;
export const SHELLS = ['bash', 'zsh', 'fish'] as const;

const READ_TIMEOUT = {
  long: '--read-timeout', kind: 'value', metavar: 'READ_TIMEOUT', parse: parseInteger,
  help: 'seconds a request may stay silent before it fails (default 60)',
} as const satisfies OptionSpec;

/**
 * barman's flags of the providers, in registry order (barman's usage line), with --read-timeout
 * where barman lists it, after its S3 group (--aws-profile); it applies to every provider here.
 */
const BARMAN_PROVIDER_OPTIONS = PROVIDERS.flatMap((p) => p.options.filter((o) => !isExtension(o)))
  .flatMap((o): (ProviderOption | typeof READ_TIMEOUT)[] => (o.long === '--aws-profile' ? [o, READ_TIMEOUT] : [o]));

const COMMON = [
  { short: '-V', long: '--version', kind: 'flag', help: 'show the program version and exit' },
  { long: '--help', kind: 'flag', help: 'show this help message and exit' },
  { short: '-v', long: '--verbose', kind: 'count', group: 'verbosity', help: 'more logging on stderr (-v INFO, -vv DEBUG)' },
  { short: '-q', long: '--quiet', kind: 'count', group: 'verbosity', help: 'less logging on stderr (-q ERROR, -qq CRITICAL)' },
  {
    short: '-t', long: '--test', kind: 'flag',
    help: 'test the connection to the object store (and that the bucket exists) and exit: 0 ok, 1 bucket missing, 2 unreachable',
  },
  {
    long: '--cloud-provider', kind: 'value', metavar: 'CLOUD_PROVIDER', choices: CLOUD_PROVIDERS, default: 'aws-s3',
    help: 'object store provider; a file:// URL or an absolute path always selects the local directory store',
  },
  ...BARMAN_PROVIDER_OPTIONS,
  // ---- flags for the ObjectStore fields, for use outside Kubernetes (docs/format.md#providers, docs/configuration.md#objectstore-field--flag--environment) ----
  {
    long: '--endpoint-ca', kind: 'value', metavar: 'FILE', extension: true, env: ['AWS_CA_BUNDLE', 'REQUESTS_CA_BUNDLE'],
    help: 'PEM file of a CA that signs the endpoint certificate (ObjectStore endpointCA); ' +
      'from the environment, S3 reads AWS_CA_BUNDLE and Azure REQUESTS_CA_BUNDLE',
  },
  ...PROVIDERS.flatMap((p) => p.options.filter(isExtension)),
] as const satisfies readonly OptionSpec[];

const tags = <P extends '' | 'history-'>(prefix: P, what: string) => [
  {
    long: `--${prefix}tags`, kind: 'list', metavar: `${prefix.toUpperCase().replace('-', '_')}TAGS_LIST`, group: `${prefix}tags`,
    help: `(deprecated, use --${prefix}tag) tags as key,value words for ${what}`,
  },
  {
    long: `--${prefix}tag`, kind: 'append', metavar: `${prefix.toUpperCase().replace('-', '_')}TAGS_APPEND`, group: `${prefix}tags`,
    help: `a key,value tag for ${what}; repeat for more`,
  },
] as const satisfies readonly OptionSpec[];

const SSE = [
  { long: '--sse-kms-key-id', kind: 'value', metavar: 'SSE_KMS_KEY_ID', help: 'S3: KMS key id or ARN (needs -e aws:kms)' },
  { long: '--encryption-scope', kind: 'value', metavar: 'ENCRYPTION_SCOPE', help: 'Azure: encryption scope for uploaded blobs' },
] as const satisfies readonly OptionSpec[];

const SPOOL_DIR = {
  long: '--spool-dir', kind: 'value', metavar: 'DIR', extension: true, env: ['BARMAN_CLOUD_SPOOL_DIR'],
  help: 'spool directory for parallel archiving and prefetching, used only if private to this user (default: .barman-cloud-spool-<uid> beside the WAL file, in pg_wal)',
} as const satisfies OptionSpec;

// Client-side encryption (age, docs/encryption.md): key files only, never keys on the command line.
const ENCRYPTION_RECIPIENT_FILE = {
  long: '--encryption-recipient-file', kind: 'value', metavar: 'FILE', extension: true, env: ['BARMAN_CLOUD_ENCRYPTION_RECIPIENT_FILE'],
  help: 'encrypt every stored object with age for the recipients (age1… lines) in FILE; objects get a .age suffix',
} as const satisfies OptionSpec;
const ENCRYPTION_IDENTITY_FILE = {
  long: '--encryption-identity-file', kind: 'value', metavar: 'FILE', extension: true, env: ['BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE'],
  help: 'age identities (AGE-SECRET-KEY-1… lines, several allowed) to decrypt encrypted objects',
} as const satisfies OptionSpec;

// With an identity, objects must be encrypted: someone who can write the bucket cannot forge an age
// object for our recipients, but could plant a plain one in its place (docs/encryption.md#plain-objects).
const ALLOW_UNENCRYPTED = {
  long: '--allow-unencrypted', kind: 'flag', extension: true,
  help: 'with an identity, also accept objects stored unencrypted (an archive from before encryption was switched on); refused by default',
} as const satisfies OptionSpec;

const KMS_KEY_NAME = {
  long: '--kms-key-name', kind: 'value', metavar: 'KMS_KEY_NAME', help: 'GCS: KMS key (CMEK) for uploaded objects',
} as const satisfies OptionSpec;

const exits = (...extra: [number, string][]): [number, string][] => [
  [0, 'success'],
  ...extra,
  [2, 'with -t: the object store cannot be reached'],
  [3, 'invalid arguments'],
  [4, 'any other error'],
];

// PostgreSQL connection (backup, doctor); node-postgres also reads the libpq environment
// (PGHOST, PGPORT, PGUSER, PGPASSWORD, ~/.pgpass) itself.
const PG_HOST = { short: '-h', long: '--host', kind: 'value', metavar: 'HOST', env: ['PGHOST'], help: 'PostgreSQL host or socket directory' } as const satisfies OptionSpec;
const PG_PORT = { short: '-p', long: '--port', kind: 'value', metavar: 'PORT', env: ['PGPORT'], help: 'PostgreSQL port' } as const satisfies OptionSpec;
const PG_USER = { short: '-U', long: '--user', kind: 'value', metavar: 'USER', env: ['PGUSER'], help: 'PostgreSQL user' } as const satisfies OptionSpec;
const PG_DBNAME = {
  short: '-d', long: '--dbname', kind: 'value', metavar: 'DBNAME', default: 'postgres',
  help: 'database to connect to, or a whole conninfo string when it contains "="',
} as const satisfies OptionSpec;

const SOURCE = { name: 'source_url', help: 'URL of the cloud source, e.g. s3://bucket/path, or file:///dir' } as const;
const DESTINATION = { name: 'destination_url', help: 'URL of the cloud destination, e.g. s3://bucket/path, or file:///dir' } as const;
const SERVER = { name: 'server_name', help: 'the name of the server as configured in Barman' } as const;

// `as const`: every option keeps its literal name, kind, parser and default, from which OptionsOf
// derives the type each command reads its options with.
const TABLE = [
  {
    name: 'wal-archive',
    prog: 'barman-cloud-wal-archive',
    description: 'Archive one PostgreSQL WAL file to the object store (for archive_command).',
    positionals: [DESTINATION, SERVER, { name: 'wal_path', help: 'path of the WAL file to archive (%p)', optional: true }],
    options: [
      ...COMMON,
      { short: '-z', long: '--gzip', kind: 'flag', group: 'compression', help: 'compress with gzip (.gz)' },
      { short: '-j', long: '--bzip2', kind: 'flag', group: 'compression', help: 'compress with bzip2 (.bz2)' },
      { long: '--xz', kind: 'flag', group: 'compression', help: 'compress with xz (.xz)' },
      { long: '--snappy', kind: 'flag', group: 'compression', help: 'compress with snappy, framing format (.snappy)' },
      { long: '--zstd', kind: 'flag', group: 'compression', help: 'compress with zstd (.zst)' },
      { long: '--lz4', kind: 'flag', group: 'compression', help: 'compress with lz4, frame format (.lz4)' },
      {
        long: '--compression-level', kind: 'value', metavar: 'COMPRESSION_LEVEL', suggestions: ['low', 'medium', 'high'],
        parse: parseCompressionLevel, help: 'low, medium (default), high, or a number clamped to the codec range',
      },
      ...tags('', 'every uploaded WAL file'),
      ...tags('history-', 'history files instead of --tag'),
      KMS_KEY_NAME,
      {
        short: '-e', long: '--encryption', kind: 'value', metavar: 'ENCRYPTION', suggestions: ['AES256', 'aws:kms'],
        help: 'S3: server-side encryption, AES256 or aws:kms',
      },
      ...SSE,
      {
        long: '--max-block-size', kind: 'value', metavar: 'MAX_BLOCK_SIZE', parse: parseSize, default: 4 * 1024 ** 2,
        help: 'Azure: block size of a concurrent upload',
      },
      {
        long: '--max-concurrency', kind: 'value', metavar: 'MAX_CONCURRENCY', parse: parsePositiveInteger, default: 1,
        help: 'Azure: blocks uploaded at once',
      },
      {
        long: '--max-single-put-size', kind: 'value', metavar: 'MAX_SINGLE_PUT_SIZE', parse: parseSize, default: 64 * 1024 ** 2,
        help: 'Azure: largest upload sent in one request',
      },
      {
        long: '--overwrite', kind: 'flag', extension: true,
        help: 'replace a WAL file already archived with different content (by default that is refused with exit 1)',
      },
      {
        long: '--max-parallel', kind: 'value', metavar: 'N', parse: parsePositiveInteger, extension: true,
        env: ['BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL'],
        help: `also upload up to N-1 further WAL files that PostgreSQL marked .ready; later calls for them answer from the spool (default 1, with --async ${ASYNC_DEFAULT_MAX_PARALLEL})`,
      },
      {
        long: '--async', kind: 'flag', extension: true, env: ['BARMAN_CLOUD_WAL_ARCHIVE_ASYNC'],
        help: `a detached worker keeps uploading the .ready WAL files (--max-parallel at once, default ${ASYNC_DEFAULT_MAX_PARALLEL}); each call exits 0 once its own file is stored`,
      },
      SPOOL_DIR,
      ENCRYPTION_RECIPIENT_FILE,
      { ...ENCRYPTION_IDENTITY_FILE, help: 'age identities, only to compare with an encrypted copy of the WAL file already archived' },
      {
        long: '--allow-mixed-encryption', kind: 'flag', extension: true,
        help: 'archive although the archive holds WAL of the other kind (plain vs encrypted), and record the switch',
      },
    ],
    exitCodes: exits([1, 'the WAL file could not be archived, or is archived with different content (with -t: the bucket does not exist)']),
  },
  {
    name: 'wal-restore',
    prog: 'barman-cloud-wal-restore',
    description: 'Fetch one WAL file from the object store (for restore_command).',
    positionals: [
      SOURCE, SERVER,
      { name: 'wal_name', help: 'name of the WAL file to fetch (%f)' },
      { name: 'wal_dest', help: 'where to write it (%p)' },
    ],
    options: [
      ...COMMON,
      { long: '--no-partial', kind: 'flag', help: 'do not restore .partial WAL files' },
      {
        long: '--parallel', kind: 'value', metavar: 'N', parse: parsePrefetchCount, extension: true,
        env: ['BARMAN_CLOUD_WAL_RESTORE_PARALLEL'],
        help: `also prefetch the next N-1 segments of the same timeline into the spool (default 1: no prefetch; with --async ${ASYNC_DEFAULT_PARALLEL})`,
      },
      {
        long: '--async', kind: 'flag', extension: true, env: ['BARMAN_CLOUD_WAL_RESTORE_ASYNC'],
        help: `a detached prefetcher stays N-1 segments ahead of the last one asked for (--parallel N, default ${ASYNC_DEFAULT_PARALLEL}; --parallel 1 turns it off)`,
      },
      {
        long: '--wal-segment-size', kind: 'value', metavar: 'SIZE', parse: parseSize, extension: true,
        help: 'WAL segment size for prefetching (default: learned from the first segment fetched)',
      },
      SPOOL_DIR,
      ENCRYPTION_IDENTITY_FILE,
      ALLOW_UNENCRYPTED,
    ],
    exitCodes: exits([1, 'the WAL file is not in the archive (with -t: the bucket does not exist)']),
  },
  {
    name: 'backup',
    prog: 'barman-cloud-backup',
    description: 'Take a base backup of a PostgreSQL server straight into the object store.',
    positionals: [DESTINATION, SERVER],
    options: [
      ...COMMON,
      { short: '-z', long: '--gzip', kind: 'flag', group: 'compression', help: 'compress the tar files with gzip' },
      { short: '-j', long: '--bzip2', kind: 'flag', group: 'compression', help: 'compress the tar files with bzip2' },
      { long: '--snappy', kind: 'flag', group: 'compression', help: 'compress the tar files with snappy' },
      { long: '--lz4', kind: 'flag', group: 'compression', help: 'compress the tar files with lz4 (barman 3.18)' },
      { long: '--zstd', kind: 'flag', group: 'compression', extension: true, help: 'compress the tar files with zstd' },
      { long: '--xz', kind: 'flag', group: 'compression', extension: true, help: 'compress the tar files with xz' },
      {
        long: '--compression-level', kind: 'value', metavar: 'COMPRESSION_LEVEL', suggestions: ['low', 'medium', 'high'],
        parse: parseCompressionLevel, extension: true,
        help: 'low, medium, high, or a number clamped to the codec range (default: gzip 6, bzip2 9, others medium)',
      },
      PG_HOST, PG_PORT, PG_USER,
      { long: '--immediate-checkpoint', kind: 'flag', help: 'ask PostgreSQL for an immediate checkpoint' },
      { short: '-J', long: '--jobs', kind: 'value', metavar: 'JOBS', parse: parsePositiveInteger, default: 2, help: 'parallel part uploads' },
      {
        short: '-S', long: '--max-archive-size', kind: 'value', metavar: 'MAX_ARCHIVE_SIZE', parse: parseSize, default: 100 * 1024 ** 3,
        help: 'start a new tar part beyond this size',
      },
      { long: '--min-chunk-size', kind: 'value', metavar: 'MIN_CHUNK_SIZE', parse: parseSize, help: 'smallest multipart part size' },
      { long: '--max-bandwidth', kind: 'value', metavar: 'MAX_BANDWIDTH', parse: parseSize, help: 'upload rate limit, bytes per second' },
      {
        long: '--heartbeat-interval', kind: 'value', metavar: 'SECONDS', parse: parseHeartbeatSeconds, default: 300, extension: true,
        env: ['BARMAN_CLOUD_BACKUP_HEARTBEAT_INTERVAL'],
        help: 'rewrite the backup\'s claim this often while it runs; the next backup records a run silent for six intervals as FAILED',
      },
      PG_DBNAME,
      { short: '-n', long: '--name', kind: 'value', metavar: 'BACKUP_NAME', help: 'a name for the backup' },
      { long: '--snapshot-instance', kind: 'value', metavar: 'SNAPSHOT_INSTANCE', help: 'snapshot backup: the VM instance' },
      { long: '--snapshot-disk', kind: 'append', metavar: 'NAME', help: 'snapshot backup: a disk to snapshot; repeat for more' },
      { long: '--gcp-zone', aliases: ['--snapshot-zone'], kind: 'value', metavar: 'GCP_ZONE', help: 'snapshot backup: GCP zone' },
      { long: '--gcp-project', aliases: ['--snapshot-gcp-project'], kind: 'value', metavar: 'GCP_PROJECT', help: 'snapshot backup: GCP project' },
      KMS_KEY_NAME,
      ...tags('', 'every uploaded object'),
      {
        short: '-e', long: '--encryption', kind: 'value', metavar: 'ENCRYPTION', choices: ['AES256', 'aws:kms'],
        help: 'S3: server-side encryption',
      },
      ...SSE,
      ENCRYPTION_RECIPIENT_FILE,
      { long: '--aws-region', kind: 'value', metavar: 'AWS_REGION', help: 'snapshot backup: AWS region' },
      {
        long: '--aws-await-snapshots-timeout', kind: 'value', metavar: 'AWS_AWAIT_SNAPSHOTS_TIMEOUT', parse: parsePositiveInteger,
        default: 3600, help: 'snapshot backup: seconds to wait for EBS snapshots',
      },
      {
        long: '--aws-snapshot-lock-mode', kind: 'value', metavar: 'AWS_SNAPSHOT_LOCK_MODE', choices: ['governance', 'compliance'],
        help: 'snapshot backup: EBS snapshot lock mode',
      },
      {
        long: '--aws-snapshot-lock-cool-off-period', kind: 'value', metavar: 'AWS_SNAPSHOT_LOCK_COOL_OFF_PERIOD', parse: parseInteger,
        help: 'snapshot backup: lock cool-off period in hours (1-72)',
      },
      {
        long: '--aws-snapshot-lock-expiration-date', kind: 'value', metavar: 'AWS_SNAPSHOT_LOCK_EXPIRATION_DATE', group: 'lock',
        help: 'snapshot backup: lock expiry date',
      },
      {
        long: '--aws-snapshot-lock-duration', kind: 'value', metavar: 'AWS_SNAPSHOT_LOCK_DURATION', parse: parseInteger, group: 'lock',
        help: 'snapshot backup: lock duration in days (1-36500)',
      },
      { long: '--azure-subscription-id', kind: 'value', metavar: 'AZURE_SUBSCRIPTION_ID', help: 'snapshot backup: Azure subscription' },
      { long: '--azure-resource-group', kind: 'value', metavar: 'AZURE_RESOURCE_GROUP', help: 'snapshot backup: Azure resource group' },
    ],
    exitCodes: exits([1, 'the backup failed (backup.info is written with status FAILED)']),
  },
  {
    name: 'backup-list',
    prog: 'barman-cloud-backup-list',
    description: 'List the backups in the object store.',
    positionals: [SOURCE, SERVER],
    options: [
      ...COMMON,
      {
        long: '--format', kind: 'value', metavar: 'FORMAT', default: 'console', suggestions: ['console', 'json'],
        help: 'console, or json (barman prints any other value as json too)',
      },
    ],
    exitCodes: exits([1, 'with -t: the bucket does not exist']),
  },
  {
    name: 'backup-show',
    prog: 'barman-cloud-backup-show',
    description: 'Show the metadata of one backup.',
    positionals: [SOURCE, SERVER, { name: 'backup_id', help: 'backup ID, name, or first/oldest/last/latest/last-failed' }],
    options: [
      ...COMMON,
      {
        long: '--format', kind: 'value', metavar: 'FORMAT', default: 'console', suggestions: ['console', 'json'],
        help: 'console, or json (barman prints any other value as json too)',
      },
    ],
    exitCodes: exits([1, 'the backup does not exist']),
  },
  {
    name: 'backup-delete',
    prog: 'barman-cloud-backup-delete',
    description: 'Delete one backup, or every backup a retention policy makes obsolete, with the WAL no longer needed.',
    positionals: [SOURCE, SERVER],
    options: [
      ...COMMON,
      { short: '-b', long: '--backup-id', kind: 'value', metavar: 'BACKUP_ID', group: 'target', help: 'the backup to delete' },
      {
        short: '-m', long: '--minimum-redundancy', kind: 'value', metavar: 'MINIMUM_REDUNDANCY', parse: parseNonNegativeInteger,
        default: 0, help: 'keep at least this many backups',
      },
      {
        short: '-r', long: '--retention-policy', kind: 'value', metavar: 'RETENTION_POLICY', group: 'target',
        help: "'REDUNDANCY n' or 'RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS'",
      },
      { long: '--dry-run', kind: 'flag', help: 'print what would be deleted and delete nothing' },
      { long: '--batch-size', kind: 'value', metavar: 'DELETE_BATCH_SIZE', parse: parseInteger, help: 'objects per bulk delete request' },
      {
        long: '--check-object-lock', kind: 'flag',
        help: 'S3: before deleting a backup, check its objects for Object Lock; stop with exit 1 at the first locked one',
      },
      {
        long: '--format', kind: 'value', metavar: 'FORMAT', choices: ['console', 'json'], default: 'console', extension: true,
        help: 'the summary line printed after a deletion: console or json (one object)',
      },
    ],
    requiredGroups: ['target'],
    exitCodes: exits([1, 'a deletion failed or was refused']),
  },
  {
    name: 'backup-keep',
    prog: 'barman-cloud-backup-keep',
    description: 'Keep a backup forever (or release it), whatever the retention policy.',
    positionals: [SOURCE, SERVER, { name: 'backup_id', help: 'backup ID, name, or shortcut' }],
    options: [
      ...COMMON,
      { short: '-r', long: '--release', kind: 'flag', group: 'action', help: 'remove the keep annotation' },
      { short: '-s', long: '--status', kind: 'flag', group: 'action', help: 'print the keep status' },
      {
        long: '--target', kind: 'value', metavar: 'TARGET', choices: ['full', 'standalone'], group: 'action',
        help: 'keep the backup: full (with the WAL after it) or standalone',
      },
    ],
    requiredGroups: ['action'],
    exitCodes: exits([1, 'the backup cannot be kept']),
  },
  {
    name: 'restore',
    prog: 'barman-cloud-restore',
    description: 'Restore a base backup from the object store into a directory.',
    positionals: [
      SOURCE, SERVER,
      { name: 'backup_id', help: 'backup ID, name, shortcut, or auto' },
      { name: 'recovery_dir', help: 'the directory to restore into (must be empty or missing)' },
    ],
    options: [
      ...COMMON,
      { long: '--tablespace', kind: 'append', metavar: 'NAME:LOCATION', help: 'restore tablespace NAME into LOCATION; repeat for more' },
      {
        long: '--snapshot-recovery-instance', kind: 'value', metavar: 'SNAPSHOT_RECOVERY_INSTANCE',
        help: 'snapshot backups: the instance the disks are attached to',
      },
      { long: '--gcp-zone', aliases: ['--snapshot-recovery-zone'], kind: 'value', metavar: 'GCP_ZONE', help: 'snapshot backups: GCP zone' },
      { long: '--aws-region', kind: 'value', metavar: 'AWS_REGION', help: 'snapshot backups: AWS region' },
      { long: '--azure-resource-group', kind: 'value', metavar: 'AZURE_RESOURCE_GROUP', help: 'snapshot backups: Azure resource group' },
      { long: '--target-tli', kind: 'value', metavar: 'TARGET_TLI', parse: parseTargetTimeline, help: 'with auto: timeline (a number, current or latest)' },
      { long: '--target-lsn', kind: 'value', metavar: 'TARGET_LSN', group: 'target', help: 'with auto: the newest backup ending at or before this LSN' },
      { long: '--target-time', kind: 'value', metavar: 'TARGET_TIME', group: 'target', help: 'with auto: the newest backup ending at or before this time' },
      {
        short: '-J', long: '--jobs', kind: 'value', metavar: 'JOBS', parse: parsePositiveInteger, default: 2, extension: true,
        help: 'archives downloaded and extracted at once',
      },
      {
        long: '--write-recovery-conf', kind: 'flag', extension: true,
        help: 'also write recovery.signal and a restore_command using barman-cloud-wal-restore with the same store options (and the chosen target)',
      },
      ENCRYPTION_IDENTITY_FILE,
      ALLOW_UNENCRYPTED,
    ],
    exitCodes: exits([1, 'the restore failed (destination not empty, backup missing, …)']),
  },
  {
    name: 'check-wal-archive',
    prog: 'barman-cloud-check-wal-archive',
    description: 'Check that the WAL archive is safe to use for a new server (empty, or only older timelines).',
    positionals: [DESTINATION, SERVER],
    options: [
      // This command always tests connectivity; -t stops after that test (docs/format.md#check-wal-archive).
      ...COMMON.map((o) => (o.long === '--test'
        ? { ...o, help: 'only test the connection to the object store and exit: 0 reachable, 2 unreachable' }
        : o)),
      {
        long: '--timeline', kind: 'value', metavar: 'TIMELINE', parse: parsePositiveInteger,
        help: 'fail only on WAL files of this timeline or newer',
      },
    ],
    exitCodes: [
      [0, 'success'],
      [1, 'the archive is not empty'],
      [2, 'the object store cannot be reached (always tested, with or without -t)'],
      [3, 'invalid arguments'],
      [4, 'any other error'],
    ],
  },
  {
    name: 'doctor',
    prog: 'barman-cloud doctor',
    umbrellaOnly: true,
    description: 'Check a setup end to end: credentials, bucket, a probe object, the catalog, PostgreSQL archiving.',
    positionals: [DESTINATION, SERVER],
    options: [
      ...COMMON,
      PG_HOST, PG_PORT, PG_USER, PG_DBNAME,
      {
        long: '--no-postgres', kind: 'flag',
        help: 'skip the PostgreSQL checks (connection, privileges, archive_mode, archive_command, wal_level, pg_stat_archiver)',
      },
      {
        long: '--format', kind: 'value', metavar: 'FORMAT', choices: ['console', 'json'], default: 'console',
        help: 'console: one "ok|warn|FAIL  <check>: <finding>" line per check; ' +
          'json: {"checks": [{"name", "status": ok|warn|fail, "detail"}], "ok": true|false}',
      },
    ],
    exitCodes: [
      [0, 'every check passed (warnings allowed)'],
      [1, 'at least one check failed (FAIL), the object store being reachable'],
      [2, 'the object store could not be used at all: configuration, connection, TLS or credentials (with -t: unreachable)'],
      [3, 'invalid arguments'],
      [4, 'any other error'],
    ],
  },
  {
    name: 'verify',
    prog: 'barman-cloud verify',
    umbrellaOnly: true,
    description: 'Read every part of backups from the store and check sizes, checksums, tars and the WAL they need, writing nothing.',
    positionals: [
      SOURCE, SERVER,
      { name: 'backup_id', optional: true, help: 'backup ID, name, first/oldest/last/latest/last-failed, or all (default)' },
    ],
    options: [
      ...COMMON,
      {
        short: '-J', long: '--jobs', kind: 'value', metavar: 'JOBS', parse: parsePositiveInteger, default: 2,
        help: 'archives (data, each tablespace) read at once',
      },
      {
        long: '--format', kind: 'value', metavar: 'FORMAT', choices: ['console', 'json'], default: 'console',
        help: 'console: one line per backup and per problem, then a summary line; json: one document (docs/commands/verify.md)',
      },
      ENCRYPTION_IDENTITY_FILE,
      ALLOW_UNENCRYPTED,
    ],
    exitCodes: [
      [0, 'every chosen backup and the WAL it needs verified'],
      [1, 'a problem was found (each is named), or the backup does not exist'],
      [2, 'with -t: the object store cannot be reached'],
      [3, 'invalid arguments'],
      [4, 'any other error, including store failures while reading'],
    ],
  },
  {
    name: 'completion',
    prog: 'barman-cloud completion',
    description: 'Print the shell completion script for barman-cloud and the barman-cloud-<command> executables.',
    positionals: [{ name: 'shell', choices: SHELLS, help: 'the shell to print the script for (install notes are at its top)' }],
    options: [{ long: '--help', kind: 'flag', help: 'show this help message and exit' }],
    exitCodes: [[0, 'success'], [3, 'invalid arguments']],
    umbrellaOnly: true,
  },
] as const satisfies readonly CommandSpec[];

/** The table for code that treats every command alike (help, completion, the shell front). */
export const COMMANDS: readonly CommandSpec[] = TABLE;

export type CommandSpecOf<N extends CommandName> = Extract<(typeof TABLE)[number], { name: N }>;

export function commandByName<N extends CommandName>(name: N): CommandSpecOf<N>;
export function commandByName(name: string): CommandSpec | undefined;
export function commandByName(name: string): CommandSpec | undefined {
  return TABLE.find((c) => c.name === name);
}

// ---- option types, derived from the table -------------------------------------------------------

/** The key a command reads an option's value by: its long name without the dashes. */
type OptionKey<O> = O extends { long: `--${infer K}` } ? K : never;

/** One value as the parser stores it: its parser's result, one of its choices, or the word itself. */
type Converted<O> = O extends { parse: (raw: string) => infer R } ? R : O extends { choices: readonly (infer C)[] } ? C : string;

/** Absent flags are false and absent counts 0 (parse.ts); other kinds are undefined unless they have a default. */
type OptionValue<O> =
  O extends { kind: 'flag' } ? boolean
  : O extends { kind: 'count' } ? number
  : O extends { kind: 'list' } ? string[] | undefined
  : O extends { kind: 'append' } ? Converted<O>[] | undefined
  : O extends { default: unknown } ? Converted<O>
  : Converted<O> | undefined;

/** The parsed values of a list of options, by key: `{ 'max-parallel': number | undefined, gzip: boolean, … }`. */
export type OptionsOf<T extends readonly OptionSpec[]> = { readonly [O in T[number] as OptionKey<O>]: OptionValue<O> };

/** The options of one command (a mapped type of its own, so that tsc's messages name the command). */
type OptionsOfCommand<N extends CommandName> = {
  readonly [O in CommandSpecOf<N>['options'][number] as OptionKey<O>]: OptionValue<O>;
};

/** What `parseArgs` returns as `options` for command N (a union of them for a union of names). */
export type CommandOptions<N extends CommandName> = N extends CommandName ? OptionsOfCommand<N> : never;

/** One positional's value: one of its choices, or the word; undefined only when it is optional (parse.ts requires the others). */
type PositionalValue<P> = (P extends { choices: readonly (infer C)[] } ? C : string) | (P extends { optional: true } ? undefined : never);

type PositionalsOfCommand<N extends CommandName> = {
  readonly [P in CommandSpecOf<N>['positionals'][number] as P['name']]: PositionalValue<P>;
};

/** What `parseArgs` returns as `positionals` for command N: `{ source_url: string, server_name: string, backup_id: string | undefined }`. */
export type CommandPositionals<N extends CommandName> = N extends CommandName ? PositionalsOfCommand<N> : never;

/** The options every command but `completion` has: verbosity, -t, the store and its credentials. */
export type CommonOptions = OptionsOf<typeof COMMON>;

/** The commands that open an object store (all that take the common options). */
export type StoreCommandName = { [N in CommandName]: CommandOptions<N> extends CommonOptions ? N : never }[CommandName];

/** Client-side encryption keys, for the commands that take them (cli/encryption.ts). */
export type RecipientOptions = OptionsOf<[typeof ENCRYPTION_RECIPIENT_FILE]>;
export type IdentityOptions = OptionsOf<[typeof ENCRYPTION_IDENTITY_FILE]> & Partial<OptionsOf<[typeof ALLOW_UNENCRYPTED]>>;

/** Server-side encryption and KMS settings, which only the uploading commands (wal-archive, backup) take. */
export type UploadEncryptionOptions = Partial<Pick<CommandOptions<'wal-archive'>, 'encryption' | 'sse-kms-key-id' | 'encryption-scope' | 'kms-key-name'>>;

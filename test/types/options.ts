// Type-level tests of the option types derived from src/cli/spec.ts. Not run by vitest: compiled by
// `tsc -p test/tsconfig.json` (pretest). Each `@ts-expect-error` needs an error on the line below it,
// so if the options lost their types (back to Record<string, unknown>) every directive would be
// unused and tsc would fail.
import type { CommandContext } from '../../src/cli/context.ts';
import { loadIdentities, loadRecipients } from '../../src/cli/encryption.ts';
import { parseArgs } from '../../src/cli/parse.ts';
import {
  commandByName, type CommandName, type CommandOptions, type CommandPositionals, type CommandSpecOf, type StoreCommandName,
} from '../../src/cli/spec.ts';
import { resolveStore, type NotInTable } from '../../src/cli/store.ts';
import type { AzureOptions } from '../../src/storage/azure/config.ts';
import type { FileStoreConfig } from '../../src/storage/file/config.ts';
import type { GcsOptions } from '../../src/storage/gcs/config.ts';
import type { ResolveInput, StorageProvider } from '../../src/storage/provider.ts';
import type { ProviderOptions } from '../../src/storage/registry.ts';
import type { S3Options } from '../../src/storage/s3/config.ts';

declare const archive: CommandOptions<'wal-archive'>;

// Every command name has its row in the table (else its options would be `never`).
export const everyCommandInTable: [Exclude<CommandName, CommandSpecOf<CommandName>['name']>] extends [never] ? true : false = true;

// Each kind has its value type: a value option its parser's result (undefined when absent, unless
// it has a default), a flag a boolean, a count a number, an append or list option a list of words,
// an option with choices one of them.
export const typed: {
  maxParallel: number | undefined;
  blockSize: number;
  level: 'low' | 'medium' | 'high' | number | undefined;
  gzip: boolean;
  verbose: number;
  tags: string[] | undefined;
  provider: 'aws-s3' | 'azure-blob-storage' | 'google-cloud-storage';
  spoolDir: string | undefined;
} = {
  maxParallel: archive['max-parallel'],
  blockSize: archive['max-block-size'],
  level: archive['compression-level'],
  gzip: archive.gzip,
  verbose: archive.verbose,
  tags: archive.tag,
  provider: archive['cloud-provider'],
  spoolDir: archive['spool-dir'],
};

// A misspelled option.
// @ts-expect-error no option --max-paralel
void archive['max-paralel'];
// @ts-expect-error no option --spooldir
void archive.spooldir;

// A wrong kind.
// @ts-expect-error --max-parallel takes a number, not a boolean switch
export const notAFlag: boolean = archive['max-parallel'];
// @ts-expect-error --gzip is a switch, not a value
export const notAValue: string = archive.gzip;
// @ts-expect-error --tag is a list of words, not one
export const notOneWord: string | undefined = archive.tag;
// @ts-expect-error --max-parallel has no default: it can be absent
export const notAlwaysThere: number = archive['max-parallel'];
// @ts-expect-error 'file' is not one of --cloud-provider's choices
export const notAChoice: 'file' = archive['cloud-provider'];

// An option of another command.
// @ts-expect-error --dry-run belongs to backup-delete
void archive['dry-run'];

// parseArgs types its result by the command it is given.
const outcome = parseArgs(commandByName('backup-delete'), ['-r', 'REDUNDANCY 1', 's3://bucket', 'srv']);
if (outcome.kind === 'args') {
  const format: 'console' | 'json' = outcome.args.options.format;
  const redundancy: number = outcome.args.options['minimum-redundancy'];
  void [format, redundancy];
  // @ts-expect-error the option is --dry-run
  void outcome.args.options.dry_run;
}

// The shared option groups: the store's (every command but completion) and the age key files
// (only the commands that take them).
export function shared(restore: CommandContext<'restore'>, backup: CommandContext<'backup'>, completion: CommandContext<'completion'>): void {
  resolveStore('s3://bucket', restore.args.options, restore.env);
  void loadIdentities(restore);
  void loadRecipients(backup);
  // @ts-expect-error completion takes no store options
  resolveStore('s3://bucket', completion.args.options, completion.env);
  // @ts-expect-error restore has no --encryption-recipient-file
  void loadRecipients(restore);
  // @ts-expect-error backup has no --encryption-identity-file
  void loadIdentities(backup);
}

// ---- the options the storage providers read (storage/<provider>/config.ts) ----------------------
// Storage does not import the table: each provider declares the options it reads, and the CLI
// checks those declarations against the table (cli/store.ts, NotInTable).

// Every provider's declared options are in the table, with the table's kinds.
export const providersMatchTable: [NotInTable<ProviderOptions>] extends [never] ? true : false = true;
// A provider declaring a misspelled option, or an option of another kind, is named by NotInTable.
// @ts-expect-error no option --endpoint-ur in the table
export const misspelledDeclaration: [NotInTable<{ readonly 'endpoint-ur': string | undefined }>] extends [never] ? true : false = true;
// @ts-expect-error --s3-inherit-from-iam-role is a switch in the table, not a value
export const wrongKindDeclaration: [NotInTable<{ readonly 's3-inherit-from-iam-role': string | undefined }>] extends [never] ? true : false = true;
// @ts-expect-error --encryption-scop: an upload-only option misspelled, though declared optional
export const misspelledOptional: [NotInTable<{ readonly 'encryption-scop'?: string | undefined }>] extends [never] ? true : false = true;

// A provider reads only what it declared, with the declared kind.
export function providerReads(s3: ResolveInput<S3Options>, azure: ResolveInput<AzureOptions>, gcs: ResolveInput<GcsOptions>): void {
  const inherit: boolean = s3.options['s3-inherit-from-iam-role'];
  const credential: 'azure-cli' | 'managed-identity' | 'default' | undefined = azure.options['azure-credential'];
  const kms: string | undefined = gcs.options['kms-key-name'];
  void [inherit, credential, kms];
  // @ts-expect-error misspelled: the option is --endpoint-url
  void s3.options['endpoint-ur'];
  // @ts-expect-error --encryption-scope is Azure's, not read by (nor declared for) S3
  void s3.options['encryption-scope'];
  // @ts-expect-error --google-gke-environment is a switch, not a file name
  const notAFile: string | undefined = gcs.options['google-gke-environment'];
  void notAFile;
}

// A provider's own flags and its customer-key option are among the options it declared; the key
// option names a file, so it cannot be a switch.
// @ts-expect-error no option --s3-regio among S3's
export const misspelledFlag: StorageProvider<FileStoreConfig, S3Options>['flags'] = ['s3-regio'];
// @ts-expect-error --google-gke-environment is a switch, not a key file
export const switchAsKeyFile: NonNullable<StorageProvider<FileStoreConfig, GcsOptions>['customerKey']>['option'] = 'google-gke-environment';

// ---- positionals, derived from the table the same way ------------------------------------------

declare const restoreArgs: CommandPositionals<'restore'>;
declare const archiveArgs: CommandPositionals<'wal-archive'>;
declare const completionArgs: CommandPositionals<'completion'>;

// A required positional is a string (parse.ts has checked it is there), an optional one may be
// absent, one with choices is one of them.
export const positionalTypes: { server: string; recoveryDir: string; walPath: string | undefined; shell: 'bash' | 'zsh' | 'fish' } = {
  server: restoreArgs.server_name,
  recoveryDir: restoreArgs.recovery_dir,
  walPath: archiveArgs.wal_path,
  shell: completionArgs.shell,
};
// @ts-expect-error misspelled: the positional is server_name
void restoreArgs.server;
// @ts-expect-error restore reads its store from source_url; destination_url is the uploaders'
void restoreArgs.destination_url;
// @ts-expect-error wal_path is optional (barman's hook mode): it can be absent
export const walPathAlways: string = archiveArgs.wal_path;
// @ts-expect-error 'sh' is not one of the shell positional's choices
export const notAShell: typeof completionArgs.shell = 'sh';

// parseArgs types the positionals by the command it is given; code shared by several commands
// reads only the positionals they all have.
export function sharedPositionals(ctx: CommandContext<StoreCommandName>): string {
  if (outcome.kind === 'args') {
    const source: string = outcome.args.positionals.source_url;
    void source;
    // @ts-expect-error backup-delete takes no backup_id positional (it is -b/--backup-id)
    void outcome.args.positionals.backup_id;
  }
  // @ts-expect-error only the commands that read a store have source_url; the uploaders have destination_url
  void ctx.args.positionals.source_url;
  return ctx.args.positionals.server_name;
}

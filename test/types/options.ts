// Type-level tests of the option types derived from src/cli/spec.ts. Not run by vitest: compiled by
// `tsc -p test/tsconfig.json` (pretest). Each `@ts-expect-error` needs an error on the line below it,
// so if the options lost their types (back to Record<string, unknown>) every directive would be
// unused and tsc would fail.
import type { CommandContext } from '../../src/cli/context.ts';
import { loadIdentities, loadRecipients } from '../../src/cli/encryption.ts';
import { parseArgs } from '../../src/cli/parse.ts';
import { commandByName, type CommandName, type CommandOptions, type CommandSpecOf } from '../../src/cli/spec.ts';
import { resolveStore } from '../../src/cli/store.ts';

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

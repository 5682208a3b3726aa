// Entry point of every executable: parse, dispatch, and map errors to barman's exit codes (docs/format.md#exit-codes).
// The only layer that reads process.argv / process.env and decides the exit code.
import { BarmanCloudError, CliError, EXIT, NetworkError, OperationError } from '../errors.js';
import { debugStack, log, setVerbosity } from '../log.js';
import type { CommandContext, CommandModule } from './context.js';
import { helpText, parseArgs, usage, UsageError } from './parse.js';
import {
  BARMAN_CONTRACT_VERSION, commandByName, type CommandName, type CommandSpec, type CommonOptions, type StoreCommandName,
} from './spec.js';
import type { Env } from './store.js';
import { openContextStore } from './open-store.js';
import { setProgramSearchPath } from '../compression/index.js';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

// stdout: the command's output (listings, show, help, version); stderr: argparse's usage errors only,
// which have no log prefix. Every other line on stderr goes through src/log.ts (docs/format.md#arguments).
const defaultIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

async function loadCommand(name: CommandName): Promise<CommandModule> {
  switch (name) {
    case 'check-wal-archive':
      return (await import('./commands/check-wal-archive.js')).default;
    case 'backup':
      return (await import('./commands/backup.js')).default;
    case 'restore':
      return (await import('./commands/restore.js')).default;
    case 'backup-list':
      return (await import('./commands/backup-list.js')).default;
    case 'backup-show':
      return (await import('./commands/backup-show.js')).default;
    case 'backup-delete':
      return (await import('./commands/backup-delete.js')).default;
    case 'backup-keep':
      return (await import('./commands/backup-keep.js')).default;
    case 'doctor':
      return (await import('./commands/doctor.js')).default;
    case 'verify':
      return (await import('./commands/verify.js')).default;
    case 'completion':
      return (await import('./commands/completion.js')).default;
    case 'wal-archive':
    case 'wal-restore':
      return (await import('./commands/wal.js'))[name === 'wal-archive' ? 'walArchive' : 'walRestore'];
  }
}

/** Every command but `completion` takes the common options (-v, -t, the store's): seen in its parsed options. */
function takesCommonOptions(ctx: CommandContext): ctx is CommandContext<StoreCommandName> {
  return 'cloud-provider' in ctx.args.options;
}

/** `-t/--test` (docs/format.md#connectivity-test): 0 reachable and bucket present, 1 bucket missing, 2 unreachable. */
async function connectivityTest(ctx: CommandContext<StoreCommandName>): Promise<number> {
  const { store } = await openContextStore(ctx);
  try {
    const result = await store.testConnectivity();
    if (result === 'bucket-missing') {
      log.error(`Bucket ${store.bucket} does not exist`);
      return EXIT.OPERATION;
    }
    return EXIT.OK;
  } catch (e) {
    if (e instanceof NetworkError) {
      log.error(`Can't connect to cloud provider: ${e.message}`);
      return EXIT.NETWORK;
    }
    throw e;
  } finally {
    await store.close();
  }
}

function reportUsageError(spec: CommandSpec, message: string, io: Io): number {
  io.stderr(`${usage(spec)}\n${spec.prog}: error: ${message}\n`);
  return EXIT.CLI;
}

export async function main(name: CommandName, argv: string[], env: Env = process.env, io: Io = defaultIo): Promise<number> {
  const spec = commandByName(name);
  if (!spec) throw new Error(`unknown command ${name}`);
  let ctx: CommandContext;
  try {
    const outcome = parseArgs(spec, argv);
    if (outcome.kind === 'help') {
      io.stdout(helpText(spec));
      return EXIT.OK;
    }
    if (outcome.kind === 'version') {
      io.stdout(`${spec.prog} ${BARMAN_CONTRACT_VERSION}\n`);
      return EXIT.OK;
    }
    ctx = { spec, args: outcome.args, env, stdout: io.stdout };
    setProgramSearchPath(env.PATH);
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(spec, e.message, io);
    throw e;
  }
  const opts: Partial<CommonOptions> = ctx.args.options;
  setVerbosity(opts.verbose ?? 0, opts.quiet ?? 0);

  let command: CommandModule | undefined;
  try {
    command = await loadCommand(name);
    command.validate?.(ctx);
    if (opts.test === true && takesCommonOptions(ctx)) return await (command.test ?? connectivityTest)(ctx);
    return await command.run(ctx);
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(spec, e.message, io);
    if (e instanceof CliError || e instanceof OperationError) {
      log.error(e.message, e.continuation);
      return e.exitCode;
    }
    const message = e instanceof Error ? e.message : String(e);
    log.error(command ? `${command.errorPrefix}: ${message}` : message);
    if (e instanceof BarmanCloudError) return e.exitCode;
    if (!(e instanceof Error)) return EXIT.GENERAL;
    debugStack(e);
    return EXIT.GENERAL;
  }
}

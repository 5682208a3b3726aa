// What a command receives: parsed arguments, the environment, and a lazily opened object store.
import type { ParsedArgs } from './parse.js';
import type { CommandName, CommandSpec } from './spec.js';
import type { Env } from './store.js';

/** N: the command (or commands, for code they share) whose options `args.options` holds. */
export interface CommandContext<N extends CommandName = CommandName> {
  spec: CommandSpec;
  args: ParsedArgs<N>;
  env: Env;
  stdout: (text: string) => void;
}

export interface CommandModule<N extends CommandName = CommandName> {
  /** Prefix barman puts before an unexpected exception in its log line. */
  errorPrefix: string;
  /** Input checks that run before `-t` (e.g. the WAL name); throw a CliError. */
  validate?(ctx: CommandContext<N>): void;
  /** Replaces the generic `-t` handling (check-wal-archive). */
  test?(ctx: CommandContext<N>): Promise<number>;
  run(ctx: CommandContext<N>): Promise<number>;
}

// What a command receives: parsed arguments, the environment, and a lazily opened object store.
import { GeneralError } from '../errors.js';
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

/** The named positionals, which the parser has already required: a missing one is a bug (exit 4). */
export function requiredPositionals<K extends string>(ctx: CommandContext, ...names: K[]): Record<K, string> {
  const out = {} as Record<K, string>;
  for (const name of names) {
    const value = ctx.args.positionals[name];
    if (value === undefined) throw new GeneralError(`missing positional argument ${name}`);
    out[name] = value;
  }
  return out;
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

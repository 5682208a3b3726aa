// What a command receives: parsed arguments, the environment, and a lazily opened object store.
import { GeneralError } from '../errors.js';
import type { ParsedArgs } from './parse.js';
import type { CommandSpec } from './spec.js';
import type { Env } from './store.js';

export interface CommandContext {
  spec: CommandSpec;
  args: ParsedArgs;
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

export interface CommandModule {
  /** Prefix barman puts before an unexpected exception in its log line. */
  errorPrefix: string;
  /** Input checks that run before `-t` (e.g. the WAL name); throw a CliError. */
  validate?(ctx: CommandContext): void;
  /** Replaces the generic `-t` handling (check-wal-archive). */
  test?(ctx: CommandContext): Promise<number>;
  run(ctx: CommandContext): Promise<number>;
}

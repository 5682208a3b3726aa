// The checks that run before any parsing, kept free of heavy imports so that `--version` and
// `--help` answer fast (the operator probes `--version` on every call, docs/compatibility.md#cloudnativepg-plugin-or-in-tree).
import type { CommandSpec, OptionSpec } from './spec.js';

export const takesValue = (o: OptionSpec): boolean => o.kind === 'value' || o.kind === 'append';

/** argparse's help and version actions run as soon as they are met, before any other check. */
export function earlyAction(spec: CommandSpec, argv: string[]): 'help' | 'version' | undefined {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === undefined) break;
    if (word === '--') return undefined;
    if (word === '--help') return 'help';
    // An umbrella-only command (completion) has no -V/--version: there it is an unknown argument.
    if ((word === '--version' || word === '-V') && spec.options.some((o) => o.long === '--version')) return 'version';
    // A short cluster such as -vV.
    if (/^-[a-zA-Z]{2,}$/.test(word)) {
      for (const ch of word.slice(1)) {
        const opt = spec.options.find((o) => o.short === `-${ch}`);
        if (!opt) break;
        if (opt.long === '--version') return 'version';
        if (takesValue(opt)) break;
      }
    }
    const opt = spec.options.find((o) => o.long === word || o.short === word);
    if (opt && takesValue(opt)) i++;
  }
  return undefined;
}


// argparse-compatible parsing on top of commander (docs/format.md#arguments, docs/compatibility.md#cloudnativepg-plugin-or-in-tree): options anywhere
// among positionals, --opt=value and --opt value, unique-prefix abbreviation of long options,
// counted -v/-q, --help only (no -h), -V/--version, nargs="*" for --tags, and every usage error
// printed as `usage: …` + `<prog>: error: <msg>` with exit 3.
import { Command, Option } from './commander.js';
import { CliError } from '../errors.js';
import { ArgumentTypeError, parseSize } from './types.js';
import type { CommandName, CommandOptions, CommandPositionals, CommandSpec, OptionSpec, PositionalSpec } from './spec.js';
import { earlyAction, takesValue } from './early.js';

export interface ParsedArgs<N extends CommandName = CommandName> {
  /** Positional values by name (missing optional ones are undefined), typed from spec.ts. */
  positionals: CommandPositionals<N>;
  /** Option values by long name without dashes (e.g. 'aws-profile'), defaults applied, typed from spec.ts. */
  options: CommandOptions<N>;
  /** Long names of the options that were given on the command line, in order. */
  given: string[];
}

export type ParseOutcome<N extends CommandName = CommandName> = { kind: 'help' } | { kind: 'version' } | { kind: 'args'; args: ParsedArgs<N> };

/** An argparse usage error: carries the usage text so the CLI can print both lines. */
export class UsageError extends CliError {
  constructor(readonly spec: CommandSpec, message: string) {
    super(message);
  }
}

const optionKey = (o: OptionSpec): string => o.long.replace(/^--/, '');

/** argparse's name for an option in messages: `-P/--aws-profile`. */
const optionDisplay = (o: OptionSpec): string => (o.short ? `${o.short}/${o.long}` : o.long);


interface LongName {
  name: string;
  option: OptionSpec;
}

function longNames(spec: CommandSpec): LongName[] {
  return spec.options.flatMap((o) => [o.long, ...(o.aliases ?? [])].map((name) => ({ name, option: o })));
}

/**
 * Resolve a long option word (possibly abbreviated) to its option, as argparse does. Barman's own
 * flags are matched before our extensions so that an abbreviation that worked with barman keeps
 * working here (e.g. `--endpoint` still means `--endpoint-url`).
 */
function resolveLong(spec: CommandSpec, word: string): LongName | undefined {
  const all = longNames(spec);
  const exact = all.find((l) => l.name === word);
  if (exact) return exact;
  for (const pool of [all.filter((l) => !l.option.extension), all.filter((l) => l.option.extension)]) {
    const matches = pool.filter((l) => l.name.startsWith(word));
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) {
      throw new UsageError(
        spec,
        `ambiguous option: ${word} could match ${matches.map((m) => m.name).join(', ')}`,
      );
    }
  }
  return undefined;
}

/**
 * Rewrite argv so commander sees only canonical long names: abbreviations and aliases expanded.
 * Values of value-taking options are passed through untouched.
 */
export function normalizeArgv(spec: CommandSpec, argv: string[]): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const word = argv[i++];
    if (word === undefined) break;
    if (word === '--') {
      out.push(word, ...argv.slice(i));
      break;
    }
    if (word.startsWith('--') && word.length > 2) {
      const eq = word.indexOf('=');
      const name = eq >= 0 ? word.slice(0, eq) : word;
      const hit = resolveLong(spec, name);
      if (!hit) {
        out.push(word);
        continue;
      }
      out.push(eq >= 0 ? `${hit.option.long}${word.slice(eq)}` : hit.option.long);
      const value = argv[i];
      if (eq < 0 && takesValue(hit.option) && value !== undefined) {
        out.push(value);
        i++;
      }
      continue;
    }
    out.push(word);
    if (/^-[^-]$/.test(word)) {
      const opt = spec.options.find((o) => o.short === word);
      const value = argv[i];
      if (opt && takesValue(opt) && value !== undefined) {
        out.push(value);
        i++;
      }
    }
  }
  return out;
}

const quotedChoices = (choices: readonly string[]): string => choices.map((c) => `'${c}'`).join(', ');

function convert(spec: CommandSpec, o: OptionSpec, raw: string): unknown {
  if (o.choices && !o.choices.includes(raw)) {
    throw new UsageError(spec, `argument ${optionDisplay(o)}: invalid choice: '${raw}' (choose from ${quotedChoices(o.choices)})`);
  }
  if (!o.parse) return raw;
  try {
    return o.parse(raw);
  } catch (e) {
    if (e instanceof ArgumentTypeError) throw new UsageError(spec, `argument ${optionDisplay(o)}: ${e.message}`);
    throw e;
  }
}

function commanderFlags(o: OptionSpec): string {
  const names = [o.short, o.long].filter(Boolean).join(', ');
  if (takesValue(o)) return `${names} <${o.metavar ?? 'VALUE'}>`;
  if (o.kind === 'list') return `${names} [${o.metavar ?? 'VALUE'}...]`;
  return names;
}

function translateCommanderError(spec: CommandSpec, e: { code?: string; message: string }): UsageError {
  const msg = e.message.replace(/^error: /, '');
  switch (e.code) {
    case 'commander.unknownOption': {
      const m = /'([^']+)'/.exec(msg);
      return new UsageError(spec, `unrecognized arguments: ${m ? m[1] : msg}`);
    }
    case 'commander.optionMissingArgument': {
      const m = /option '(?:(-\w), )?(--[\w-]+)/.exec(msg);
      const o = m && spec.options.find((x) => x.long === m[2]);
      return new UsageError(spec, `argument ${o ? optionDisplay(o) : msg}: expected one argument`);
    }
    default:
      return new UsageError(spec, msg);
  }
}

export function parseArgs<S extends CommandSpec>(spec: S, rawArgv: string[]): ParseOutcome<S['name']> {
  const early = earlyAction(spec, rawArgv);
  if (early) return { kind: early };
  const argv = normalizeArgv(spec, rawArgv);

  const values: Record<string, unknown> = {};
  const given: string[] = [];
  const cmd = new Command(spec.prog)
    .helpOption(false)
    .exitOverride()
    .allowExcessArguments(true)
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  for (const p of spec.positionals) cmd.argument(`[${p.name}]`);
  for (const o of spec.options) {
    const option = new Option(commanderFlags(o));
    cmd.addOption(option);
    const key = optionKey(o);
    cmd.on(`option:${option.name()}`, (raw: unknown) => {
      // argparse: a second option of a mutually exclusive group is an error.
      if (o.group && !given.includes(key)) {
        const other = spec.options.find((x) => x !== o && x.group === o.group && given.includes(optionKey(x)));
        if (other) throw new UsageError(spec, `argument ${optionDisplay(o)}: not allowed with argument ${optionDisplay(other)}`);
      }
      if (!given.includes(key)) given.push(key);
      switch (o.kind) {
        case 'flag':
          values[key] = true;
          break;
        case 'count':
          values[key] = ((values[key] as number | undefined) ?? 0) + 1;
          break;
        case 'value':
          values[key] = convert(spec, o, String(raw));
          break;
        case 'append':
          values[key] = [...((values[key] as unknown[] | undefined) ?? []), convert(spec, o, String(raw))];
          break;
        case 'list': {
          const list = (values[key] as string[] | undefined) ?? [];
          if (typeof raw === 'string') list.push(raw);
          values[key] = list;
          break;
        }
      }
    });
  }

  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw translateCommanderError(spec, e as { code?: string; message: string });
  }

  const words = cmd.args;
  const missing = spec.positionals.slice(words.length).filter((p) => !p.optional);
  if (missing.length > 0) {
    throw new UsageError(spec, `the following arguments are required: ${missing.map((p) => p.name).join(', ')}`);
  }
  if (words.length > spec.positionals.length) {
    throw new UsageError(spec, `unrecognized arguments: ${words.slice(spec.positionals.length).join(' ')}`);
  }
  spec.positionals.forEach((p, i) => {
    if (p.choices && words[i] !== undefined && !p.choices.includes(words[i])) {
      throw new UsageError(spec, `argument ${p.name}: invalid choice: '${words[i]}' (choose from ${quotedChoices(p.choices)})`);
    }
  });
  for (const group of spec.requiredGroups ?? []) {
    const members = spec.options.filter((o) => o.group === group);
    if (!members.some((o) => given.includes(optionKey(o)))) {
      throw new UsageError(spec, `one of the arguments ${members.map(optionDisplay).join(' ')} is required`);
    }
  }

  const options: Record<string, unknown> = {};
  for (const o of spec.options) {
    const key = optionKey(o);
    if (key in values) options[key] = values[key];
    else if (o.kind === 'count') options[key] = 0;
    else if (o.kind === 'flag') options[key] = false;
    else options[key] = o.default;
  }
  const positionals: Record<string, string | undefined> = {};
  spec.positionals.forEach((p, i) => (positionals[p.name] = words[i]));
  // Built key by key from spec.options and spec.positionals above (the required ones and the
  // choices checked), as CommandOptions and CommandPositionals derive their types from them.
  return {
    kind: 'args',
    args: { positionals: positionals as CommandPositionals<S['name']>, options: options as CommandOptions<S['name']>, given },
  };
}

// ---- usage and help ------------------------------------------------------------------------------

function usageItem(o: OptionSpec): string {
  const name = o.short ?? o.long;
  if (o.choices && takesValue(o)) return `${name} {${o.choices.join(',')}}`;
  if (takesValue(o)) return `${name} ${o.metavar ?? 'VALUE'}`;
  if (o.kind === 'list') return `${name} [${o.metavar ?? 'VALUE'} ...]`;
  return name;
}

/** argparse shows a positional that has choices as `{a,b,c}` in usage and help. */
const positionalDisplay = (p: PositionalSpec): string => (p.choices ? `{${p.choices.join(',')}}` : p.name);

/** A default as the operator would type it: sizes in barman's units (4MB, not 4194304). */
function defaultDisplay(o: OptionSpec): string {
  if (o.parse === parseSize && typeof o.default === 'number') {
    const units = ['', 'KB', 'MB', 'GB', 'TB', 'PB'];
    let n = o.default;
    let u = 0;
    while (n % 1024 === 0 && u < units.length - 1) {
      n /= 1024;
      u++;
    }
    return `${n}${units[u]}`;
  }
  return String(o.default);
}

/** The argparse-style usage line, wrapped at 100 columns like barman's. */
export function usage(spec: CommandSpec): string {
  const items: string[] = [];
  const done = new Set<OptionSpec>();
  for (const o of spec.options) {
    // Our flags (ObjectStore fields, extra codecs, …) are listed by --help only: the usage line
    // stays barman's, also inside a group that mixes barman's flags and ours.
    if (done.has(o) || o.extension) continue;
    const group = o.group ? spec.options.filter((x) => x.group === o.group && !x.extension) : [o];
    group.forEach((x) => done.add(x));
    const inner = group.map(usageItem).join(' | ');
    items.push(spec.requiredGroups?.includes(o.group ?? '') ? `(${inner})` : `[${inner}]`);
  }
  for (const p of spec.positionals) items.push(p.optional ? `[${positionalDisplay(p)}]` : positionalDisplay(p));
  const head = `usage: ${spec.prog} `;
  const lines: string[] = [];
  let line = head;
  for (const item of items) {
    if (line.length + item.length + 1 > 100 && line.trim() !== head.trim()) {
      lines.push(line.trimEnd());
      line = ' '.repeat(head.length);
    }
    line += `${item} `;
  }
  lines.push(line.trimEnd());
  return lines.join('\n');
}

export function helpText(spec: CommandSpec): string {
  const out: string[] = [usage(spec), '', spec.description, '', 'positional arguments:'];
  for (const p of spec.positionals) out.push(`  ${positionalDisplay(p).padEnd(28)}${p.help}`);
  out.push('', 'options:');
  for (const o of spec.options) {
    const names = [o.short, o.long, ...(o.aliases ?? [])].filter(Boolean).join(', ');
    const arg = o.choices && takesValue(o) ? ` {${o.choices.join(',')}}` : takesValue(o) ? ` ${o.metavar}` : o.kind === 'list' ? ` [${o.metavar} ...]` : '';
    const extras: string[] = [];
    if (o.default !== undefined) extras.push(`default: ${defaultDisplay(o)}`);
    if (o.env?.length) extras.push(`env: ${o.env.join(', ')}`);
    const help = extras.length ? `${o.help} (${extras.join('; ')})` : o.help;
    const head = `  ${names}${arg}`;
    out.push(head.length < 30 ? `${head.padEnd(30)}${help}` : `${head}\n${' '.repeat(30)}${help}`);
  }
  out.push('', 'exit codes:');
  for (const [code, meaning] of spec.exitCodes) out.push(`  ${String(code).padEnd(4)}${meaning}`);
  return `${out.join('\n')}\n`;
}

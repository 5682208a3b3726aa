// Help texts against the command table: every command's real `--help` (the drop-in executable, or
// `barman-cloud <command> --help` for an umbrella-only one) shows each option's names, value,
// choices, environment variables and default, each positional and each exit code; the usage line
// keeps barman's argparse shape (our extension flags only in the option list); `barman-cloud --help`
// lists every command of the table.
import { describe, it, expect } from 'vitest';
import { COMMANDS, type CommandSpec, type OptionSpec } from '../../src/cli/spec.ts';
import { runBin } from '../helpers/run-bin.ts';

const names = (o: OptionSpec): string[] => [o.short, o.long, ...(o.aliases ?? [])].filter((n): n is string => !!n);
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const takesValue = (o: OptionSpec): boolean => o.kind === 'value' || o.kind === 'append';

function help(c: CommandSpec) {
  return c.umbrellaOnly ? runBin('barman-cloud', [c.name, '--help']) : runBin(c.prog, ['--help']);
}

interface Sections {
  usage: string;
  positionals: string[];
  /** Option entries: the first line and its continuation lines joined by one space. */
  options: string[];
  exitCodes: string[];
}

/** Split argparse-style help into its parts (entries start at column 2, help continues at column 30). */
function sections(text: string): Sections {
  const blocks = text.trimEnd().split('\n\n');
  const block = (title: string): string[] => {
    const b = blocks.find((x) => x.startsWith(`${title}\n`));
    expect(b, `a "${title}" section`).toBeDefined();
    return b!.split('\n').slice(1);
  };
  const entries = (lines: string[]): string[] => {
    const out: string[] = [];
    for (const line of lines) {
      if (/^ {2}\S/.test(line)) out.push(line.trim());
      else out[out.length - 1] += ` ${line.trim()}`;
    }
    return out;
  };
  return {
    usage: blocks[0],
    positionals: entries(block('positional arguments:')),
    options: entries(block('options:')),
    exitCodes: block('exit codes:'),
  };
}

describe.each(COMMANDS.map((c) => [c.umbrellaOnly ? `barman-cloud ${c.name}` : c.prog, c] as const))('%s --help', (_, c) => {
  it('exits 0 with the usage, description, positionals and exit codes', async () => {
    const r = await help(c);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const s = sections(r.stdout);
    expect(s.usage.startsWith(`usage: ${c.prog} `)).toBe(true);
    expect(r.stdout).toContain(`\n${c.description}\n`);
    expect(s.positionals).toHaveLength(c.positionals.length);
    c.positionals.forEach((p, i) => {
      const shown = p.choices ? `{${p.choices.join(',')}}` : p.name;
      expect(s.positionals[i]).toMatch(new RegExp(`^${escape(shown)}\\s+${escape(p.help)}$`));
      expect(s.usage).toContain(p.optional ? `[${shown}]` : shown);
    });
    expect(s.exitCodes).toEqual(c.exitCodes.map(([code, meaning]) => `  ${String(code).padEnd(4)}${meaning}`));
  });

  it('documents every option: names, value, choices, environment and default', async () => {
    const s = sections((await help(c)).stdout);
    expect(s.options).toHaveLength(c.options.length);
    for (const o of c.options) {
      const entry = s.options.find((e) => e.startsWith(`${names(o).join(', ')} `) || e === names(o).join(', '));
      expect(entry, `${c.prog}: an entry for ${names(o).join(', ')}`).toBeDefined();
      const after = entry!.slice(names(o).join(', ').length);
      if (o.choices) expect(after.startsWith(` {${o.choices.join(',')}} `), `${o.long}: choices`).toBe(true);
      else if (takesValue(o)) expect(after.startsWith(` ${o.metavar} `), `${o.long}: metavar`).toBe(true);
      else if (o.kind === 'list') expect(after.startsWith(` [${o.metavar} ...] `), `${o.long}: metavar`).toBe(true);
      expect(entry).toContain(o.help);
      // What the help text adds after the option's own help: `(default: …; env: …)`.
      const extras = entry!.slice(entry!.indexOf(o.help) + o.help.length);
      const shownDefault = /^ \((?:.*; )?default: ([^;)]+)/.exec(extras)?.[1];
      for (const v of o.env ?? []) expect(extras, `${o.long}: env ${v}`).toMatch(new RegExp(`env: [^)]*\\b${escape(v)}\\b`));
      if (o.default === undefined) {
        expect(shownDefault, `${o.long}: no default in the table, none shown`).toBeUndefined();
      } else {
        // Shown as the operator would type it (4MB): the option's own parser must give the table's value back.
        expect(shownDefault, `${o.long}: default`).toBeDefined();
        expect(o.parse ? o.parse(shownDefault!) : shownDefault, `${o.long}: default`).toEqual(o.default);
      }
    }
  });

  it("keeps barman's usage line: every barman option in it, our extensions only in the option list", async () => {
    const { usage } = sections((await help(c)).stdout);
    const items = new Set(usage.slice(`usage: ${c.prog}`.length).split(/[\s[\]()|{}]+/).filter((w) => w.startsWith('-')));
    for (const o of c.options) {
      const first = o.short ?? o.long;
      if (o.extension) expect(items.has(first), `${o.long} is ours: not in the usage line`).toBe(false);
      else expect(items.has(first), `${first} in the usage line`).toBe(true);
    }
  });
});

describe('barman-cloud --help', () => {
  it('lists every command of the table with its description', async () => {
    const r = await runBin('barman-cloud', ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`usage: barman-cloud [-V] [--help] {${COMMANDS.map((c) => c.name).join(',')}} ...`);
    const listed = r.stdout.split('\n').filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim().split(/\s+/)[0]);
    expect(listed).toEqual(COMMANDS.map((c) => c.name));
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${escape(c.name)}\\s+${escape(c.description)}$`, 'm'));
  });

  it('says which commands have no barman-cloud-<command> executable', async () => {
    const r = await runBin('barman-cloud', ['--help']);
    const line = r.stdout.split('\n').find((l) => l.includes('is also installed under its barman-cloud-<command> name'));
    expect(line).toBeDefined();
    for (const c of COMMANDS) {
      if (c.umbrellaOnly) expect(line).toMatch(new RegExp(`\\b${escape(c.name)}\\b`));
      else expect(line).not.toMatch(new RegExp(`\\b${escape(c.name)}\\b`));
    }
  });
});

// Shell completions: the committed scripts under completions/ are exactly what
// `barman-cloud completion <shell>` prints, and real bash, zsh and fish, loading them, offer the
// umbrella's subcommands, every executable's options and the values of options with choices. Also:
// the command's usage errors, and the generator never loads on a WAL call.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS, SHELLS, type CommandSpec, type OptionSpec } from '../../src/cli/spec.ts';
import { ROOT } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { requireTool } from '../helpers/postgres.ts';
import { COMPLETION_FILES } from '../../scripts/generate.mjs';

const scriptPath = (shell: (typeof SHELLS)[number]): string => join(ROOT, 'completions', COMPLETION_FILES[shell]);
const names = (o: OptionSpec): string[] => [o.short, o.long, ...(o.aliases ?? [])].filter((n): n is string => !!n);
const valueWords = (o: OptionSpec): readonly string[] | undefined => o.choices ?? o.suggestions;
const PROVIDERS = COMMANDS.find((c) => c.name === 'wal-archive')!.options.find((o) => o.long === '--cloud-provider')!.choices!;
const WAL_COMMANDS = COMMANDS.filter((c) => c.name.startsWith('wal-')).map((c) => c.name);
/** How a command is typed: its own executable, or the umbrella and its name (both for a drop-in). */
const invocations = (c: CommandSpec): string[][] => [
  ...(c.umbrellaOnly ? [] : [[c.prog]]),
  ['barman-cloud', c.name],
];
const sorted = (words: Iterable<string>): string[] => [...new Set(words)].sort();
const available = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;

let scratch: string;
/** Holds one file (ca.pem) and one directory (spool), for file and directory completion. */
let files: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'bc-completion-'));
  files = join(scratch, 'files');
  mkdirSync(join(files, 'spool'), { recursive: true });
  writeFileSync(join(files, 'ca.pem'), '');
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('barman-cloud completion', () => {
  it.each(SHELLS.map((s) => [s]))('completions/ holds what `barman-cloud completion %s` prints', async (shell) => {
    const r = await runBin('barman-cloud', ['completion', shell]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const committed = readFileSync(scriptPath(shell), 'utf8');
    expect(
      r.stdout === committed,
      `completions/${COMPLETION_FILES[shell]} is not what \`barman-cloud completion ${shell}\` prints: ` +
        'regenerate the scripts with `npm run generate` and commit them',
    ).toBe(true);
  });

  it('answers a missing or unknown shell with an argparse usage error (exit 3)', async () => {
    const usage = `usage: barman-cloud completion [--help] {${SHELLS.join(',')}}\n`;
    const missing = await runBin('barman-cloud', ['completion']);
    expect(missing.code).toBe(3);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe(`${usage}barman-cloud completion: error: the following arguments are required: shell\n`);
    const unknown = await runBin('barman-cloud', ['completion', 'tcsh']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toBe(
      `${usage}barman-cloud completion: error: argument shell: invalid choice: 'tcsh' ` +
        `(choose from ${SHELLS.map((s) => `'${s}'`).join(', ')})\n`,
    );
    const extra = await runBin('barman-cloud', ['completion', 'bash', 'zsh']);
    expect(extra.code).toBe(3);
    expect(extra.stderr).toContain('error: unrecognized arguments: zsh');
    const version = await runBin('barman-cloud', ['completion', '--version']);
    expect(version.code).toBe(3);
    expect(version.stderr).toContain('error: unrecognized arguments: --version');
  });

  it('is loaded only when asked for: a WAL archive call never loads the generator', async () => {
    const marker = '_barman_cloud_words'; // a line of the bash script, so only in the generator's code
    const traced = async (bin: string, args: string[]) => {
      const trace = join(scratch, `modules-${Math.random().toString(36).slice(2)}.txt`);
      writeFileSync(trace, '');
      const r = await runBin(bin, args, {
        env: cleanEnv({ BC_TRACE_MODULES: trace }),
        nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')],
      });
      expect(r.code, r.stderr).toBe(0);
      const files = readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes('/dist/cli/'));
      return files.map((l) => readFileSync(l.startsWith('file:') ? fileURLToPath(l) : l, 'utf8'));
    };
    const wal = join(scratch, '000000010000000000000001');
    writeFileSync(wal, Buffer.alloc(64 * 1024, 7));
    const store = join(scratch, 'store');
    mkdirSync(store, { recursive: true });
    const archive = await traced('barman-cloud-wal-archive', [`file://${store}`, 'srv', wal]);
    expect(archive.length).toBeGreaterThan(0);
    expect(archive.some((code) => code.includes(marker))).toBe(false);
    const completion = await traced('barman-cloud', ['completion', 'bash']);
    expect(completion.some((code) => code.includes(marker))).toBe(true);
  });
});

// ---- bash ----------------------------------------------------------------------------------------

/**
 * Completes each case (the words typed so far, the last one being completed) in one real bash
 * (test/helpers/bash-complete.bash): it sources the committed script, looks up the function
 * registered for the first word with `complete -p`, and calls it with COMP_WORDS / COMP_CWORD set.
 */
function bashComplete(cases: string[][]): (string[] | 'unregistered')[] {
  // A sentinel last field keeps empty words (the word being completed is often empty).
  const input = cases.map((words) => `${[...words, 'END'].join('\x1f')}\n`).join('');
  const driver = join(ROOT, 'test', 'helpers', 'bash-complete.bash');
  const r = spawnSync('bash', ['--norc', '--noprofile', driver, scriptPath('bash'), files], { input, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  const lines = r.stdout.split('\n').slice(0, -1);
  expect(lines).toHaveLength(cases.length);
  return lines.map((l) => (l === '<<unregistered>>' ? 'unregistered' : l === '' ? [] : l.split('\x1f')));
}

describe.skipIf(requireTool('bash', available('bash')))('bash', () => {
  it('completes subcommands, options and provider names (the issue\'s examples)', () => {
    const [wal, cloud, providers, umbrellaProviders, all] = bashComplete([
      ['barman-cloud', 'wal-'],
      ['barman-cloud-wal-archive', '--cloud-'],
      ['barman-cloud-wal-archive', '--cloud-provider', ''],
      ['barman-cloud', 'wal-archive', '--cloud-provider', 'a'],
      ['barman-cloud', ''],
    ]);
    expect(wal).toEqual(WAL_COMMANDS);
    expect(cloud).toEqual(['--cloud-provider']);
    expect(providers).toEqual(PROVIDERS);
    expect(umbrellaProviders).toEqual(PROVIDERS.filter((p) => p.startsWith('a')));
    expect(all).toEqual(COMMANDS.map((c) => c.name));
  });

  it('registers barman-cloud and every drop-in executable, and no executable for umbrella-only commands', () => {
    const progs = ['barman-cloud', ...COMMANDS.filter((c) => !c.umbrellaOnly).map((c) => c.prog)];
    const umbrellaOnly = COMMANDS.filter((c) => c.umbrellaOnly).map((c) => `barman-cloud-${c.name}`);
    const results = bashComplete([...progs, ...umbrellaOnly].map((p) => [p, '--hel']));
    expect(results).toEqual([...progs.map(() => ['--help']), ...umbrellaOnly.map(() => 'unregistered')]);
  });

  it('offers every option name of every command, under both spellings of the command', () => {
    const cases = COMMANDS.flatMap((c) => invocations(c).map((words) => ({ c, words: [...words, '-'] })));
    const results = bashComplete(cases.map((x) => x.words));
    cases.forEach(({ c, words }, i) => {
      expect({ words, offered: sorted(results[i] as string[]) }).toEqual({ words, offered: sorted(c.options.flatMap(names)) });
    });
  });

  it('offers the values of every option with choices or usual values, as `--opt v` and `--opt=v`', () => {
    const cases: { words: string[]; expected: string[] }[] = [];
    for (const c of COMMANDS) {
      for (const o of c.options.filter(valueWords)) {
        for (const words of invocations(c)) {
          const expected = [...valueWords(o)!];
          for (const name of names(o)) cases.push({ words: [...words, name, ''], expected });
          // readline splits `--opt=` into `--opt` `=`: the candidates are the values alone.
          cases.push({ words: [...words, o.long, '=', ''], expected });
          cases.push({ words: [...words, 's3://b', o.long, '=', expected[0].slice(0, 1)], expected: expected.filter((w) => w.startsWith(expected[0][0])) });
        }
      }
      // Positionals with choices (`completion {bash,zsh,fish}`).
      for (const words of invocations(c)) {
        const index = c.positionals.findIndex((p) => p.choices);
        if (index >= 0) cases.push({ words: [...words, ...c.positionals.slice(0, index).map(() => 'x'), ''], expected: [...c.positionals[index].choices!] });
      }
    }
    expect(cases.map((x) => x.words)).toContainEqual(['barman-cloud', 'backup-keep', '--target', '']);
    const results = bashComplete(cases.map((x) => x.words));
    cases.forEach(({ words, expected }, i) => expect({ words, offered: results[i] }).toEqual({ words, offered: expected }));
  });

  it('completes files and directories where an option or a positional names one, and colon values', () => {
    const [ca, spool, walPath, restoreDir, afterUrl, kms] = bashComplete([
      ['barman-cloud-wal-archive', '--endpoint-ca', `${files}/c`],
      ['barman-cloud', 'wal-restore', '--spool-dir', `${files}/`],
      // `s3://b` as readline splits it at the colon.
      ['barman-cloud-wal-archive', '-z', 's3', ':', '//b', 'srv', `${files}/`],
      ['barman-cloud-restore', 's3://b', 'srv', 'latest', `${files}/`],
      ['barman-cloud-backup-list', '--cloud-provider', 'aws-s3', `${files}/`],
      ['barman-cloud-wal-archive', '-e', 'aws', ':', 'k'],
    ]);
    expect(ca).toEqual([`${files}/ca.pem`]);
    expect(spool).toEqual([`${files}/spool`]); // directories only
    expect(sorted(walPath as string[])).toEqual([`${files}/ca.pem`, `${files}/spool`]);
    expect(restoreDir).toEqual([`${files}/spool`]);
    expect(afterUrl).toEqual([]); // a URL: nothing to offer
    expect(kms).toEqual(['kms']); // `aws:` is already on the line
  });
});

// ---- zsh -----------------------------------------------------------------------------------------

/** zsh's own completion system in a pseudo-terminal (test/helpers/zsh-complete.zsh): lines → candidates. */
function zshComplete(lines: string[]): Map<string, string[]> {
  const r = spawnSync('zsh', ['-f', join(ROOT, 'test', 'helpers', 'zsh-complete.zsh'), join(ROOT, 'completions'), ...lines], {
    encoding: 'utf8', cwd: files, timeout: 60_000, env: { ...process.env, HOME: scratch },
  });
  expect(r.status, r.stderr).toBe(0);
  const out = new Map<string, string[]>();
  let current = '';
  for (const l of r.stdout.split('\n')) {
    if (l.startsWith('<<LINE>>')) out.set((current = l.slice(8)), []);
    else if (l.startsWith('<<HIT>>')) out.get(current)!.push(l.slice(7));
  }
  expect([...out.keys()]).toEqual(lines);
  return new Map([...out].map(([k, v]) => [k, sorted(v)]));
}

describe.skipIf(requireTool('zsh', available('zsh')))('zsh', () => {
  it('completes subcommands, options, choices and paths through compinit', () => {
    const dropIns = COMMANDS.filter((c) => !c.umbrellaOnly);
    const everyOption = [...dropIns.map((c) => `${c.prog} -`), ...COMMANDS.map((c) => `barman-cloud ${c.name} -`)];
    const got = zshComplete([
      'barman-cloud wal-',
      'barman-cloud-wal-archive --cloud-',
      'barman-cloud-wal-archive --cloud-provider ',
      'barman-cloud wal-archive --cloud-provider=',
      'barman-cloud completion ',
      'barman-cloud-backup-keep --target ',
      'barman-cloud-backup-list --format ',
      'barman-cloud-wal-archive -e ',
      `barman-cloud-wal-archive --endpoint-ca ${files}/c`,
      ...everyOption,
    ]);
    expect(got.get('barman-cloud wal-')).toEqual(sorted(WAL_COMMANDS));
    expect(got.get('barman-cloud-wal-archive --cloud-')).toEqual(['--cloud-provider']);
    expect(got.get('barman-cloud-wal-archive --cloud-provider ')).toEqual(sorted(PROVIDERS));
    expect(got.get('barman-cloud wal-archive --cloud-provider=')).toEqual(sorted(PROVIDERS));
    expect(got.get('barman-cloud completion ')).toEqual(sorted(SHELLS));
    expect(got.get('barman-cloud-backup-keep --target ')).toEqual(['full', 'standalone']);
    expect(got.get('barman-cloud-backup-list --format ')).toEqual(['console', 'json']);
    expect(got.get('barman-cloud-wal-archive -e ')).toEqual(['AES256', 'aws:kms']);
    expect(got.get(`barman-cloud-wal-archive --endpoint-ca ${files}/c`)).toEqual(['ca.pem']);
    for (const line of everyOption) {
      const c = COMMANDS.find((x) => line === `${x.prog} -` || line === `barman-cloud ${x.name} -`)!;
      expect({ line, offered: got.get(line) }).toEqual({ line, offered: sorted(c.options.flatMap(names)) });
    }
  });
});

// ---- fish ----------------------------------------------------------------------------------------

/** `complete -C` in a real fish that sourced the committed script: lines → candidates. */
function fishComplete(lines: string[]): Map<string, string[]> {
  const driver = 'source $argv[1]; for l in $argv[2..-1]; echo "<<LINE>>$l"; complete -C "$l"; end';
  const r = spawnSync('fish', ['--no-config', '-c', driver, scriptPath('fish'), ...lines], {
    encoding: 'utf8', cwd: files, env: { ...process.env, HOME: scratch, XDG_CONFIG_HOME: scratch, XDG_DATA_HOME: scratch },
  });
  expect(r.status, r.stderr).toBe(0);
  const out = new Map<string, string[]>();
  let current = '';
  for (const l of r.stdout.split('\n')) {
    if (l.startsWith('<<LINE>>')) out.set((current = l.slice(8)), []);
    else if (l) out.get(current)!.push(l.split('\t')[0]);
  }
  expect([...out.keys()]).toEqual(lines);
  return new Map([...out].map(([k, v]) => [k, sorted(v)]));
}

describe.skipIf(requireTool('fish', available('fish')))('fish', () => {
  it('completes subcommands, options, choices and paths', () => {
    const dropIns = COMMANDS.filter((c) => !c.umbrellaOnly);
    const everyOption = [...dropIns.map((c) => `${c.prog} --`), ...COMMANDS.map((c) => `barman-cloud ${c.name} --`)];
    const got = fishComplete([
      'barman-cloud wal-',
      'barman-cloud-wal-archive --cloud-',
      'barman-cloud-wal-archive --cloud-provider ',
      'barman-cloud wal-archive --cloud-provider ',
      'barman-cloud completion ',
      'barman-cloud-backup-keep --target ',
      'barman-cloud wal-archive --compression-level ',
      'barman-cloud-wal-archive -e ',
      `barman-cloud-wal-archive --endpoint-ca ${files}/c`,
      'barman-cloud-backup-list ',
      ...everyOption,
    ]);
    expect(got.get('barman-cloud wal-')).toEqual(sorted(WAL_COMMANDS));
    expect(got.get('barman-cloud-wal-archive --cloud-')).toEqual(['--cloud-provider']);
    expect(got.get('barman-cloud-wal-archive --cloud-provider ')).toEqual(sorted(PROVIDERS));
    expect(got.get('barman-cloud wal-archive --cloud-provider ')).toEqual(sorted(PROVIDERS));
    expect(got.get('barman-cloud completion ')).toEqual(sorted(SHELLS));
    expect(got.get('barman-cloud-backup-keep --target ')).toEqual(['full', 'standalone']);
    expect(got.get('barman-cloud wal-archive --compression-level ')).toEqual(['high', 'low', 'medium']);
    expect(got.get('barman-cloud-wal-archive -e ')).toEqual(['AES256', 'aws:kms']);
    expect(got.get(`barman-cloud-wal-archive --endpoint-ca ${files}/c`)).toEqual([`${files}/ca.pem`]);
    expect(got.get('barman-cloud-backup-list ')).toEqual([]); // URLs: no file names
    for (const line of everyOption) {
      const c = COMMANDS.find((x) => line === `${x.prog} --` || line === `barman-cloud ${x.name} --`)!;
      const longs = c.options.flatMap(names).filter((n) => n.startsWith('--'));
      expect({ line, offered: got.get(line) }).toEqual({ line, offered: sorted(longs) });
    }
  });
});

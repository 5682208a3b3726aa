// `barman-cloud doctor`: does PostgreSQL's archive_command send WAL to the store and server being
// checked? Pure: the command line is split as /bin/sh would (PostgreSQL runs it with `sh -c`), the
// wal-archive call is found, and its arguments are read with the same parser wal-archive uses.
import { basename } from 'node:path';
import { parseArgs } from '../parse.js';
import { commandByName, type CommonOptions } from '../spec.js';
import { parseStoreUrl, type ParsedUrl } from '../../storage/url.js';
import { fail, ok, warn, type CheckResult } from './report.js';

type CloudProvider = CommonOptions['cloud-provider'];

/**
 * Split a shell command line into simple commands (lists of words): quotes and backslashes are
 * resolved, `;`, `&&`, `||`, `|`, `&`, parentheses and newlines separate commands, redirections
 * (`2>>log`, `> /dev/null`, `2>&1`) and comments are dropped. Expansions (`$VAR`, `$(…)`) are left
 * as written: enough to find a program and its arguments, not a shell.
 */
export function splitShellCommands(line: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word = '';
  let inWord = false;
  let dropNextWord = false;
  const endWord = () => {
    if (inWord) {
      if (dropNextWord) dropNextWord = false;
      else words.push(word);
    }
    word = '';
    inWord = false;
  };
  const endCommand = () => {
    endWord();
    if (words.length) commands.push(words);
    words = [];
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      word += end < 0 ? line.slice(i + 1) : line.slice(i + 1, end);
      inWord = true;
      i = end < 0 ? line.length : end + 1;
    } else if (c === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length && '$`"\\\n'.includes(line[i + 1]!)) i++;
        word += line[i];
        i++;
      }
      inWord = true;
      i++;
    } else if (c === '\\') {
      if (i + 1 < line.length && line[i + 1] !== '\n') word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (c === '#' && !inWord) {
      const nl = line.indexOf('\n', i);
      i = nl < 0 ? line.length : nl;
    } else if (c === '>' || c === '<') {
      // A redirection: an fd number before it is not a word, and its target is dropped.
      if (inWord && /^\d+$/.test(word)) {
        word = '';
        inWord = false;
      } else {
        endWord();
      }
      while (i < line.length && '<>&|'.includes(line[i]!)) i++;
      dropNextWord = true;
    } else if (';&|()\n'.includes(c)) {
      endCommand();
      i++;
    } else if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  endCommand();
  return commands;
}

/** A call of wal-archive found in archive_command, with its arguments as PostgreSQL passes them. */
export interface WalArchiveCall {
  /** The program word as written: a path to barman-cloud-wal-archive, or `barman-cloud` (umbrella). */
  program: string;
  args: string[];
}

export type ArchiveCommandScan =
  | { kind: 'empty' }
  | { kind: 'wal-archive'; call: WalArchiveCall }
  /** Some other program: its name (basename), and what it is when we recognise it. */
  | { kind: 'other'; program: string; known?: 'cloudnative-pg' | 'barman-wal-archive' };

const isAssignment = (w: string) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(w);

/** Find the barman-cloud-wal-archive call (ours or barman's, or `barman-cloud wal-archive`). */
export function scanArchiveCommand(archiveCommand: string): ArchiveCommandScan {
  const commands = splitShellCommands(archiveCommand);
  if (commands.length === 0) return { kind: 'empty' };
  for (const words of commands) {
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      if (w.startsWith('-') || isAssignment(w)) continue;
      const name = basename(w);
      if (name === 'barman-cloud-wal-archive') return { kind: 'wal-archive', call: { program: w, args: words.slice(i + 1) } };
      if (name === 'barman-cloud' && words[i + 1] === 'wal-archive') {
        return { kind: 'wal-archive', call: { program: w, args: words.slice(i + 2) } };
      }
    }
  }
  const first = commands[0]!.find((w) => !isAssignment(w) && w !== 'exec' && w !== 'env') ?? commands[0]![0]!;
  const program = basename(first);
  const all = commands.flat();
  if (all.some((w) => basename(w) === 'barman-wal-archive')) return { kind: 'other', program: 'barman-wal-archive', known: 'barman-wal-archive' };
  if (program === 'manager' && all.includes('wal-archive')) return { kind: 'other', program, known: 'cloudnative-pg' };
  return { kind: 'other', program };
}

/** What a wal-archive call's arguments say, read with wal-archive's own parser. */
export type WalArchiveArgs =
  | {
      valid: true;
      destinationUrl: string;
      serverName: string;
      walPath?: string;
      cloudProvider: CloudProvider;
      endpointUrl?: string;
    }
  | { valid: false; error: string };

export function parseWalArchiveArgs(args: string[]): WalArchiveArgs {
  try {
    const outcome = parseArgs(commandByName('wal-archive')!, args);
    if (outcome.kind !== 'args') return { valid: false, error: `it asks for --${outcome.kind} instead of archiving` };
    const { positionals, options } = outcome.args;
    return {
      valid: true,
      destinationUrl: positionals.destination_url,
      serverName: positionals.server_name,
      walPath: positionals.wal_path,
      cloudProvider: options['cloud-provider'],
      endpointUrl: options['endpoint-url'],
    };
  } catch (e) {
    return { valid: false, error: (e as Error).message };
  }
}

/** The store and server doctor was asked to check. */
export interface ArchiveTarget {
  destinationUrl: string;
  serverName: string;
  cloudProvider: CloudProvider;
  endpointUrl?: string;
}

interface Place {
  provider: string;
  bucket: string;
  path: string;
  account?: string;
}

async function place(url: string, provider: CloudProvider): Promise<Place | null> {
  let parsed: ParsedUrl;
  try {
    parsed = await parseStoreUrl(url, provider);
  } catch {
    return null;
  }
  // `s3://b/p` and `s3://b/p/` name the same keys (joinKey does not double the slash).
  return { provider: parsed.provider, bucket: parsed.bucket, path: parsed.path.replace(/^\/+|\/+$/g, ''), account: parsed.accountUrl };
}

const trimSlash = (s: string | undefined) => s?.replace(/\/+$/, '');

/** How the call's destination differs from the target, in words; empty when it is the same place. */
export async function targetDifferences(args: Extract<WalArchiveArgs, { valid: true }>, target: ArchiveTarget): Promise<string[]> {
  const out: string[] = [];
  const theirs = await place(args.destinationUrl, args.cloudProvider);
  const ours = await place(target.destinationUrl, target.cloudProvider);
  if (!theirs) {
    out.push(`its destination ${args.destinationUrl} is not a valid URL for ${args.cloudProvider}`);
  } else if (ours) {
    if (theirs.provider !== ours.provider) out.push(`it uses ${theirs.provider}, not ${ours.provider}`);
    else if (theirs.bucket !== ours.bucket || theirs.path !== ours.path || theirs.account !== ours.account) {
      out.push(`it archives to ${args.destinationUrl}, not ${target.destinationUrl}`);
    }
  }
  if (args.serverName !== target.serverName) out.push(`its server name is ${args.serverName}, not ${target.serverName}`);
  // Without --endpoint-url in archive_command the endpoint comes from PostgreSQL's environment
  // (AWS_ENDPOINT_URL), which is not visible here: compare only what is written.
  if (ours?.provider === 'aws-s3' && theirs?.provider === 'aws-s3' && args.endpointUrl !== undefined &&
    trimSlash(args.endpointUrl) !== trimSlash(target.endpointUrl)) {
    out.push(`its endpoint is ${args.endpointUrl ?? 'the AWS default'}, not ${target.endpointUrl ?? 'the AWS default'}`);
  }
  return out;
}

export interface ArchiveSettings {
  /** off | on | always */
  archiveMode: string;
  archiveCommand: string;
  /** PostgreSQL 15+: a non-empty archive_library replaces archive_command. */
  archiveLibrary?: string;
}

/**
 * The archive_command check: FAIL when archiving is on with nothing to run or with arguments
 * wal-archive refuses; warn when it sends WAL somewhere else or through another tool.
 */
export async function checkArchiveCommand(settings: ArchiveSettings, target: ArchiveTarget): Promise<CheckResult> {
  const name = 'archive_command';
  const archiving = settings.archiveMode !== 'off';
  if (settings.archiveLibrary) {
    return warn(name, `archive_library = ${settings.archiveLibrary} is set, so PostgreSQL archives through that library and ignores archive_command`);
  }
  const scan = scanArchiveCommand(settings.archiveCommand);
  if (scan.kind === 'empty') {
    return archiving
      ? fail(name, 'empty while archive_mode is on: WAL files pile up in pg_wal until it is set; ' +
          `set it to 'barman-cloud-wal-archive … ${target.destinationUrl} ${target.serverName} %p' and reload`)
      : warn(name, 'empty');
  }
  if (scan.kind === 'other') {
    if (scan.known === 'cloudnative-pg') {
      return warn(name, 'runs the CloudNativePG manager, which archives with the settings of the cluster\'s ' +
        'ObjectStore; compare its destinationPath and serverName with what was checked here');
    }
    if (scan.known === 'barman-wal-archive') {
      return warn(name, `sends WAL to a Barman server with barman-wal-archive, not to ${target.destinationUrl}`);
    }
    return warn(name, `runs ${scan.program}, not barman-cloud-wal-archive: WAL may not reach ${target.destinationUrl}`);
  }
  const args = parseWalArchiveArgs(scan.call.args);
  const via = basename(scan.call.program) === 'barman-cloud' ? `${scan.call.program} wal-archive` : scan.call.program;
  if (!args.valid) {
    return fail(name, `calls ${via} with arguments it refuses (${args.error}): every WAL file would fail to archive`);
  }
  if (args.walPath === undefined) {
    return fail(name, `calls ${via} without %p: every WAL file would fail to archive; add %p as its last argument`);
  }
  const differences = await targetDifferences(args, target);
  if (differences.length) {
    return warn(name, `calls ${via} but ${differences.join('; ')}: the WAL archive checked here is not the one PostgreSQL fills`);
  }
  if (!args.walPath.includes('%p')) {
    return warn(name, `calls ${via} with ${args.walPath} instead of %p`);
  }
  const note = archiving ? '' : ' (but archive_mode is off, so it is never run)';
  return ok(name, `calls ${via} with ${args.destinationUrl} ${args.serverName} %p${note}`);
}

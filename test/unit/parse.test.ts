import { describe, it, expect } from 'vitest';
import { parseArgs, normalizeArgv, usage } from '../../src/cli/parse.ts';
import { commandByName, type CommandName } from '../../src/cli/spec.ts';
import { parseCompressionLevel, parseSize } from '../../src/cli/types.ts';
import { resolveLevel } from '../../src/compression/index.ts';
import { CliError } from '../../src/errors.ts';

const spec = <N extends CommandName>(n: N) => commandByName(n);
const args = <N extends CommandName>(n: N, argv: string[]) => {
  const o = parseArgs(spec(n), argv);
  if (o.kind !== 'args') throw new Error(`expected args, got ${o.kind}`);
  return o.args;
};

describe('size arguments (docs/format.md#sizes)', () => {
  it.each([
    ['1GiB', 1_000_000_000], ['100GB', 107_374_182_400], ['4MB', 4_194_304], ['1.5GB', 1_610_612_736],
    ['1234B', 1234], ['1234', 1234], ['5mb', 5_242_880], ['64KiB', 64_000], ['2TB', 2 * 1024 ** 4],
  ])('%s = %d bytes', (raw, bytes) => expect(parseSize(raw)).toBe(bytes));
  it.each(['0', '0.5', '-1', 'MB', '5XB', '1.2.3', ''])('rejects %j', (raw) => expect(() => parseSize(raw)).toThrow());
});

describe('wal-restore --parallel (docs/commands/wal-restore.md#prefetch)', () => {
  it('takes up to 1024 segments; more is a usage error naming the limit, not a window built without end', () => {
    const base = ['s3://b/p', 'srv', '000000010000000000000001', '/tmp/x'];
    expect(args('wal-restore', ['--parallel', '1024', ...base]).options.parallel).toBe(1024);
    for (const raw of ['1025', '100000000', `1${'0'.repeat(400)}`]) {
      expect(() => parseArgs(spec('wal-restore'), ['--parallel', raw, ...base]), raw).toThrow(/argument --parallel: .* is more than 1024 segments/);
    }
  });
});

describe('--compression-level (docs/format.md#compression)', () => {
  it('an integer of any length is clamped to the codec\'s range, as Python\'s int is, not refused', () => {
    const huge = `1${'0'.repeat(400)}`; // Number() of it is Infinity
    for (const [raw, codec, level] of [[huge, 'gzip', 9], [`-${huge}`, 'zstd', -22], [`-${huge}`, 'gzip', 1], ['12345678901234567890', 'lz4', 16]] as const) {
      const parsed = parseCompressionLevel(raw);
      expect(Number.isInteger(parsed), raw).toBe(true);
      expect(resolveLevel(codec, parsed)).toBe(level);
    }
    expect(parseCompressionLevel('high')).toBe('high');
    expect(() => parseCompressionLevel('1e3')).toThrow();
  });
});

describe('argparse-compatible parsing', () => {
  it('counts -v and -vv, and takes options anywhere', () => {
    const a = args('backup-list', ['s3://b/p', '-vv', 'srv', '--format=json']);
    expect(a.options.verbose).toBe(2);
    expect(a.options.format).toBe('json');
    expect(a.positionals).toEqual({ source_url: 's3://b/p', server_name: 'srv' });
  });

  it('expands unique prefixes and aliases to the canonical flag', () => {
    expect(normalizeArgv(spec('backup-list'), ['--cloud-prov=azure-blob-storage', '--endp', 'http://x', '--prof', 'p'])).toEqual([
      '--cloud-provider=azure-blob-storage', '--endpoint-url', 'http://x', '--aws-profile', 'p',
    ]);
    const a = args('backup-list', ['--credential', 'managed-identity', 's3://b', 'srv']);
    expect(a.options['azure-credential']).toBe('managed-identity');
    // An option value that looks like a flag prefix is left alone.
    expect(normalizeArgv(spec('backup-list'), ['-P', '--cl'])).toEqual(['-P', '--cl']);
  });

  it('prefers barman flags over our extensions when abbreviating', () => {
    // --endpoint matches --endpoint-url (barman) and --endpoint-ca (ours): barman's wins.
    expect(normalizeArgv(spec('backup-list'), ['--endpoint', 'x'])).toEqual(['--endpoint-url', 'x']);
    expect(() => normalizeArgv(spec('backup'), ['--azure', 'x'])).toThrow(/ambiguous option/);
  });

  it('gives --tags every following word (nargs="*") and --tag one pair per use', () => {
    const a = args('wal-archive', ['s3://b', 'srv', 'w', '--tags', 'a,b', 'c,d']);
    expect(a.options.tags).toEqual(['a,b', 'c,d']);
    const b = args('wal-archive', ['--tag', 'a,b', '--tag', 'c,d', 's3://b', 'srv', 'w']);
    expect(b.options.tag).toEqual(['a,b', 'c,d']);
  });

  it('applies defaults and converts values', () => {
    const a = args('wal-archive', ['s3://b', 'srv', 'w']);
    expect(a.options['cloud-provider']).toBe('aws-s3');
    expect(a.options['max-block-size']).toBe(4 * 1024 * 1024);
    expect(a.options['max-single-put-size']).toBe(64 * 1024 * 1024);
    expect(a.options.gzip).toBe(false);
    expect(a.options.quiet).toBe(0);
    const b = args('backup', ['-S', '1GiB', '-J', '4', 's3://b', 'srv']);
    expect(b.options['max-archive-size']).toBe(1e9);
    expect(b.options.jobs).toBe(4);
    expect(b.options.dbname).toBe('postgres');
  });

  it('answers --help and --version before anything else, like argparse actions', () => {
    expect(parseArgs(spec('wal-restore'), ['--bogus', '--version']).kind).toBe('version');
    expect(parseArgs(spec('wal-restore'), ['--help', '--bogus']).kind).toBe('help');
    expect(parseArgs(spec('wal-restore'), ['-vV']).kind).toBe('version');
    // The value of -P is not an action.
    expect(() => parseArgs(spec('wal-restore'), ['-P', '--version'])).toThrow(CliError);
  });

  it('keeps the usage line to barman flags, wrapped at 100 columns', () => {
    const u = usage(spec('backup-keep'));
    expect(u).toMatch(/^usage: barman-cloud-backup-keep /);
    expect(u).toContain('(-r | -s | --target {full,standalone})');
    expect(u).not.toContain('--s3-region');
    for (const line of u.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });
});

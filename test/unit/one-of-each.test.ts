// The "one of each" rules of docs/architecture.md#one-owner-per-concern, checked on the source text:
// one logger (src/log.ts), one error hierarchy (src/errors.ts), one size parser (src/cli/types.ts)
// and one reader of counts from the environment (src/cli/store.ts), one retry policy
// (src/storage/retry.ts, its numbers in src/storage/config.ts). Each exception below says why it is
// one; a new one must be added here with its reason, or folded into the shared module.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

const SRC = join(ROOT, 'src');
const files = (readdirSync(SRC, { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ path: `src/${f}`, text: readFileSync(join(SRC, f), 'utf8') }));
/** Code without comments, so that a comment may name what the code must not do. */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '').replace(/\s\/\/ .*$/gm, '');
/** `path: line` for every line of code matching `re`. */
const hits = (re: RegExp, only: (path: string) => boolean = () => true) =>
  files.filter((f) => only(f.path)).flatMap((f) => code(f.text).split('\n').filter((l) => re.test(l)).map((l) => `${f.path}: ${l.trim()}`));
/** Hits not covered by an exception, matched on the file and a fragment of the line. */
const outside = (found: string[], exceptions: readonly (readonly [string, string, string])[]) =>
  found.filter((h) => !exceptions.some(([path, fragment]) => h.startsWith(`${path}: `) && h.includes(fragment)));

describe('one of each (docs/architecture.md#one-owner-per-concern)', () => {
  it('one logger: nothing writes to stderr or stdout but src/log.ts and the places listed', () => {
    const exceptions = [
      ['src/cli/main.ts', 'process.stdout.write', 'the command\'s output'],
      ['src/cli/main.ts', 'process.stderr.write', 'argparse usage errors (docs/format.md#arguments): no log prefix'],
      ['src/cli/umbrella.ts', 'process.stdout.write', 'the umbrella\'s help and version'],
      ['src/cli/umbrella.ts', 'process.stderr.write', 'argparse usage errors, as main.ts'],
      ['src/cli/run.ts', 'process.stdout.write(`${spec.prog} ', '--version'],
      ['src/cli/run.ts', 'process.stderr.write(`${redact(', 'the stack of what escaped main(), redacted: the logger may be what failed'],
      ['src/cli/launch.ts', 'process.stdout.write(`${commandByName(name)!.prog} ', '--version, answered by the launcher'],
      ['src/cli/progress.ts', 'stream: process.stderr', 'the progress spinner, on a terminal only'],
    ] as const;
    const found = hits(/\bconsole\.|process\.std(err|out)\.write\b|stream: process\.std(err|out)\b/, (p) => p !== 'src/log.ts');
    expect(outside(found, exceptions)).toEqual([]);
    // Each exception still exists: a stale one would let a new write through unseen.
    for (const [path, fragment] of exceptions) expect(found.some((h) => h.startsWith(`${path}: `) && h.includes(fragment)), `${path}: ${fragment}`).toBe(true);
  });

  it('one error hierarchy: a plain Error is thrown only where listed, none whose message reaches the user as is', () => {
    const exceptions = [
      // Invariants of our own code: a bug if ever seen, exit 4 with the stack at DEBUG.
      ['src/catalog/format.ts', "new Error('unreachable')", 'invariant'],
      ['src/catalog/python-literal.ts', 'cannot format', 'invariant: float repr of a finite number'],
      ['src/catalog/python-literal.ts', 'keys must be str', "Python's own TypeError text, for values we built"],
      ['src/catalog/python-literal.ts', 'is not JSON serializable', "Python's own TypeError text, for values we built"],
      ['src/compression/byte-queue.ts', 'new RangeError(`ByteQueue.', 'invariant'],
      ['src/compression/index.ts', 'invalid compression level', 'invariant: the parser gave an integer'],
      ['src/compression/index.ts', 'unknown codec', 'invariant: names come from the table'],
      ['src/compression/zstd-frame.ts', 'zstd compressor wrote no frame', 'invariant of libzstd'],
      ['src/compression/bzip2-js.ts', 'bzip2', 'invariants of the pure-JS encoder'],
      ['src/backup/exclude.ts', 'empty exclusion rule', 'invariant: rules are our table'],
      ['src/cli/fast-path.ts', 'the shell part of', 'generator invariant (scripts/generate.mjs)'],
      ['src/cli/completion.ts', 'completion: unsupported word', 'generator invariant'],
      ['src/cli/main.ts', 'unknown command', 'invariant: names come from the table'],
      ['src/cli/encryption.ts', 'the key file loaders accepted a directory', 'code-cache warm-up only'],
      ['src/encryption/age.ts', 'age round trip failed', 'code-cache warm-up only'],
      ['src/encryption/age.ts', "new Error('not X25519')", 'caught at once and thrown as EncryptionKeyError'],
      // Carriers whose message the caller wraps in a class of the hierarchy.
      ['src/backup/tar-end.ts', 'new Error(late)', 'restore and verify name the part (restore.ts damagedPart)'],
      ['src/backup/extract.ts', 'new Error(unended)', 'restore names the part'],
      ['src/backup/extract.ts', 'not a PostgreSQL control file', 'restore names the part'],
      ['src/compression/bzip2.ts', 'no bzip2 program on PATH', "only when a caller forces the program (tests): src/ asks for 'auto'"],
      // Storage: errors shaped like the SDK's or Node's, classified by each driver into StorageError's classes.
      ['src/storage/gcs/gcs.ts', "new Error('aborted')", 'the abort reason when the signal gave none'],
      ['src/storage/azure/azure.ts', 'new Error(clean(e.message))', 'a copy of the SDK error with secrets cleaned, classified after'],
      ['src/storage/azure/azure.ts', "new Error('upload aborted')", 'the abort reason when the signal gave none'],
      ['src/storage/s3/container-credentials.ts', 'no answer within', 'caught by the fetch loop, thrown as AccessDeniedError'],
      ['src/storage/s3/s3-lean.ts', 'an aws-chunked body is signed chunk by chunk', 'invariant'],
      ['src/storage/s3/s3-lean.ts', 'the lean S3 client needs static or container credentials', 'invariant: the provider chose the lean client'],
      ['src/storage/s3/s3.ts', 'No retry token available', "the AWS SDK's retry-strategy contract: the SDK then throws the request's error"],
      ['src/errors.ts', 'new Error(message)', 'errorOfKind: a kind from outside the hierarchy stays plain'],
    ] as const;
    const found = hits(/new (Type|Range)?Error\(/)
      // Idioms that only give a non-Error value the shape of one, or give an Error the code a driver classifies by.
      .filter((h) => !/instanceof Error \? \w+ : new Error\(String\(|Object\.assign\(new Error\(/.test(h));
    expect(outside(found, exceptions)).toEqual([]);
    for (const [path, fragment] of exceptions) expect(found.some((h) => h.startsWith(`${path}: `) && h.includes(fragment)), `${path}: ${fragment}`).toBe(true);
    // Error classes of their own extend the hierarchy, but for these, each caught by its own module
    // (ArgumentTypeError: the parser rethrows it as a usage error; PyLiteralError, FrameWalkError: as
    // a GeneralError naming the file; CopiesFound: the pre-check's verdict, never thrown out of archive.ts).
    const ownClasses = hits(/class \w+ extends (Type|Range)?Error\b/, (p) => p !== 'src/errors.ts');
    expect(ownClasses.map((h) => h.replace(/ extends.*/, ''))).toEqual([
      'src/catalog/python-literal.ts: class PyLiteralError',
      'src/cli/types.ts: export class ArgumentTypeError',
      'src/compression/zstd-frame.ts: export class FrameWalkError',
      'src/wal/archive.ts: class CopiesFound',
    ]);
  });

  it('one size parser and one reader of counts from the environment', () => {
    // A regular expression for a size unit (k, M, G…, B, iB) outside parseSize.
    expect(hits(/\/.*(\[[kmgtpezy]{3,}|\[[KMGTPEZY]{3,}|\(i\?\)b|[KM]iB\|).*\/[gimsuy]*[.,;)]/, (p) => p !== 'src/cli/types.ts')).toEqual([]);
    // In src/cli (the only layer that reads the environment), a file that reads a variable and also
    // turns text into a number: only the one reader, positiveIntegerFromEnv in store.ts.
    const parsesEnv = files
      .filter((f) => f.path.startsWith('src/cli/') && /\benv(\.[A-Z_]+|\[)/.test(code(f.text)) && /\b(Number|parseInt|parseFloat)\(/.test(code(f.text)))
      .map((f) => f.path);
    expect(parsesEnv).toEqual(['src/cli/store.ts']);
  });

  it('one retry policy: every retry loop waits with pauseBeforeRetry, and its numbers live in storage/config.ts', () => {
    const loops = files.filter((f) => /for \(let attempt\b/.test(code(f.text))).map((f) => f.path);
    const lockTakeovers = ['src/wal/async.ts', 'src/wal/spool.ts']; // a stale lock removed and the O_EXCL create tried once more: no back-off to wait
    const withoutPolicy = loops.filter((p) => !lockTakeovers.includes(p) && !/\bpauseBeforeRetry\(/.test(code(files.find((f) => f.path === p)!.text)));
    expect(withoutPolicy).toEqual([]);
    expect(loops).toEqual(expect.arrayContaining(lockTakeovers));
    expect(hits(/\b(maxAttempts|baseDelayMs|maxDelayMs)\s*:\s*\d/, (p) => p !== 'src/storage/config.ts')).toEqual([]);
  });
});

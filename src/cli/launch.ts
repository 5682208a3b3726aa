// The executables' first step, built as CommonJS (dist/cli/launch.cjs): `--version` is answered
// here without starting Node's ES module loader (~10 ms per process, measured), because the
// operator probes `--version` before every call (docs/compatibility.md#cloudnativepg-plugin-or-in-tree). The WAL commands go on to one
// CommonJS bundle (run.cjs) compiled with V8's code cache made by the build; every other command to
// the ESM bundle (run.js).
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { earlyAction } from './early.js';
import { ASYNC_WORKER_ENV, BARMAN_CONTRACT_VERSION, commandByName, type CommandName } from './spec.js';

type RunModule = typeof import('./run.js');

/** The V8 flags of a one-shot WAL call (below); its code cache is made under the same flags. */
const WAL_CALL_FLAGS = '--max-opt=1 --liftoff-only';
/** Made by scripts/build.mjs beside the bundle it belongs to; never written at run time. */
export const WAL_CODE_CACHE = 'run.cjs.v8-cache';

/**
 * A one-shot WAL call lives well under a second and runs its bulk work in native code (hashing,
 * codecs, sockets), yet V8's optimizing compiler still started on Node's module loading code, and
 * then on the WebAssembly xxHash of lz4 and zstd (native since): its code pages cost ~4 MB
 * (JavaScript) and ~2.7 MB (WebAssembly) of a call's 64 MB peak RSS budget (issue 14; measured on
 * Node 20). Set before the bundle loads; the --async worker, which runs for long,
 * keeps every tier.
 */
function limitTiersOfWalCall(name: CommandName | 'umbrella'): boolean {
  if ((name !== 'wal-archive' && name !== 'wal-restore') || process.env[ASYNC_WORKER_ENV]) return false;
  loadBuiltinsBeforeFlags(name, process.argv.slice(2)); // not for --version: answered before (launch)
  setWalCallFlags();
  smallPagesForNativeAllocators();
  poolNoWiderThanCores();
  return true;
}

/**
 * libuv starts its thread pool (4 threads by default) on first use, reading UV_THREADPOOL_SIZE
 * then, which is after this point. An lz4 segment is compressed there, and each thread that
 * compresses keeps its own allocator pages: on fewer than 4 cores, the threads beyond the cores
 * added ~1 MB of peak RSS and no speed (issue 14). A value the user set is kept.
 */
function poolNoWiderThanCores(): void {
  if (process.env.UV_THREADPOOL_SIZE !== undefined) return;
  const cores = (require('node:os') as typeof import('node:os')).availableParallelism();
  if (cores < 4) process.env.UV_THREADPOOL_SIZE = String(cores);
}

/**
 * The Rust codecs and hashes (lz4-napi, snappy, @node-rs/crc32 and xxhash) each link their own
 * mimalloc, which asks the kernel for transparent huge pages on its first 32 MiB segment: the
 * first small allocation of each then made a whole 2 MiB page resident, 2 MB per module loaded,
 * ~4 MB of a one-shot WAL call's 64 MB (issue 14; measured on lz4, snappy and zstd calls). mimalloc
 * reads these variables when its module is loaded, which is after this point; a value the user
 * set is kept. The --async worker started by such a call inherits them (harmless: it moves a few
 * segments at a time too).
 */
function smallPagesForNativeAllocators(): void {
  process.env.MIMALLOC_ALLOW_LARGE_OS_PAGES ??= '0';
  process.env.MIMALLOC_ALLOW_THP ??= '0';
}

/**
 * Node's modules that every one-shot WAL call loads: the launcher, the bundle's module level, the
 * lean HTTP client, and node:crypto, which SigV4 and the SDKs use, and the directory store and
 * wal-restore for their temp files' random names.
 */
const WAL_CALL_BUILTINS = ['node:os', 'node:vm', 'node:module', 'node:net', 'node:timers/promises', 'node:crypto'];

/**
 * Node compiles its own modules from a code cache built into its binary, which V8 accepts only
 * under the flags it was made with: once setWalCallFlags() has changed them, each builtin loaded
 * after is compiled from its source, at about twice the CPU (net, crypto, os, vm, module,
 * timers/promises: ~8 ms of an S3 call's; docs/benchmarks-history.md, "One-shot WAL calls, twelfth
 * session"). So the ones a call will load anyway are loaded first: node:fs/promises (and the
 * modules it brings) for wal-restore, which writes its file through it, and for the directory
 * store (docs/benchmarks-history.md, "Node's own modules compiled after the flags").
 */
function loadBuiltinsBeforeFlags(name: CommandName, argv: string[]): void {
  for (const id of WAL_CALL_BUILTINS) require(id);
  if (name === 'wal-restore' || argv.some((a) => /^file:\/\//i.test(a))) require('node:fs/promises');
}

function setWalCallFlags(): void {
  // Flags of V8 versions we know (an unknown flag would be an error line on stderr).
  if (['11', '12'].includes(process.versions.v8.split('.')[0]!)) require('node:v8').setFlagsFromString(WAL_CALL_FLAGS);
}

const debug = require('node:util').debuglog('barman_cloud_launch') as (message: string) => void;

/**
 * The code cache, if it can be believed: a regular file owned by the owner of the bundle and
 * writable by nobody else (whoever can write it could run code as us), made for these very bundle
 * bytes (V8's own check compares only the source's length). It opens with a copy of the bundle it
 * was made for, compared byte for byte: as strict as a digest and ~2 ms of CPU cheaper per call
 * than hashing the ~0.8 MB with SHA-256, which also needed node:crypto loaded. V8 refuses one made
 * for another V8 version or other flags (script.cachedDataRejected).
 */
function readCodeCache(bundleBytes: Buffer): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(`${__dirname}/${WAL_CODE_CACHE}`, 'r');
  } catch {
    debug('no code cache');
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== statSync(walBundle()).uid || (st.mode & 0o022) !== 0) {
      debug('code cache ignored: not owned by the bundle\'s owner alone');
      return undefined;
    }
    const made = bundleBytes.length;
    if (st.size <= made || !headIs(fd, bundleBytes)) {
      debug('code cache ignored: made for another bundle');
      return undefined;
    }
    return readExactly(fd, made, st.size - made);
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the file starts with these bytes, read through a small buffer: the copy is not kept, so a
 * call's peak memory does not grow by the bundle's size (issue 14's 64 MB budget).
 */
function headIs(fd: number, bytes: Buffer): boolean {
  const piece = Buffer.allocUnsafe(64 * 1024);
  for (let at = 0; at < bytes.length; ) {
    const n = readSync(fd, piece, 0, Math.min(piece.length, bytes.length - at), at);
    if (n === 0 || !piece.subarray(0, n).equals(bytes.subarray(at, at + n))) return false;
    at += n;
  }
  return true;
}

function readExactly(fd: number, position: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let at = 0; at < length; ) {
    const n = readSync(fd, out, at, length - at, position + at);
    if (n === 0) return out.subarray(0, at);
    at += n;
  }
  return out;
}

/** The WAL commands' CommonJS bundle, beside this launcher. */
function walBundle(): string {
  return `${__dirname}/run.cjs`;
}

/**
 * The bundle's import() calls, which scripts/build.mjs renames to this parameter: code compiled by
 * vm has no import() of its own on Node 20 once it comes from a code cache ("A dynamic import
 * callback was not specified"), so the launcher's own import() serves them. Specifiers are
 * packages and builtins, resolved from dist/cli/ either way.
 */
const IMPORT_PARAMETER = '__importExternal';

/**
 * What scripts/build.mjs writes around run.cjs, which is then one function expression in ASCII:
 * the launcher compiles the file's text as it is. Wrapping it here made V8 keep two copies of the
 * ~0.8 MB source for the call's lifetime (the joined string and the file's, dead but in the large
 * object space, which only a full collection frees; issue 14).
 */
export const WAL_BUNDLE_HEAD = `(function (exports, require, module, __filename, __dirname, ${IMPORT_PARAMETER}) {`;
export const WAL_BUNDLE_TAIL = '\n})';

/** Compiles run.cjs as require() would, with the extra parameter, optionally from a code cache. */
function compileWalBundle(bundleBytes: Buffer, cachedData?: Buffer): { script: import('node:vm').Script; exports: RunModule } {
  const bundle = walBundle();
  const { Script } = require('node:vm') as typeof import('node:vm');
  const { createRequire } = require('node:module') as typeof import('node:module');
  // ASCII (the build makes it so): decoded byte for byte into a one-byte string.
  const source = bundleBytes.toString('latin1');
  const script = new Script(source, { filename: bundle, cachedData });
  const module = { exports: {} as RunModule };
  const importExternal = (specifier: string): Promise<unknown> => import(specifier);
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(bundle), module, bundle, __dirname, importExternal);
  return { script, exports: module.exports };
}

/**
 * Loads the WAL commands' CommonJS bundle: one file, no ES module loader, and, for a one-shot
 * call, compiled from V8's code cache instead of parsed (docs/benchmarks-history.md, "One-shot WAL
 * profile"). The --async worker runs under other flags, which the cache would not match.
 */
function loadWalBundle(useCache: boolean): RunModule {
  const bundleBytes = readFileSync(walBundle());
  const cachedData = useCache ? readCodeCache(bundleBytes) : undefined;
  const { script, exports } = compileWalBundle(bundleBytes, cachedData);
  if (cachedData) debug(script.cachedDataRejected ? 'code cache rejected by V8' : 'code cache accepted');
  return exports;
}

/**
 * For scripts/build.mjs, run in a fresh `node` with no options: V8's code cache of run.cjs,
 * compiled and initialised under the flags of a WAL call. V8 caches only the functions compiled so
 * far, and the encryption code is compiled on first use: it is run once in memory first.
 */
export async function makeWalCodeCache(): Promise<Buffer> {
  setWalCallFlags();
  const bundleBytes = readFileSync(walBundle());
  const { script, exports } = compileWalBundle(bundleBytes);
  await exports.exerciseForCodeCache();
  return Buffer.concat([bundleBytes, script.createCachedData()]);
}

export function launch(name: CommandName | 'umbrella'): void {
  const argv = process.argv.slice(2);
  if (name !== 'umbrella' && earlyAction(commandByName(name)!, argv) === 'version') {
    process.stdout.write(`${commandByName(name)!.prog} ${BARMAN_CONTRACT_VERSION}\n`);
    process.exitCode = 0;
    return;
  }
  if (name === 'wal-archive' || name === 'wal-restore') {
    void loadWalBundle(limitTiersOfWalCall(name)).runCommand(name);
    return;
  }
  // The ESM bundle sits beside this file once built.
  const run = import(`${__dirname}/run.js`) as Promise<RunModule>;
  void run.then((m) => (name === 'umbrella' ? m.runUmbrella() : m.runCommand(name)));
}

// barman-cloud-wal-archive and barman-cloud-wal-restore (docs/format.md#wal-archive, #wal-restore).
// Latency matters most here: the spool fast paths run before any store SDK or codec is loaded.
import type { ChildProcess } from 'node:child_process';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, EXIT, OperationError } from '../../errors.js';
import { log } from '../../log.js';
import { ServerLayout } from '../../catalog/layout.js';
import { resolveLevel, type CodecName } from '../../compression/index.js';
import { isSegmentName, isWalName } from '../../xlog.js';
import { archiveWal, readWalFile } from '../../wal/archive.js';
import { ArchiveSpool, RestoreSpool, SPOOL_MAX_AGE_MS, defaultSpoolRoot, trustedSpoolDir } from '../../wal/spool.js';
import { archiveAndMark, archiveInParallel, archivedBySpool, restoreWithPrefetch, restoredFromSpool } from '../../wal/parallel.js';
import { restoreWal } from '../../wal/restore.js';
import { removeStaleTemps } from '../../wal/temp-files.js';
import type { CommandContext, CommandModule } from '../context.js';
import { openContextStore, storeUrl } from '../open-store.js';
import { ASYNC_DEFAULT_MAX_PARALLEL, ASYNC_DEFAULT_PARALLEL, ASYNC_WORKER_ENV } from '../spec.js';
import { parseTags } from '../tags.js';
import { positiveIntegerFromEnv, type Env } from '../store.js';
import { MAX_PREFETCH_SEGMENTS } from '../types.js';
import { collectYoungGarbageOften } from '../young-generation.js';

type WalCommand = 'wal-archive' | 'wal-restore';

/** Each codec's flag has the codec's name (--gzip, …, --lz4). */
const CODEC_FLAGS: readonly CodecName[] = ['gzip', 'bzip2', 'xz', 'snappy', 'zstd', 'lz4'];

/** An --async worker exits after this long with nothing to do; the next call starts another. */
const WORKER_IDLE_MS = 30_000;
/** A call that started the prefetcher waits at most this long for it to take up the next segment (awaitPrefetchStart). */
const PREFETCH_START_WAIT_MS = 2_000;
/** How long an --async wal-archive call waits for its segment; then exit 1 and PostgreSQL retries. */
const ASYNC_WAIT_MS = 60_000;
// WORKER_GC: a one-shot call asks for a scavenge every MiB it moves, to keep its peak RSS low
// (src/reclaim.ts). The --async workers do not: with eight segments in flight each scavenge took
// ~1.2 ms, 16 a segment, ~20 ms of the archive worker's ~100 ms of CPU per lz4 segment (--trace-gc,
// 32 segments: 520 scavenges, ~600-700 ms; left to V8, 24 scavenges, ~70-100 ms), and the worker's
// peak RSS stayed where it was (~170-185 MB with eight 16 MiB segments at once). The prefetcher
// alike: 499 scavenges (0.4-1.4 s) for 32 segments, 26 (60-100 ms) without.

/** A boolean environment variable: unset or empty is false; anything but the usual words is refused. */
function flagFromEnv(env: Env, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '' || ['0', 'false', 'no', 'off'].includes(raw)) return false;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  throw new CliError(`${name} must be 1/true/yes/on or 0/false/no/off, not '${raw}'`);
}

/**
 * Start the detached worker of an --async call: this same command line again, in its own session
 * (no controlling terminal, not in PostgreSQL's process group), output to a log file in the
 * spool, so it outlives this call. Null when it cannot be started: the call then works alone.
 */
async function startWorker(ctx: CommandContext<WalCommand>, kind: 'archive' | 'restore', dir: string): Promise<ChildProcess | null> {
  const { spawn } = await import('node:child_process');
  const { openSync, closeSync } = await import('node:fs');
  try {
    const fd = openSync(join(dir, 'worker.log'), 'w', 0o600);
    try {
      const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...ctx.env, [ASYNC_WORKER_ENV]: kind },
      });
      child.on('error', (e) => log.debug(`The ${kind} worker could not start: ${e.message}`));
      child.unref();
      return child.pid === undefined ? null : child;
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    log.debug(`The ${kind} worker could not start: ${(e as Error).message}`);
    return null;
  }
}

/**
 * The `archive` or `restore` directory of this archive's spool when it may be used (see
 * trustedSpoolDir), else null. The default root sits beside `walFile`, the path PostgreSQL gives
 * us (its %p: a file in pg_wal).
 */
function spoolDir(ctx: CommandContext<WalCommand>, walFile: string, sub: 'archive' | 'restore', create: boolean): Promise<string | null> {
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  const root = ctx.args.options['spool-dir'] ?? (ctx.env.BARMAN_CLOUD_SPOOL_DIR || defaultSpoolRoot(dirname(walFile), euid));
  return trustedSpoolDir(root, storeUrl(ctx), ctx.args.positionals.server_name, sub, create);
}

/** age keys for wal-archive, read only when asked for (plain runs never load the encryption code). */
async function encryptionOptions(ctx: CommandContext<'wal-archive'>) {
  const opts = ctx.args.options;
  const allowMixedEncryption = opts['allow-mixed-encryption'] === true;
  if (!opts['encryption-recipient-file'] && !opts['encryption-identity-file']
    && !ctx.env.BARMAN_CLOUD_ENCRYPTION_RECIPIENT_FILE && !ctx.env.BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE) {
    return { allowMixedEncryption };
  }
  const { loadRecipients, loadIdentities } = await import('../encryption.js');
  return { recipients: await loadRecipients(ctx), identities: await loadIdentities(ctx), allowMixedEncryption };
}

async function restoreIdentities(ctx: CommandContext<'wal-restore'>) {
  if (!ctx.args.options['encryption-identity-file'] && !ctx.env.BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE) return undefined;
  return (await import('../encryption.js')).loadIdentities(ctx);
}

export const walArchive: CommandModule<'wal-archive'> = {
  errorPrefix: 'Barman cloud WAL archiver exception',
  validate(ctx) {
    const walPath = ctx.args.positionals.wal_path;
    // barman makes wal_path optional for its hook mode and then fails with exit 1 (docs/format.md#exit-codes).
    if (walPath === undefined) throw new OperationError('the following arguments are required: wal_path');
    if (!isWalName(basename(walPath))) throw new CliError(`${walPath} is an invalid name for a WAL file`);
  },
  async run(ctx) {
    const opts = ctx.args.options;
    const walPath = ctx.args.positionals.wal_path!; // optional for barman's hook mode; validate() required it
    const asyncMode = opts.async === true || flagFromEnv(ctx.env, 'BARMAN_CLOUD_WAL_ARCHIVE_ASYNC');
    // A count given (even 1) is kept; --async alone gets several uploads at once.
    const maxParallel = opts['max-parallel'] ?? positiveIntegerFromEnv(ctx.env, 'BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL')
      ?? (asyncMode ? ASYNC_DEFAULT_MAX_PARALLEL : 1);
    const isWorker = asyncMode && ctx.env[ASYNC_WORKER_ENV] === 'archive';
    const useSpool = maxParallel > 1 || asyncMode;
    // Fast path: a parallel upload already confirmed this exact file; no SDK is loaded.
    const existing = useSpool && !isWorker ? await spoolDir(ctx, walPath, 'archive', false) : null;
    if (existing && (await archivedBySpool(new ArchiveSpool(existing), walPath))) return EXIT.OK;
    if (!isWorker) collectYoungGarbageOften(); // not for the worker: see WORKER_GC

    const codec = CODEC_FLAGS.find((flag) => opts[flag]);
    const level = codec ? resolveLevel(codec, opts['compression-level']) : undefined;
    const archiveOptions = {
      codec,
      level,
      tags: parseTags(opts.tags, opts.tag),
      historyTags: parseTags(opts['history-tags'], opts['history-tag']),
      allowOverwrite: opts.overwrite,
      partSize: opts['max-block-size'],
      concurrency: opts['max-concurrency'],
      singlePutMax: opts['max-single-put-size'],
      ...(await encryptionOptions(ctx)),
    };
    const { store, resolved } = await openContextStore(ctx);
    try {
      const layout = new ServerLayout(resolved.url.path, ctx.args.positionals.server_name);
      // Without a spool we can trust, the requested file alone is archived.
      const dir = useSpool ? await spoolDir(ctx, walPath, 'archive', true) : null;
      if (dir && isWorker) {
        const { runArchiveWorker } = await import('../../wal/async.js');
        await runArchiveWorker(store, layout, new ArchiveSpool(dir), {
          walDir: dirname(resolve(walPath)), maxParallel, idleMs: WORKER_IDLE_MS, archive: archiveOptions,
        });
      } else if (dir) {
        const spool = new ArchiveSpool(dir);
        await spool.prune(24 * 3600_000);
        // Beside a worker it has just started, the call archives its own file only, and marks it:
        // the worker takes the rest, and would otherwise take this one too while it is still .ready.
        const archiveOwn = () => archiveAndMark(store, layout, walPath, spool, archiveOptions);
        if (!(asyncMode && (await archivedByWorker(ctx, spool, walPath, archiveOwn)))) {
          await archiveInParallel(store, layout, walPath, maxParallel, spool, archiveOptions);
        }
      } else {
        await archiveWal(store, layout, await readWalFile(walPath), archiveOptions);
      }
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

/**
 * --async: have the worker archive `walPath` and wait for its verdict. True once the store
 * confirmed this very file; false when the call must archive it itself (no .ready status for the
 * worker to find, no worker can run, or the file changed since its upload). When no worker runs,
 * the call starts one for the files after this one and archives its own meanwhile with
 * `archiveHere` (true once done), instead of waiting for a Node start and the new worker's upload:
 * the first call of a burst then costs what a call without --async does. The worker's failure for
 * the file is thrown; a wait past ASYNC_WAIT_MS is exit 1.
 */
async function archivedByWorker(
  ctx: CommandContext<'wal-archive'>, spool: ArchiveSpool, walPath: string, archiveHere: () => Promise<unknown>,
): Promise<boolean> {
  const { awaitArchived, isReady, liveWorker, takeWorkerFailure } = await import('../../wal/async.js');
  const name = basename(walPath);
  // A failure recorded since PostgreSQL's last try: report it, and let the next try start afresh.
  const failure = await takeWorkerFailure(spool, name);
  if (failure) throw failure;
  if (!(await isReady(dirname(resolve(walPath)), name))) return false;
  if ((await liveWorker(spool.dir)) === null) {
    // Claimed before the worker starts, so that it leaves this file to us.
    const release = await spool.claim(name);
    try {
      if (!(await startWorker(ctx, 'archive', spool.dir))) return false;
      await archiveHere();
      return true;
    } finally {
      await release?.();
    }
  }
  const deadline = Date.now() + ASYNC_WAIT_MS;
  // A killed worker is replaced (its claim on the file is taken over as that of a dead pid).
  for (let starts = 0; starts < 3; starts++) {
    let child: ChildProcess | null = null;
    if ((await liveWorker(spool.dir)) === null) {
      child = await startWorker(ctx, 'archive', spool.dir);
      if (!child) return false;
    }
    const started = child;
    const alive = async () => (await liveWorker(spool.dir)) !== null || (started !== null && started.exitCode === null && started.signalCode === null);
    const verdict = await awaitArchived(spool, walPath, deadline - Date.now(), alive, () => archivedBySpool(spool, walPath));
    if (verdict === 'archived') return true;
    if (verdict === 'changed') return false;
    if (verdict === 'timeout') throw new OperationError(`WAL file ${name} was not archived by the archive worker within ${ASYNC_WAIT_MS / 1000} s`);
  }
  return false;
}

export const walRestore: CommandModule<'wal-restore'> = {
  errorPrefix: 'Barman cloud WAL restore exception',
  validate(ctx) {
    const walName = ctx.args.positionals.wal_name;
    if (!isWalName(walName)) throw new CliError(`${walName} is an invalid name for a WAL file`);
  },
  async run(ctx) {
    const opts = ctx.args.options;
    const { wal_name: walName, wal_dest: dest, server_name: serverName } = ctx.args.positionals;
    const asyncAsked = opts.async === true || flagFromEnv(ctx.env, 'BARMAN_CLOUD_WAL_RESTORE_ASYNC');
    // A count given (even 1) is kept; --async alone prefetches a useful window.
    const parallel = opts.parallel ?? positiveIntegerFromEnv(ctx.env, 'BARMAN_CLOUD_WAL_RESTORE_PARALLEL', MAX_PREFETCH_SEGMENTS)
      ?? (asyncAsked ? ASYNC_DEFAULT_PARALLEL : 1);
    // Prefetching N-1 ahead needs N > 1: --async --parallel 1 is a one-shot call.
    const asyncMode = asyncAsked && parallel > 1;
    const isWorker = asyncMode && ctx.env[ASYNC_WORKER_ENV] === 'restore';
    // Fast path: a prefetched copy, moved into place atomically; no SDK is loaded.
    const existing = parallel > 1 && !isWorker ? await spoolDir(ctx, dest, 'restore', false) : null;
    if (existing && (await restoredFromSpool(new RestoreSpool(existing), walName, dest, SPOOL_MAX_AGE_MS))) return EXIT.OK;
    if (!isWorker) collectYoungGarbageOften(); // not for the prefetcher: see WORKER_GC

    // Temp files that killed runs left beside wal_dest: swept while the store is asked.
    const identities = await restoreIdentities(ctx);
    const sweep = removeStaleTemps(dirname(dest));
    const { store, resolved } = await openContextStore(ctx).catch(async (e: unknown) => {
      await sweep;
      throw e;
    });
    try {
      const layout = new ServerLayout(resolved.url.path, serverName);
      const noPartial = opts['no-partial'];
      let found: boolean;
      // Without a spool we can trust, the requested file alone is downloaded.
      const dir = parallel > 1 ? await spoolDir(ctx, dest, 'restore', true) : null;
      if (dir && isWorker) {
        const { runPrefetcher } = await import('../../wal/async.js');
        await runPrefetcher(store, layout, new RestoreSpool(dir), {
          ahead: parallel - 1,
          segmentSize: opts['wal-segment-size'],
          idleMs: WORKER_IDLE_MS,
          missRetryMs: 1_000,
          failRetryMaxMs: 60_000,
          // A segment trickling in for four read timeouts is given up (a stall ends sooner, in ~2).
          downloadDeadlineMs: 4 * resolved.config.retry.readTimeoutMs,
          identities,
        });
        return EXIT.OK;
      } else if (dir) {
        const spool = new RestoreSpool(dir);
        let started: ChildProcess | null = null;
        if (asyncMode && isSegmentName(walName)) {
          // Tell the prefetcher where recovery is before fetching this file ourselves.
          const { liveWorker, recordWanted } = await import('../../wal/async.js');
          await recordWanted(spool, walName);
          if ((await liveWorker(dir)) === null) started = await startWorker(ctx, 'restore', dir);
        }
        found = await restoreWithPrefetch(store, layout, walName, dest, spool, {
          // With --async the prefetcher fetches what follows; this call fetches only its own file.
          parallel: asyncMode ? 1 : parallel,
          noPartial,
          segmentSize: opts['wal-segment-size'],
          maxAgeMs: SPOOL_MAX_AGE_MS,
          identities,
        });
        if (found && started) {
          const { awaitPrefetchStart } = await import('../../wal/async.js');
          await awaitPrefetchStart(spool, walName, opts['wal-segment-size'], started, PREFETCH_START_WAIT_MS);
        }
      } else {
        found = await restoreWal(store, layout, walName, dest, { noPartial, identities });
      }
      if (!found) {
        // barman logs this at INFO: invisible by default, PostgreSQL asks for missing files routinely.
        log.info(`WAL file ${walName} for server ${serverName} does not exists`);
        return EXIT.OPERATION;
      }
      return EXIT.OK;
    } finally {
      await Promise.all([store.close(), sweep]);
    }
  },
};

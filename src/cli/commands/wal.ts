// barman-cloud-wal-archive and barman-cloud-wal-restore (docs/format.md#wal-archive, #wal-restore).
// Latency matters most here: the spool fast paths run before any store SDK or codec is loaded.
import { basename, dirname } from 'node:path';
import { CliError, EXIT, OperationError } from '../../errors.js';
import { log } from '../../log.js';
import { ServerLayout } from '../../catalog/layout.js';
import { resolveLevel, type CodecName, type LevelSpec } from '../../compression/index.js';
import { isWalName } from '../../wal/names.js';
import { archiveWal, readWalFile } from '../../wal/archive.js';
import { ArchiveSpool, RestoreSpool, defaultSpoolRoot, trustedSpoolDir } from '../../wal/spool.js';
import { archiveInParallel, archivedBySpool, restoreWithPrefetch, restoredFromSpool } from '../../wal/parallel.js';
import { downloadTo, findWal } from '../../wal/restore.js';
import { removeStaleTemps } from '../../wal/temp-files.js';
import { requiredPositionals, type CommandContext, type CommandModule } from '../context.js';
import { openContextStore, storeUrl } from '../open-store.js';
import { parseTags } from '../tags.js';
import type { Env } from '../store.js';

const CODEC_FLAGS: [string, CodecName][] = [
  ['gzip', 'gzip'], ['bzip2', 'bzip2'], ['xz', 'xz'], ['snappy', 'snappy'], ['zstd', 'zstd'], ['lz4', 'lz4'],
];

/** Prefetched files are served for this long; the archive of a live server does not change under them. */
const SPOOL_MAX_AGE_MS = 15 * 60_000;

function positiveFromEnv(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${name} must be a positive integer, not '${raw}'`);
  return n;
}

/**
 * The `archive` or `restore` directory of this archive's spool when it may be used (see
 * trustedSpoolDir), else null. The default root sits beside `walFile`, the path PostgreSQL gives
 * us (its %p: a file in pg_wal).
 */
function spoolDir(ctx: CommandContext, walFile: string, sub: 'archive' | 'restore', create: boolean): Promise<string | null> {
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  const root = (ctx.args.options['spool-dir'] as string | undefined) ?? (ctx.env.BARMAN_CLOUD_SPOOL_DIR || defaultSpoolRoot(dirname(walFile), euid));
  return trustedSpoolDir(root, storeUrl(ctx), ctx.args.positionals.server_name!, sub, create);
}

export const walArchive: CommandModule = {
  errorPrefix: 'Barman cloud WAL archiver exception',
  validate(ctx) {
    const walPath = ctx.args.positionals.wal_path;
    // barman makes wal_path optional for its hook mode and then fails with exit 1 (docs/format.md#exit-codes).
    if (walPath === undefined) throw new OperationError('the following arguments are required: wal_path');
    if (!isWalName(basename(walPath))) throw new CliError(`${walPath} is an invalid name for a WAL file`);
  },
  async run(ctx) {
    const opts = ctx.args.options;
    const walPath = ctx.args.positionals.wal_path!;
    const maxParallel = (opts['max-parallel'] as number | undefined) ?? positiveFromEnv(ctx.env, 'BARMAN_CLOUD_WAL_ARCHIVE_MAX_PARALLEL') ?? 1;
    // Fast path: a parallel upload already confirmed this exact file; no SDK is loaded.
    const existing = maxParallel > 1 ? await spoolDir(ctx, walPath, 'archive', false) : null;
    if (existing && (await archivedBySpool(new ArchiveSpool(existing), walPath))) return EXIT.OK;

    const codec = CODEC_FLAGS.find(([flag]) => opts[flag] === true)?.[1];
    const level = codec ? resolveLevel(codec, opts['compression-level'] as LevelSpec | undefined) : undefined;
    const archiveOptions = {
      codec,
      level,
      tags: parseTags(opts.tags as string[] | undefined, opts.tag as string[] | undefined),
      historyTags: parseTags(opts['history-tags'] as string[] | undefined, opts['history-tag'] as string[] | undefined),
      allowOverwrite: opts.overwrite === true,
      partSize: opts['max-block-size'] as number,
      concurrency: opts['max-concurrency'] as number,
      singlePutMax: opts['max-single-put-size'] as number,
    };
    const { store, resolved } = await openContextStore(ctx);
    try {
      const layout = new ServerLayout(resolved.url.path, ctx.args.positionals.server_name!);
      // Without a spool we can trust, the requested file alone is archived.
      const dir = maxParallel > 1 ? await spoolDir(ctx, walPath, 'archive', true) : null;
      if (dir) {
        const spool = new ArchiveSpool(dir);
        await spool.prune(24 * 3600_000);
        await archiveInParallel(store, layout, walPath, maxParallel, spool, archiveOptions);
      } else {
        await archiveWal(store, layout, await readWalFile(walPath), archiveOptions);
      }
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

export const walRestore: CommandModule = {
  errorPrefix: 'Barman cloud WAL restore exception',
  validate(ctx) {
    const walName = ctx.args.positionals.wal_name!;
    if (!isWalName(walName)) throw new CliError(`${walName} is an invalid name for a WAL file`);
  },
  async run(ctx) {
    const opts = ctx.args.options;
    const { wal_name: walName, wal_dest: dest, server_name: serverName } = requiredPositionals(ctx, 'wal_name', 'wal_dest', 'server_name');
    const parallel = (opts.parallel as number | undefined) ?? positiveFromEnv(ctx.env, 'BARMAN_CLOUD_WAL_RESTORE_PARALLEL') ?? 1;
    // Fast path: a prefetched copy, moved into place atomically; no SDK is loaded.
    const existing = parallel > 1 ? await spoolDir(ctx, dest, 'restore', false) : null;
    if (existing && (await restoredFromSpool(new RestoreSpool(existing), walName, dest, SPOOL_MAX_AGE_MS))) return EXIT.OK;

    // Temp files that killed runs left beside wal_dest: swept while the store is asked.
    const sweep = removeStaleTemps(dirname(dest));
    const { store, resolved } = await openContextStore(ctx).catch(async (e: unknown) => {
      await sweep;
      throw e;
    });
    try {
      const layout = new ServerLayout(resolved.url.path, serverName);
      const noPartial = opts['no-partial'] === true;
      let found: boolean;
      // Without a spool we can trust, the requested file alone is downloaded.
      const dir = parallel > 1 ? await spoolDir(ctx, dest, 'restore', true) : null;
      if (dir) {
        found = await restoreWithPrefetch(store, layout, walName, dest, new RestoreSpool(dir), {
          parallel,
          noPartial,
          segmentSize: opts['wal-segment-size'] as number | undefined,
          maxAgeMs: SPOOL_MAX_AGE_MS,
        });
      } else {
        const candidate = await findWal(store, layout, walName, { noPartial });
        found = candidate !== null && (await downloadTo(store, candidate, dest), true);
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

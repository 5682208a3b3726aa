// barman-cloud-backup (docs/format.md#backup, #postgres-session): a base backup straight into the object store.
import { CliError, EXIT, GeneralError } from '../../errors.js';
import { log } from '../../log.js';
import { ServerLayout } from '../../catalog/layout.js';
import { takeBackup } from '../../backup/backup.js';
import { resolveLevel, type CodecName } from '../../compression/index.js';
import { partSize } from '../../storage/provider.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';
import { interruptOnSignals, startProgress, transferText } from '../progress.js';
import { checkBackupTags, parseTags } from '../tags.js';
import { collectYoungGarbageOften, keepYoungGenerationSmall } from '../young-generation.js';

const RESERVED_NAMES = ['latest', 'last', 'oldest', 'first', 'last-failed', 'latest-full', 'last-full', 'auto'];
const TiB = 1024 ** 4;
const MiB = 1024 ** 2;

/** Each codec's flag has the codec's name (--gzip, …, --xz). */
const CODECS: readonly CodecName[] = ['gzip', 'bzip2', 'snappy', 'lz4', 'zstd', 'xz'];

const backup: CommandModule<'backup'> = {
  errorPrefix: 'Barman cloud backup exception',
  validate(ctx) {
    const name = ctx.args.options.name;
    if (name !== undefined) {
      if (name === '') throw new CliError('Backup name cannot be empty');
      if (/^(\d{8})T\d{6}$/.test(name)) throw new CliError(`Backup name '${name}' is not allowed: backup ID`);
      if (RESERVED_NAMES.includes(name)) throw new CliError(`Backup name '${name}' is not allowed: reserved word`);
    }
  },
  async run(ctx) {
    keepYoungGenerationSmall();
    // One scavenge per 4 MiB of tar: a few hundred per GB rather than the WAL step's thousand.
    collectYoungGarbageOften(4 * MiB);
    const opts = ctx.args.options;
    if (opts['snapshot-instance'] !== undefined || opts['snapshot-disk'] !== undefined) {
      throw new GeneralError('snapshot backups are not supported by this implementation');
    }
    const tags = parseTags(opts.tags, opts.tag);
    checkBackupTags(tags);
    let maxArchiveSize = opts['max-archive-size'];
    if (maxArchiveSize > TiB) {
      log.warning('max-archive-size too big. Capping it to to 1.0 TiB');
      maxArchiveSize = TiB;
    }
    const codec = CODECS.find((flag) => opts[flag]);
    const levelSpec = opts['compression-level'];
    // read before connecting: a bad key file fails the command before pg_backup_start
    const recipients = await (await import('../encryption.js')).loadRecipients(ctx);
    const { store, resolved } = await openContextStore(ctx);
    const interrupt = interruptOnSignals();
    const progress = await startProgress(opts.quiet, 'starting backup');
    const startedAt = Date.now();
    try {
      const outcome = await takeBackup(store, new ServerLayout(resolved.url.path, ctx.args.positionals.server_name), {
        connection: {
          host: opts.host,
          port: opts.port,
          user: opts.user,
          dbname: opts.dbname,
        },
        codec,
        level: codec && levelSpec !== undefined ? resolveLevel(codec, levelSpec) : undefined,
        immediateCheckpoint: opts['immediate-checkpoint'],
        jobs: opts.jobs,
        maxArchiveSize,
        chunkSize: partSize(resolved.provider.partLimits, maxArchiveSize, opts['min-chunk-size']),
        maxBandwidth: opts['max-bandwidth'],
        heartbeatSeconds: opts['heartbeat-interval'],
        name: opts.name,
        tags,
        recipients,
        signal: interrupt.signal,
        onProgress: progress && ((bytes, archive) => progress.update(`${archive}: ${transferText(bytes, startedAt)} uploaded`)),
      });
      return outcome.status === 'DONE' ? EXIT.OK : EXIT.OPERATION;
    } finally {
      progress?.stop();
      interrupt.release();
      await store.close();
    }
  },
};

export default backup;

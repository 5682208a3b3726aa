// Taking a base backup into the object store as barman-cloud-backup does (docs/format.md#postgres-session): the SQL
// sequence of postgres.ts, one streamed tar archive per tablespace and one for PGDATA (tar-producer),
// each part uploaded as it is produced with bounded memory, and backup.info written last — with
// status FAILED and the error when anything fails after the backup started. Two integrity records
// beyond barman: PostgreSQL's backup_manifest as the last member of data.tar (every file's size and
// CRC-32C, the WAL range), and parts.json beside backup.info (every part's stored size and
// SHA-256), uploaded after the last part and before backup.info says DONE. parts.json is first
// created empty, before pg_backup_start, as the run's claim on its backup ID (claimBackupId).
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GeneralError, OperationError, PreconditionFailedError } from '../errors.js';
import { log } from '../log.js';
import type { ServerLayout } from '../catalog/layout.js';
import { BackupCatalog } from '../catalog/catalog.js';
import { newBackupInfo, serializeBackupInfo, STATUS, type BackupInfoFields } from '../catalog/backup-info.js';
import { pyFloat, type PyDict, type PyValue } from '../catalog/python-literal.js';
import { encodePartsList, PARTS_LIST_NAME, type PartsList } from '../catalog/parts-list.js';
import { recipientFingerprint } from '../encryption/age.js';
import type { ObjectStore, Tag } from '../storage/types.js';
import type { CodecName } from '../compression/index.js';
import { majorVersionString } from './exclude.js';
import {
  backupLabelMember, externalConfigMember, produceArchive, BACKUP_COMPRESSION_LEVEL,
  type ArchiveResult, type PartSink,
} from './tar-producer.js';
import { PostgresSession, type ConnectionOptions } from './postgres.js';
import { walLocation } from '../xlog.js';
import { BackupManifestBuilder } from './manifest.js';
import { BackupHeartbeat, DEFAULT_HEARTBEAT_SECONDS, MISSED_HEARTBEATS, recordInterruptedBackups } from './heartbeat.js';

export interface BackupOptions {
  connection: ConnectionOptions;
  codec?: CodecName;
  /** Compression level (--compression-level); default BACKUP_COMPRESSION_LEVEL, else the codec's. */
  level?: number;
  immediateCheckpoint: boolean;
  /** Parts and blocks uploaded at once (-J). */
  jobs: number;
  maxArchiveSize: number;
  /** Multipart part size (from --min-chunk-size and the provider's limits, docs/format.md#tar-parts). */
  chunkSize: number;
  /** Bytes per second for part uploads (--max-bandwidth). */
  maxBandwidth?: number;
  name?: string;
  tags: Tag[];
  /** age recipients (client-side encryption); recorded in backup.info and parts.json. */
  recipients?: readonly string[];
  /** How often the claim is rewritten while the backup runs (docs/format.md#backup-heartbeat). */
  heartbeatSeconds?: number;
  signal?: AbortSignal;
  /** Progress callback: bytes read so far and the archive being written. */
  onProgress?: (bytes: number, archive: string) => void;
}

export interface BackupOutcome {
  backupId: string;
  status: string;
  error?: string;
}

/** barman's backup ID: the client's local time at the start (docs/format.md#backup-names). */
function newBackupId(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}T${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
}

/**
 * The claim on `base/<id>/` (docs/format.md#backup-id-claim): two runs of one server that start in
 * the same second get the same ID, and their parts would replace each other's. Before
 * pg_backup_start, parts.json is created empty with a conditional create; the run whose create is
 * refused stops (exit 1) and writes nothing more. The claimer fills parts.json in at the end.
 */
async function claimBackupId(store: ObjectStore, layout: ServerLayout, claim: Omit<PartsList, 'version'>, options: BackupOptions): Promise<void> {
  const backupId = claim.backupId;
  const key = `${layout.backupPrefix(backupId)}${PARTS_LIST_NAME}`;
  try {
    await store.put(key, Buffer.from(encodePartsList(claim), 'utf8'), {
      tags: options.tags.length ? options.tags : undefined, ifNoneMatch: true, signal: options.signal,
    });
  } catch (e) {
    if (!(e instanceof PreconditionFailedError)) throw e;
    throw new OperationError(
      `Backup ${backupId} of server ${layout.serverName} was started by another run in the same second: this run stops, writing nothing`,
    );
  }
}

/** A pass-through that limits the average rate to `bytesPerSecond`. */
function throttle(bytesPerSecond: number): Transform {
  const started = Date.now();
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      const due = started + (sent / bytesPerSecond) * 1000;
      const wait = due - Date.now();
      if (wait > 0) setTimeout(() => cb(null, chunk), wait);
      else cb(null, chunk);
    },
  });
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/** copy_stats in barman's key order (docs/format.md#copy-stats); tablespaces first, then 'data'. */
function copyStats(results: ArchiveResult[], totalSeconds: number, workers: number): PyDict {
  const per = (f: (r: ArchiveResult) => number): PyDict => new Map(results.map((r): [PyValue, PyValue] => [r.archive, pyFloat(round6(f(r)))]));
  const first = Math.min(...results.map((r) => r.startTime.getTime()));
  const last = Math.max(...results.map((r) => r.endTime.getTime()));
  const serialized = (r: ArchiveResult) => r.parts.reduce((s, p) => s + p.seconds, 0);
  return new Map<PyValue, PyValue>([
    ['total_time', pyFloat(round6(totalSeconds))],
    ['number_of_workers', workers],
    ['analysis_time', 0],
    ['analysis_time_per_item', new Map(results.map((r): [PyValue, PyValue] => [r.archive, 0]))],
    ['copy_time_per_item', per((r) => (r.endTime.getTime() - r.startTime.getTime()) / 1000)],
    ['serialized_copy_time_per_item', per(serialized)],
    ['copy_time', pyFloat(round6(results.length ? (last - first) / 1000 : 0))],
    ['serialized_copy_time', pyFloat(round6(results.reduce((s, r) => s + serialized(r), 0)))],
  ]);
}

export async function takeBackup(store: ObjectStore, layout: ServerLayout, options: BackupOptions): Promise<BackupOutcome> {
  const started = Date.now();
  const session = await PostgresSession.connect(options.connection);
  const catalog = new BackupCatalog(store, layout);
  let backupId = '';
  const info: BackupInfoFields = newBackupInfo('');
  let began = false;
  // The claim's empty parts.json, until the real one replaces it: a run that fails removes it.
  let claim: string | undefined;
  const heartbeatSeconds = options.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
  /** The claim as rewritten while the run lives: no parts yet, the backup.info so far (STARTED). */
  const claimRecord = (): Omit<PartsList, 'version'> => ({
    backupId,
    parts: [],
    run: { heartbeatSeconds, backupInfo: serializeBackupInfo({ ...info, status: STATUS.STARTED }) },
  });
  let heartbeat: BackupHeartbeat | undefined;
  const dropClaim = async () => {
    await heartbeat?.stop();
    if (!claim) return;
    await store.delete(claim).catch((e: unknown) => {
      log.debug(`Could not remove the empty ${PARTS_LIST_NAME} of backup ${backupId}: ${(e as Error).message}`);
    });
  };
  try {
    const meta = await session.metadata();
    backupId = newBackupId();
    Object.assign(info, {
      // barman 3.17's own field (gpg there): known to it, so its listing reads this file
      encryption: options.recipients ? 'age' : null,
      server_name: 'cloud',
      systemid: meta.systemId,
      version: meta.version,
      pgdata: meta.pgdata,
      xlog_segment_size: meta.segmentSize,
      config_file: meta.configFile,
      hba_file: meta.hbaFile,
      ident_file: meta.identFile,
      included_files: meta.includedFiles,
      tablespaces: meta.tablespaces.length ? meta.tablespaces : null,
      data_checksums: meta.dataChecksums,
      summarize_wal: meta.summarizeWal,
      cluster_size: meta.clusterSize,
      backup_name: options.name ?? null,
    } satisfies Partial<BackupInfoFields>);
    log.info(`Starting backup '${backupId}'`);
    await claimBackupId(store, layout, claimRecord(), options);
    claim = `${layout.backupPrefix(backupId)}${PARTS_LIST_NAME}`;
    heartbeat = new BackupHeartbeat(store, claim, claimRecord, heartbeatSeconds, options.tags.length ? options.tags : undefined);
    heartbeat.start();
    // Runs of this server that died before writing their backup.info (docs/format.md#backup-heartbeat),
    // looked for while PostgreSQL's checkpoint runs; it never fails, and is over before the run goes on.
    const judging = recordInterruptedBackups(catalog, backupId, options.tags);
    const start = await session.startBackup(`Barman backup cloud ${backupId}`, options.immediateCheckpoint).finally(() => judging);
    began = true;
    const begin = walLocation(start.lsn, start.timeline, meta.segmentSize);
    Object.assign(info, {
      status: STATUS.STARTED,
      begin_time: start.timestamp,
      begin_xlog: start.lsn,
      timeline: start.timeline,
      begin_wal: begin.wal,
      begin_offset: begin.offset,
    } satisfies Partial<BackupInfoFields>);
    await heartbeat.beat(); // the claim now holds the backup's start

    const prefix = layout.backupPrefix(backupId);
    let bytesDone = 0;
    const onPart: PartSink = async ({ name, stream }) => {
      const key = `${prefix}${name}`;
      let body: Readable = stream;
      if (options.onProgress || options.maxBandwidth) {
        const meter = new Transform({
          transform(chunk: Buffer, _e, cb) {
            bytesDone += chunk.length;
            options.onProgress?.(bytesDone, name);
            cb(null, chunk);
          },
        });
        const limiter = options.maxBandwidth ? throttle(options.maxBandwidth) : undefined;
        const last = limiter ?? meter;
        const flow = limiter ? pipeline(stream, meter, limiter) : pipeline(stream, meter);
        // A failure anywhere reaches the uploader through the last stage, which aborts the upload.
        flow.catch((e: unknown) => last.destroy(e as Error));
        body = last;
      }
      log.info(`Uploading ${key}`);
      await store.put(key, body, { partSize: options.chunkSize, concurrency: options.jobs, tags: options.tags, signal: options.signal });
    };
    const manifest = new BackupManifestBuilder();
    const common = {
      manifest,
      codec: options.codec ?? null,
      level: options.codec ? options.level ?? BACKUP_COMPRESSION_LEVEL[options.codec] : undefined,
      maxArchiveSize: options.maxArchiveSize,
      recipients: options.recipients,
      onPart,
      signal: options.signal,
    };
    const exclusion = {
      majorVersion: majorVersionString(meta.version),
      tablespaces: meta.tablespaces.map((t) => ({ oid: t.oid, location: t.location, name: t.name })),
      pgdata: meta.pgdata,
    };
    const results: ArchiveResult[] = [];
    for (const ts of meta.tablespaces) {
      results.push(await produceArchive({ ...common, root: ts.location, kind: 'tablespace', name: String(ts.oid), exclusion, label: ts.name }));
    }
    const outside = [meta.configFile, meta.hbaFile, meta.identFile]
      .filter((f): f is string => f !== null && !f.startsWith(meta.pgdata))
      .map((f) => externalConfigMember(f, f, f === meta.identFile));
    for (const f of meta.includedFiles ?? []) {
      if (!f.startsWith(meta.pgdata)) log.warning(`Included file ${f} is outside PGDATA and is not part of the backup`);
    }
    const pgdataStat = await stat(meta.pgdata);
    const pgdataGid = pgdataStat.gid;
    let stop: Awaited<ReturnType<PostgresSession['stopBackup']>> | undefined;
    results.push(await produceArchive({
      ...common,
      root: meta.pgdata,
      kind: 'pgdata',
      name: 'data',
      exclusion,
      extraMembers: outside,
      // pg_backup_stop runs once every file is in the archive; its label is the last member.
      lateMembers: async () => {
        stop = await session.stopBackup();
        return [backupLabelMember(stop.backupLabel, pgdataGid)];
      },
      // One range on the ending timeline, as PostgreSQL writes for a backup that saw no timeline
      // switch; a promotion during the backup would need the history file's switch point, which
      // `pg_verifybackup -n` (no WAL check) does not read.
      manifestMember: {
        walRanges: () => [{ timeline: stop!.timeline, startLsn: start.lsn, endLsn: stop!.lsn }],
        uid: pgdataStat.uid,
        gid: pgdataStat.gid,
      },
    }));
    if (!stop) throw new GeneralError('the backup was not stopped');
    const end = walLocation(stop.lsn, stop.timeline, meta.segmentSize);
    Object.assign(info, {
      backup_label: stop.backupLabel,
      end_time: stop.timestamp,
      end_xlog: stop.lsn,
      end_wal: end.wal,
      end_offset: end.offset,
    } satisfies Partial<BackupInfoFields>);
    if (!meta.isStandby) {
      await session.switchWal();
      await session.createRestorePoint(`barman_${backupId}`);
    }
    // Last before DONE: a backup that fails after its data archive gets no parts.json. No rewrite of
    // the claim may land after it; it keeps the run record, in case this run dies before backup.info.
    await heartbeat.stop();
    const partsList = encodePartsList({
      backupId,
      encryption: options.recipients ? { format: 'age', recipients: options.recipients.map(recipientFingerprint) } : undefined,
      parts: results.flatMap((r) => r.parts.map((p) => ({ name: p.name, size: p.bytes, sha256: p.sha256 }))),
      run: claimRecord().run,
    });
    await store.put(`${prefix}${PARTS_LIST_NAME}`, Buffer.from(partsList, 'utf8'), { tags: options.tags.length ? options.tags : undefined, signal: options.signal });
    claim = undefined;
    info.copy_stats = copyStats(results, (Date.now() - started) / 1000, options.jobs);
    info.status = STATUS.DONE;
  } catch (e) {
    // Before pg_backup_start nothing was uploaded: no backup.info, the error is the command's.
    if (!began) {
      await dropClaim();
      throw e;
    }
    info.status = STATUS.FAILED;
    info.error = `failure uploading data (${String((e as Error).message ?? e).split('\n')[0]})`;
    log.error(`Backup failed uploading data (${String((e as Error).message ?? e).split('\n')[0]})`);
  } finally {
    await heartbeat?.stop();
    await session.close();
  }
  try {
    // Created, never replaced: a later run that took this one for dead may have recorded it FAILED
    // (docs/format.md#backup-heartbeat), and then that record stands.
    await catalog.writeBackupInfo(backupId, info, { tags: options.tags, ifNoneMatch: true });
  } catch (e) {
    if (e instanceof PreconditionFailedError) {
      throw new OperationError(
        `Backup ${backupId} was recorded as interrupted by another run while this one gave no sign of life ` +
          `for ${MISSED_HEARTBEATS} heartbeat intervals of ${heartbeatSeconds} s; its backup.info stays FAILED`,
        { cause: e },
      );
    }
    throw new OperationError(`Backup failed uploading backup.info file (${(e as Error).message})`, { cause: e });
  }
  // parts.json is a DONE backup's record only; the FAILED backup.info stays, as barman's (a
  // credential that may not delete leaves the empty one, which lists no part).
  await dropClaim();
  if (info.status !== STATUS.DONE) return { backupId, status: info.status ?? STATUS.FAILED, error: info.error ?? undefined };
  log.info(`Backup completed (start time: ${info.begin_time}, elapsed time: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return { backupId, status: STATUS.DONE };
}

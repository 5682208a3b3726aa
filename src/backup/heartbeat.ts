// What a backup run that never finished leaves, and how the next run records it
// (docs/format.md#backup-heartbeat). barman writes backup.info only at the end, so a run killed on
// the way (SIGKILL, a sidecar OOM-killed, a lost node) leaves parts and, on S3, unfinished
// multipart uploads that no listing shows and no deletion reaches. Our run rewrites its parts.json
// claim every heartbeat interval with the backup.info it has so far; the next backup of the server
// finds claims that have not been rewritten for MISSED_HEARTBEATS intervals, by the store's own
// clock, and writes that backup.info with status FAILED. It is then an ordinary failed backup:
// listed by us and by barman, removed whole by `barman-cloud-backup-delete -b`.
//
// Nothing is ever deleted here. A run that was only stalled (stopped, cut off from the store) and
// comes back finds its backup.info already written: both sides create it conditionally, so exactly
// one of them records the outcome, and a stalled run that lost fails instead of saying DONE.
import { AccessDeniedError, PreconditionFailedError } from '../errors.js';
import { log } from '../log.js';
import { isBackupId, type BackupCatalog } from '../catalog/catalog.js';
import { parseBackupInfo, STATUS, type BackupInfoFields } from '../catalog/backup-info.js';
import { decodePartsList, encodePartsList, PARTS_LIST_NAME, type PartsList } from '../catalog/parts-list.js';
import type { ObjectStore, Tag } from '../storage/types.js';

/** How often a running backup rewrites its claim unless told otherwise (--heartbeat-interval). */
export const DEFAULT_HEARTBEAT_SECONDS = 300;
/** Intervals without a rewrite after which a run is taken for dead. */
export const MISSED_HEARTBEATS = 6;
/** A claim holds a few KB of backup.info; more is not one of ours. */
const CLAIM_MAX_BYTES = 2 << 20;

/**
 * Rewrites the claim every `intervalSeconds` while the run lives. A rewrite that fails is logged
 * and the next one tried; stop() waits for one under way, so that nothing rewrites the claim after
 * the run's own last write of parts.json.
 */
export class BackupHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    private readonly claim: () => Omit<PartsList, 'version'>,
    private readonly intervalSeconds: number,
    private readonly tags?: Tag[],
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.beat(), this.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** Rewrite the claim now (after pg_backup_start, so that it holds the backup's start). */
  beat(): Promise<void> {
    if (this.stopped || this.beating) return this.beating ?? Promise.resolve();
    const text = encodePartsList(this.claim());
    this.beating = this.store.put(this.key, Buffer.from(text, 'utf8'), { tags: this.tags })
      .catch((e: unknown) => log.warning(`Could not refresh ${this.key}: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => {
        this.beating = undefined;
      });
    return this.beating;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.beating;
  }
}

/** The backup.info a dead run's claim says it had, recorded as FAILED (docs/format.md#backup-heartbeat). */
export function interruptedBackupInfo(run: { backupInfo: string }, lastSign: Date): BackupInfoFields {
  const info = parseBackupInfo(run.backupInfo);
  return {
    ...info,
    status: STATUS.FAILED,
    error: `failure uploading data (interrupted: no sign of life since ${lastSign.toISOString()})`,
    // Nothing past pg_backup_stop is known to have been stored: CloudNativePG takes a backup with
    // both times set for a usable one, whatever its status (docs/compatibility.md).
    end_time: null,
    end_xlog: null,
    end_wal: null,
    end_offset: null,
    backup_label: null,
    copy_stats: null,
  };
}

/**
 * Record as FAILED every backup of the server whose run stopped giving signs of life: its claim
 * (parts.json with a run record) is older than MISSED_HEARTBEATS of its own intervals, measured
 * against the claim of backup `ownId` (the caller's, just made) in the same listing: the store's
 * clock, not ours. And it has no backup.info. Never fails the caller: what cannot be read or
 * written is logged and left for the next run.
 */
export async function recordInterruptedBackups(catalog: BackupCatalog, ownId: string, tags?: Tag[]): Promise<void> {
  const { store, layout } = catalog;
  const base = layout.basePrefix;
  const claims = new Map<string, Date | undefined>();
  const finished = new Set<string>();
  try {
    for await (const e of store.list(base)) {
      // only keys below the prefix asked for (docs/format.md#listed-keys)
      if (e.kind !== 'object' || !e.key.startsWith(base)) continue;
      const [id, name, ...deeper] = e.key.slice(base.length).split('/');
      if (!id || deeper.length > 0) continue;
      if (name === 'backup.info') finished.add(id);
      else if (name === PARTS_LIST_NAME) claims.set(id, e.lastModified);
    }
  } catch (e) {
    // A credential that may upload but not list (as barman's backup needs) only loses the judging.
    const message = `Could not look for interrupted backups: ${e instanceof Error ? e.message : String(e)}`;
    if (e instanceof AccessDeniedError) log.debug(message);
    else log.warning(message);
    return;
  }
  const now = claims.get(ownId);
  if (!now) return; // no clock to judge by
  for (const [id, lastSign] of claims) {
    if (id === ownId || finished.has(id) || !lastSign || !isBackupId(id)) continue;
    const silentMs = now.getTime() - lastSign.getTime();
    if (silentMs <= MISSED_HEARTBEATS * 1000) continue; // younger than any run's limit
    try {
      const key = `${layout.backupPrefix(id)}${PARTS_LIST_NAME}`;
      const run = decodePartsList((await store.getBuffer(key, { maxBytes: CLAIM_MAX_BYTES })).toString('utf8'), id).run;
      // no run record: written by a version without heartbeats (barman writes no parts.json)
      if (!run || silentMs <= MISSED_HEARTBEATS * run.heartbeatSeconds * 1000) continue;
      await catalog.writeBackupInfo(id, interruptedBackupInfo(run, lastSign), { ifNoneMatch: true, tags });
      log.warning(
        `Backup ${id} of server ${layout.serverName} was interrupted (no sign of life since ${lastSign.toISOString()}): ` +
          `recorded as FAILED; barman-cloud-backup-delete -b ${id} removes what it left`,
      );
    } catch (e) {
      if (e instanceof PreconditionFailedError) continue; // its run, or another judge, wrote backup.info meanwhile
      log.warning(`Could not record backup ${id} as interrupted: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

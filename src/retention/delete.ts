// Deleting backups from the object store (docs/format.md#delete-backup, #wal-cleanup), with barman's
// dry-run lines: once every check has passed, backup.info is rewritten FAILED (so that no reader,
// barman's included, counts a half-deleted backup as DONE), then the backup's tar objects (data,
// then tablespaces by OID; main file, then parts), then our parts.json (beyond barman), then the
// WAL files nobody needs any more, then backup.info. backup.info goes last, so an interrupted run
// never leaves tar files or WAL behind a missing backup.info: the next run sees the backup again
// and finishes it.
import { AccessDeniedError, OperationError } from '../errors.js';
import { log } from '../log.js';
import { KEEP_ANNOTATION, type BackupCatalog } from '../catalog/catalog.js';
import { mapBounded, TaskWindow } from '../concurrency.js';
import { TAR_EXTENSIONS } from '../compression/index.js';
import { STATUS, type BackupInfo } from '../catalog/backup-info.js';
import { strRepr } from '../catalog/python-literal.js';
import { PARTS_LIST_NAME } from '../catalog/parts-list.js';
import { decodeHashDir, type ServerLayout } from '../catalog/layout.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import {
  decideWalCleanup, deletablePrefixes, deletableWals, foldCleanupSteps, walNameFromKey, walObjectDoomed,
  type CleanupClass, type WalEntry,
} from './wal-cleanup.js';
import { keepStatus } from './policy.js';

/** Python's repr() of a list of str: `['a', 'b']` (barman prints key lists this way). */
export function pyListRepr(items: readonly string[]): string {
  return `[${items.map(strRepr).join(', ')}]`;
}

interface ArchiveSlot {
  oid: number | null;
  base: string;
  main: ObjectInfo | null;
  parts: ObjectInfo[];
}

export interface BackupFiles {
  /** The objects to delete, in barman's order. */
  files: ObjectInfo[];
  /** WARNING lines barman logs while matching (unknown extensions, missing main files). */
  warnings: string[];
}

/**
 * barman's get_backup_files(allow_missing=True) + _get_files_for_backup: match the objects directly
 * under the backup directory to `data` and each tablespace OID (key = base + `.ext` for the main
 * file, base + `_…` for extra parts), then order them data first, tablespaces by OID, each with its
 * main file and then its parts sorted by key.
 */
export function backupArchiveFiles(objects: readonly ObjectInfo[], backupPrefix: string, info: BackupInfo, serverName: string): BackupFiles {
  const slots = new Map<number | null, ArchiveSlot>();
  slots.set(null, { oid: null, base: `${backupPrefix}data`, main: null, parts: [] });
  for (const ts of info.tablespaces ?? []) slots.set(ts.oid, { oid: ts.oid, base: `${backupPrefix}${ts.oid}`, main: null, parts: [] });
  const warnings: string[] = [];
  for (const obj of objects) {
    for (const slot of slots.values()) {
      if (!obj.key.startsWith(slot.base)) continue;
      const suffix = obj.key.slice(slot.base.length);
      // `16384` is a prefix of `163840.tar`: only `.` or `_` after the base is a match.
      if (suffix === '' || (suffix[0] !== '.' && suffix[0] !== '_')) continue;
      const isPart = suffix[0] === '_';
      const dot = suffix.indexOf('.');
      const ext = isPart ? (dot < 0 ? suffix : suffix.slice(dot + 1)) : suffix.slice(1);
      if (!TAR_EXTENSIONS.has(ext)) {
        warnings.push(`Skipping unknown extension: ${ext}`);
        continue;
      }
      if (isPart) slot.parts.push(obj);
      else slot.main = obj; // barman keeps the last main file listed
      break;
    }
  }
  const files: ObjectInfo[] = [];
  const ordered = [...slots.values()].sort((a, b) => (a.oid ?? -1) - (b.oid ?? -1));
  for (const slot of ordered) {
    if (!slot.main && !info.snapshots_info) warnings.push(`Missing file ${slot.base}.* for server ${serverName}`);
    if (slot.main) files.push(slot.main);
    files.push(...[...slot.parts].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
  }
  return { files, warnings };
}

export interface DeleteOptions {
  /** Print what would be deleted (barman's lines on stdout) and delete nothing. */
  dryRun: boolean;
  /** Objects per bulk delete request, already clamped to [1, store.maxDeleteBatch]. */
  batchSize: number;
  /** One line of normal output (stdout), without the newline. */
  print: (line: string) => void;
  /** --check-object-lock: throws when any of the keys is locked (S3 Object Lock / legal hold). */
  checkLocks?: (keys: string[]) => Promise<void>;
}

/** What a run deleted, for the one-line summary (beyond barman). */
export interface DeletionSummary {
  backupIds: string[];
  backupObjectsDeleted: number;
  walObjectsDeleted: number;
  bytesFreed: number;
  /** Failures that did not stop the run (WAL deletions), plus the one that did, if any. */
  errors: number;
  /** The failure that stopped the run, already logged; src/cli turns it into barman's exit code. */
  failure?: unknown;
}

/** Bulk delete requests for backup data objects in flight. */
const DATA_DELETE_CONCURRENCY = 4;
/** backup.info rewrites in flight when several backups are marked as being deleted (a GET and a PUT each). */
const MARK_CONCURRENCY = 8;
/** Bulk WAL delete requests in flight: RGW spends ~0.5 s on a 1,000-key DeleteObjects. */
const WAL_DELETE_CONCURRENCY = 4;

/** A per-key size table built from the listings, so that bytes freed are known without HEADs. */
function sizeOf(sizes: Map<string, number>, keys: readonly string[]): number {
  let total = 0;
  for (const k of keys) total += sizes.get(k) ?? 0;
  return total;
}

/** barman's refusal of `-b` on a kept backup (exit 1); also when the keep came during the deletion (docs/format.md#keep-handshake). */
export function keptBackupRefusal(backupId: string, serverName: string): OperationError {
  return new OperationError(
    `Skipping delete of backup ${backupId} for server ${serverName} as it has a current keep request. ` +
      'If you really want to delete this backup please remove the keep and try again.',
  );
}

/** Some keys of a bulk delete were refused (barman's words); callers say which backup or WAL it was. */
function refusedKeys(): OperationError {
  return new OperationError('Error from cloud provider while deleting objects - please check the command output.');
}

/**
 * barman's cached WAL listing (get_wal_paths): WAL name → object, the last object listed winning.
 * Indexed by name order, so that each deletion only walks the names below its limit (what it can
 * delete) instead of the whole archive, and by first-level directory, for whole-directory deletes.
 */
export class WalListing {
  private readonly byName = new Map<string, WalEntry>();
  private sorted: WalEntry[] = [];
  private dead = 0;
  private runEnd: Int32Array | undefined;
  private firstAlive = 0;
  private readonly byDir = new Map<string, WalEntry[]>();

  constructor(private readonly walsPrefix: string, entries: Iterable<WalEntry>) {
    for (const e of entries) this.byName.set(e.name, e);
    this.sorted = [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of this.sorted) {
      const dir = this.dirOf(e.key);
      const list = this.byDir.get(dir);
      if (list) list.push(e);
      else this.byDir.set(dir, [e]);
    }
  }

  /** `<wals>/<dir>/` for a key below a directory, `<wals>/` for one directly under it. */
  private dirOf(key: string): string {
    const rest = key.slice(this.walsPrefix.length);
    const cut = rest.indexOf('/');
    return cut < 0 ? this.walsPrefix : this.walsPrefix + rest.slice(0, cut + 1);
  }

  get size(): number {
    return this.byName.size;
  }

  has(entry: WalEntry): boolean {
    return this.byName.get(entry.name) === entry;
  }

  /**
   * The entries still listed whose name sorts before `limit`, in name order, leaving out those
   * under a directory of `skipDirs` (a dry run keeps announcing the same directories: their
   * entries are jumped over a directory at a time).
   */
  below(limit: string, skipDirs: ReadonlySet<string> = new Set()): WalEntry[] {
    if (this.dead > 1024 && this.dead * 4 > this.sorted.length) {
      this.sorted = this.sorted.filter((e) => this.has(e));
      this.dead = 0;
      this.runEnd = undefined;
      this.firstAlive = 0;
    }
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]!.name < limit) lo = mid + 1;
      else hi = mid;
    }
    // Deletions remove the oldest names first: skip the dead run at the front once and for all.
    while (this.firstAlive < this.sorted.length && !this.has(this.sorted[this.firstAlive]!)) this.firstAlive++;
    const runEnd = skipDirs.size > 0 ? this.runs() : undefined;
    const out: WalEntry[] = [];
    for (let i = this.firstAlive; i < lo; i++) {
      const e = this.sorted[i]!;
      if (runEnd && skipDirs.has(this.dirOf(e.key))) {
        i = runEnd[i]! - 1;
        continue;
      }
      if (this.has(e)) out.push(e);
    }
    return out;
  }

  /** For each position of `sorted`, where the run of entries in the same directory ends. */
  private runs(): Int32Array {
    if (this.runEnd) return this.runEnd;
    const ends = new Int32Array(this.sorted.length);
    let i = this.sorted.length - 1;
    while (i >= 0) {
      const dir = this.dirOf(this.sorted[i]!.key);
      let j = i;
      while (j >= 0 && this.dirOf(this.sorted[j]!.key) === dir) ends[j--] = i + 1;
      i = j;
    }
    this.runEnd = ends;
    return ends;
  }

  remove(entry: WalEntry): void {
    if (!this.has(entry)) return;
    this.byName.delete(entry.name);
    this.dead += 1;
  }

  /** Forget every entry under a first-level directory prefix (`<wals>/<dir>/`). */
  removeUnder(prefix: string): void {
    for (const e of this.byDir.get(prefix) ?? []) this.remove(e);
    this.byDir.delete(prefix);
  }
}

/**
 * Deletes backups one after the other, keeping barman's in-memory state between them: the catalog
 * loses each deleted backup (also in a dry run, so later decisions see it gone) and the WAL listing,
 * read once, loses the WAL files deleted one by one.
 */
export class BackupDeleter {
  readonly summary: DeletionSummary = {
    backupIds: [], backupObjectsDeleted: 0, walObjectsDeleted: 0, bytesFreed: 0, errors: 0,
  };
  private walCache: WalListing | undefined;
  private dirCache: Set<string> | undefined;
  private readonly sizes = new Map<string, number>();
  private warnedOutside = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly catalog: BackupCatalog,
    private readonly layout: ServerLayout,
    private readonly keepTargets: ReadonlyMap<string, string | null>,
    private readonly options: DeleteOptions,
  ) {}

  /**
   * Delete the given backups in order. A failure to delete a backup's data or backup.info stops the
   * run (barman exits there); WAL deletion failures are logged and the run goes on. Never throws:
   * the outcome is in `summary`.
   */
  async deleteAll(backupIds: readonly string[], fromRetentionPolicy: boolean): Promise<DeletionSummary> {
    // A real -r run deletes in bulk (one WAL pass for all backups); a dry run keeps barman's lines
    // per backup, -b has one backup, and --check-object-lock and snapshot backups stop the run
    // part-way as barman does, so these go one backup at a time.
    if (fromRetentionPolicy && !this.options.dryRun && !this.options.checkLocks && backupIds.length > 0) {
      const infos = await this.catalog.getBackupList();
      if (!backupIds.some((id) => infos.get(id)?.snapshots_info)) {
        try {
          await this.deleteInBulk(backupIds);
        } catch (e) {
          this.fail(e);
        }
        return this.summary;
      }
    }
    for (const id of backupIds) {
      try {
        await this.deleteBackup(id, fromRetentionPolicy);
      } catch (e) {
        this.fail(e);
        break;
      }
    }
    return this.summary;
  }

  /**
   * True when a listing of `prefix` returned `key` from outside it, said once per run: a store that
   * returns keys outside the prefix (docs/architecture.md, "retention") must not hand another server's objects
   * to a deletion that judges them by name.
   */
  private outside(key: string, prefix: string): boolean {
    if (key.startsWith(prefix)) return false;
    if (!this.warnedOutside) {
      this.warnedOutside = true;
      log.warning(`Ignoring ${key}: the store listed it under ${prefix}, where it does not belong`);
    }
    return true;
  }

  /** Record the failure that stops the run, with barman's message. */
  private fail(e: unknown): void {
    this.summary.errors += 1;
    this.summary.failure = e;
    if (e instanceof OperationError) {
      log.error(e.message);
    } else {
      log.error(`Barman cloud backup delete exception: ${e instanceof Error ? e.message : String(e)}`);
      if (e instanceof Error && e.stack) log.debug(e.stack);
    }
  }

  /**
   * Delete several backups at once, with the outcome of deleting them one by one in barman's
   * order (the WAL decisions are computed per backup on the catalog as it would stand then), but
   * in three phases so that the requests can run side by side (after every backup.info is marked
   * FAILED, the backups whose mark failed being left out):
   *   1. every backup's data objects (tars, parts.json), from one listing of base/, in full batches;
   *   2. one pass over the WAL listing, deleting in concurrent batches as pages arrive whatever
   *      any of the per-backup decisions removes;
   *   3. the backup.info files, oldest first.
   * A run stopped anywhere leaves a state the next run finishes with the same end state: the
   * backups it marked are finished by the next -r as interrupted deletions, the others get the
   * same policy verdicts (those marked were older than every VALID one), the marked ones count for
   * the WAL decisions as before their mark (same decisions), and in phase 3 the backups left are
   * the newest, whose decisions are the ones phase 2 carried out.
   */
  private async deleteInBulk(backupIds: readonly string[]): Promise<void> {
    const catalogNow = (await this.catalog.load()).backups;
    // One fresh listing of base/, taken after the retention report: every backup's own objects and
    // the keep annotations added since, instead of a listing and a keep GET per backup (on RGW,
    // 1,000 small requests for 500 backups).
    const fresh = await this.listBase();
    let doomed: BackupInfo[] = [];
    for (const id of backupIds) {
      const info = await this.catalog.getBackupInfo(id);
      if (!info) {
        log.warning(`Backup ${id} does not exist`);
        continue;
      }
      // A keep listed now is read afresh (its value decides, as for one backup at a time).
      const kept = fresh.kept.has(id) ? keepStatus(await this.catalog.getKeepTarget(id, false)) : null;
      if (kept) this.warnKeptDuringRun(id);
      else doomed.push(info);
    }
    if (doomed.length === 0) return;
    // Marked FAILED before any object goes (docs/format.md#delete-backup); only those marked are
    // deleted. A backup whose mark failed stays as it was, and the run then ends with exit 1.
    let unmarked: { info: BackupInfo; error: unknown } | undefined;
    const originals = new Map<string, Buffer>();
    const marked = await mapBounded(doomed, MARK_CONCURRENCY, async (info) => {
      if (info.status === STATUS.FAILED) return true;
      try {
        originals.set(info.backup_id, await this.catalog.markBeingDeleted(info.backup_id));
        return true;
      } catch (error) {
        if (!unmarked || info.backup_id < unmarked.info.backup_id) unmarked = { info, error };
        return false;
      }
    });
    doomed = doomed.filter((_, at) => marked[at]);
    // The deletion's half of the handshake with backup-keep (docs/format.md#keep-handshake): marked
    // first, then one more look at the keep annotations; a keep written before that look is seen
    // here, one written after it sees the mark and withdraws.
    const keptSince = (await this.listBase(false)).kept;
    const left: BackupInfo[] = [];
    for (const info of doomed) {
      const id = info.backup_id;
      if (keptSince.has(id) && keepStatus(await this.catalog.getKeepTarget(id, false))) await this.keptWhileMarking(id, originals.get(id));
      else left.push(info);
    }
    doomed = left;
    const markFailure = unmarked && new OperationError(`Could not delete backup ${unmarked.info.backup_id}: ${unmarked.error instanceof Error ? unmarked.error.message : String(unmarked.error)}`, { cause: unmarked.error });
    if (doomed.length === 0) {
      if (markFailure) throw markFailure;
      return;
    }

    // The WAL decision of each deletion, on the catalog without the backups deleted before it.
    const remaining = new Map(catalogNow);
    const steps = [];
    for (const info of doomed) {
      const decision = decideWalCleanup({
        deleted: info, backups: remaining, keepTarget: (id) => this.keepTargets.get(id) ?? null, fromRetentionPolicy: true,
      });
      if (decision.allowed) steps.push({ backupId: info.backup_id, decision });
      else log.debug(`Not removing WAL files for backup ${info.backup_id}: ${decision.reason}`);
      remaining.delete(info.backup_id);
    }
    const classes = foldCleanupSteps(steps);

    await this.abortUploads(doomed.map((info) => info.backup_id));
    // Phase 1: the data objects of every backup, oldest first, in full batches with a few in
    // flight. Should some fail, the failure reported is that of the oldest backup with an object
    // left, as deleting them one by one would report, and no further batch starts.
    // The first part of each data archive goes before the rest (docs/format.md#delete-backup).
    const firsts = { keys: [] as string[], owners: [] as number[] };
    const others = { keys: [] as string[], owners: [] as number[] };
    doomed.forEach((info, at) => {
      log.info(`Deleting backup ${info.backup_id} for server ${this.layout.serverName}`);
      const prefix = this.layout.backupPrefix(info.backup_id);
      const { first, rest } = this.backupDataKeys(fresh.objects.get(prefix) ?? [], info, prefix);
      for (const key of first) firsts.keys.push(key), firsts.owners.push(at);
      for (const key of rest) others.keys.push(key), others.owners.push(at);
    });
    let stoppedAt = Infinity;
    let stopped: unknown;
    const stopAt = (at: number, error: unknown) => {
      if (at < stoppedAt) [stopped, stoppedAt] = [error, at];
    };
    for (const { keys: dataKeys, owners } of [firsts, others]) {
      const batches: number[] = [];
      for (let i = 0; i < dataKeys.length; i += this.options.batchSize) batches.push(i);
      await mapBounded(batches, DATA_DELETE_CONCURRENCY, async (start) => {
        if (stoppedAt !== Infinity) return;
        const keys = dataKeys.slice(start, start + this.options.batchSize);
        try {
          const result = await this.store.deleteMany(keys, this.options.batchSize);
          this.summary.backupObjectsDeleted += result.deleted.length;
          this.summary.bytesFreed += sizeOf(this.sizes, result.deleted);
          if (result.errors.length === 0) return;
          const failed = new Set(result.errors.map((e) => e.key));
          for (const err of result.errors) log.error(`Deletion of object ${err.key} failed: ${err.message}`);
          const at = owners[start + keys.findIndex((k) => failed.has(k))]!;
          stopAt(at, refusedKeys());
        } catch (e) {
          stopAt(owners[start]!, e);
        }
      });
      if (stoppedAt !== Infinity) break;
    }
    // Every backup.info is still there: the next run sees the same catalog and redoes it all.
    if (stoppedAt !== Infinity) {
      const e = stopped;
      throw new OperationError(`Could not delete backup ${doomed[stoppedAt]!.backup_id}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }

    // Phase 2: the WAL.
    if (classes.length > 0) {
      log.info(`Deleting the WAL files no remaining backup needs (one pass for ${doomed.length} backups)`);
      await this.removeWalsInBulk(classes, steps[steps.length - 1]!.backupId);
    }

    // Phase 3: backup.info files, oldest first and one batch at a time, so that a run stopped here
    // leaves the newest of them, whose WAL decisions are those already carried out.
    for (let i = 0; i < doomed.length; i += this.options.batchSize) {
      const batch = doomed.slice(i, i + this.options.batchSize);
      try {
        await this.deleteKeys(batch.map((b) => this.layout.backupInfoKey(b.backup_id)), 'backup');
      } catch (e) {
        throw new OperationError(`Could not delete backup ${batch[0]!.backup_id}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      for (const info of batch) {
        this.summary.backupIds.push(info.backup_id);
        this.catalog.forget(info.backup_id);
      }
    }
    if (markFailure) throw markFailure;
  }

  /**
   * Every object under base/ in one recursive listing: each backup directory's own objects (by
   * `<base>/<id>/` prefix), and the IDs of backups holding a keep annotation. Sizes are remembered,
   * unless `rememberSizes` is false (the look after the marks: a marked backup.info is larger, and
   * what a run frees is counted as its dry run counts it).
   */
  private async listBase(rememberSizes = true): Promise<{ objects: Map<string, ObjectInfo[]>; kept: Set<string> }> {
    const base = this.layout.basePrefix;
    const objects = new Map<string, ObjectInfo[]>();
    const kept = new Set<string>();
    for await (const e of this.store.list(base)) {
      if (e.kind !== 'object' || this.outside(e.key, base)) continue;
      const cut = e.key.indexOf('/', base.length);
      if (cut < 0) continue;
      const prefix = e.key.slice(0, cut + 1);
      const id = prefix.slice(base.length, -1);
      if (e.key.indexOf('/', cut + 1) >= 0) {
        if (e.key === this.layout.annotationKey(id, KEEP_ANNOTATION)) kept.add(id);
        continue;
      }
      const own = objects.get(prefix);
      if (own) own.push(e);
      else objects.set(prefix, [e]);
      if (rememberSizes) this.sizes.set(e.key, e.size);
    }
    return { objects, kept };
  }

  /** A backup's own objects, one level below its directory (sizes remembered). */
  private async listBackupDir(prefix: string): Promise<ObjectInfo[]> {
    const objects: ObjectInfo[] = [];
    for await (const e of this.store.list(prefix, { delimiter: '/' })) {
      if (e.kind !== 'object' || this.outside(e.key, prefix)) continue;
      objects.push(e);
      this.sizes.set(e.key, e.size);
    }
    return objects;
  }

  /**
   * A backup's tar objects, then its parts.json, in barman's order; `first` is the data archive's
   * first part (when still there), which must be gone before any of `rest` is deleted: batches
   * run side by side and finish in any order, and a backup left with the first parts of its data
   * archive but neither its last ones nor parts.json would restore (ours and barman's) truncated
   * with exit 0. Without its first part, it is refused as incomplete (docs/format.md#delete-backup).
   */
  private backupDataKeys(objects: readonly ObjectInfo[], info: BackupInfo, prefix: string): { first: string[]; rest: string[] } {
    const { files, warnings } = backupArchiveFiles(objects, prefix, info, this.layout.serverName);
    for (const w of warnings) log.warning(w);
    const keys = files.map((f) => f.key);
    const partsListKey = `${prefix}${PARTS_LIST_NAME}`;
    if (objects.some((o) => o.key === partsListKey)) keys.push(partsListKey);
    // barman's order puts the data archive's main file first
    const first = keys.length > 0 && keys[0]!.startsWith(`${prefix}data.`) ? keys.slice(0, 1) : [];
    return { first, rest: keys.slice(first.length) };
  }

  /**
   * One pass over the WAL listing: objects any class deletes are batched as pages arrive and
   * deleted with a few batches in flight; nothing else of the listing is kept. Failures are logged
   * and counted (barman's WAL rule), never thrown.
   */
  private async removeWalsInBulk(classes: readonly CleanupClass[], lastId: string): Promise<void> {
    const walsPrefix = this.layout.walsPrefix;
    const dirVerdicts = new Map<string, boolean>();
    const inFlight = new TaskWindow(WAL_DELETE_CONCURRENCY);
    let batch: { key: string; size: number }[] = [];
    const flush = async () => {
      const keys = batch;
      batch = [];
      if (keys.length > 0) await inFlight.add(() => this.deleteWalBatch(keys, lastId));
    };
    try {
      for await (const e of this.store.list(walsPrefix)) {
        if (e.kind !== 'object' || this.outside(e.key, walsPrefix)) continue;
        const before = dirVerdicts.size;
        const doomed = walObjectDoomed(classes, walsPrefix, { key: e.key, name: walNameFromKey(e.key) }, dirVerdicts);
        if (dirVerdicts.size > before) {
          const dir = [...dirVerdicts.keys()].at(-1)!;
          if (!decodeHashDir(dir.slice(walsPrefix.length, -1))) log.warning(`Ignoring malformed WAL object prefix: ${dir}`);
        }
        if (!doomed) continue;
        batch.push({ key: e.key, size: e.size });
        if (batch.length >= this.options.batchSize) await flush();
      }
      await flush();
    } catch (e) {
      this.walError(`Cannot clean up WALs for backup ${lastId} because an error occurred listing WALs: ${(e as Error).message}`);
    }
    await inFlight.drain();
  }

  /** Delete one batch of WAL objects; failures are logged and counted. */
  private async deleteWalBatch(entries: { key: string; size: number }[], lastId: string): Promise<void> {
    const keys = entries.map((e) => e.key);
    try {
      const result = await this.store.deleteMany(keys, this.options.batchSize);
      const deleted = new Set(result.deleted);
      for (const e of entries) {
        if (!deleted.has(e.key)) continue;
        this.summary.walObjectsDeleted += 1;
        this.summary.bytesFreed += e.size;
      }
      if (result.errors.length > 0) {
        for (const err of result.errors) log.error(`Deletion of object ${err.key} failed: ${err.message}`);
        throw refusedKeys();
      }
    } catch (e) {
      this.walError(`Could not delete the following WALs for backup ${lastId}: ${pyListRepr(keys)}, Reason: ${(e as Error).message}`);
    }
  }

  /** A backup this run chose was kept since (a concurrent backup-keep): it is left alone. */
  private warnKeptDuringRun(backupId: string): void {
    log.warning(`Skipping delete of backup ${backupId} for server ${this.layout.serverName}: a keep request was added during this run`);
  }

  /**
   * A keep request came while the backup was being marked: nothing of it is deleted yet, so its
   * backup.info is put back as it was and the backup is left alone (docs/format.md#keep-handshake).
   */
  private async keptWhileMarking(backupId: string, original: Buffer | undefined): Promise<void> {
    this.warnKeptDuringRun(backupId);
    if (original) await this.catalog.unmarkBeingDeleted(backupId, original);
  }

  /** Delete one backup (barman's _delete_backup). */
  async deleteBackup(backupId: string, fromRetentionPolicy: boolean): Promise<void> {
    const info = await this.catalog.getBackupInfo(backupId);
    if (!info) {
      log.warning(`Backup ${backupId} does not exist`);
      return;
    }
    const { dryRun } = this.options;
    if (fromRetentionPolicy && !dryRun && keepStatus(await this.catalog.getKeepTarget(backupId, false))) {
      // Kept after the retention report was computed (a concurrent backup-keep): barman would
      // delete it anyway; a deletion cannot be undone, so leave it.
      this.warnKeptDuringRun(backupId);
      return;
    }
    log.info(`Deleting backup ${backupId} for server ${this.layout.serverName}${dryRun ? ' (dry run)' : ''}`);
    const prefix = this.layout.backupPrefix(backupId);

    if (info.snapshots_info) {
      const labelKey = `${prefix}backup_label`;
      if (!dryRun) {
        // Deleting the cloud snapshots needs the providers' compute APIs, which this tool does not
        // drive; removing the metadata alone would orphan the snapshots, so refuse instead.
        throw new OperationError(`Could not delete backup ${backupId}: deleting cloud snapshots is not supported by this implementation`);
      }
      this.options.print('Skipping deletion of snapshots due to --dry-run option');
      this.options.print(`Skipping deletion of ${labelKey} due to --dry-run option`);
    }

    const { first, rest } = this.backupDataKeys(await this.listBackupDir(prefix), info, prefix);
    const dataKeys = [...first, ...rest];
    const infoKey = this.layout.backupInfoKey(backupId);

    if (dryRun) {
      this.options.print(`Skipping deletion of objects ${pyListRepr([...dataKeys, infoKey])} due to --dry-run option`);
      await this.removeWals(info, fromRetentionPolicy);
      this.catalog.forget(backupId);
      return;
    }
    const failed = (e: unknown) => new OperationError(`Could not delete backup ${backupId}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    try {
      if (this.options.checkLocks && dataKeys.length > 0) await this.options.checkLocks(dataKeys);
      // Every check that can refuse the deletion is behind us: from here on the backup is FAILED
      // for every reader, barman included (docs/format.md#delete-backup).
      const original = info.status !== STATUS.FAILED ? await this.catalog.markBeingDeleted(backupId) : undefined;
      // The deletion's half of the handshake with backup-keep (docs/format.md#keep-handshake).
      if (keepStatus(await this.catalog.getKeepTarget(backupId, false))) {
        await this.keptWhileMarking(backupId, original);
        if (fromRetentionPolicy) return;
        throw keptBackupRefusal(backupId, this.layout.serverName);
      }
      await this.abortUploads([backupId]);
      await this.deleteKeys(first, 'backup');
      await this.deleteKeys(rest, 'backup');
    } catch (e) {
      throw failed(e);
    }
    // The WAL before backup.info, not after as barman does (docs/format.md#delete-backup): as long
    // as backup.info exists, the next run finds the backup, makes the same WAL decision (it needs
    // the deleted backup in the catalog) and finishes; one killed after backup.info was gone would
    // leave that WAL to no later run of the same command.
    await this.removeWals(info, fromRetentionPolicy);
    try {
      await this.deleteKeys([infoKey], 'backup');
    } catch (e) {
      throw failed(e);
    }
    this.summary.backupIds.push(backupId);
    this.catalog.forget(backupId);
  }

  /**
   * End the multipart uploads left under backups being deleted: a backup that failed while the
   * store was unreachable could not abort its own, and once its backup.info is gone nothing would
   * ever find them, while the store keeps (and bills) their parts. A backup being deleted has a
   * backup.info, so it is over: none of its uploads can still be running. Never fails the run
   * (a warning for what is left); a listing refused for want of permission
   * (s3:ListBucketMultipartUploads, not among those barman documents) is only noted in debug.
   */
  private async abortUploads(backupIds: readonly string[]): Promise<void> {
    const { store } = this;
    if (!store.incompleteUploads || !store.abortIncompleteUpload || backupIds.length === 0) return;
    const base = this.layout.basePrefix;
    const prefix = backupIds.length === 1 ? this.layout.backupPrefix(backupIds[0]!) : base;
    const ids = new Set(backupIds);
    try {
      for await (const upload of store.incompleteUploads(prefix)) {
        if (this.outside(upload.key, prefix)) continue;
        const cut = upload.key.indexOf('/', base.length);
        if (cut < 0 || !ids.has(upload.key.slice(base.length, cut))) continue;
        log.info(`Aborting the incomplete multipart upload of ${upload.key}`);
        await store.abortIncompleteUpload(upload);
      }
    } catch (e) {
      const message = `Could not list the incomplete multipart uploads under ${prefix}: ${e instanceof Error ? e.message : String(e)}`;
      if (e instanceof AccessDeniedError) log.debug(message);
      else log.warning(message);
    }
  }

  /** Delete keys in batches; any key left behind is an error. Counts what went. */
  private async deleteKeys(keys: string[], kind: 'backup' | 'wal'): Promise<void> {
    if (keys.length === 0) return;
    const result = await this.store.deleteMany(keys, this.options.batchSize);
    const deleted = new Set(result.deleted);
    const gone = keys.filter((k) => deleted.has(k));
    if (kind === 'backup') this.summary.backupObjectsDeleted += gone.length;
    else this.summary.walObjectsDeleted += gone.length;
    this.summary.bytesFreed += sizeOf(this.sizes, gone);
    if (result.errors.length > 0) {
      for (const err of result.errors) log.error(`Deletion of object ${err.key} failed: ${err.message}`);
      throw refusedKeys();
    }
  }

  /**
   * The WAL hash directories (`<wals>/<TLI><LOG>/`), listed once per run; a directory deleted whole
   * leaves the set. barman lists them again for every backup: directories created meanwhile by WAL
   * archiving hold only WAL newer than every backup's begin_wal, which no cleanup can touch.
   */
  private async walDirectories(): Promise<Set<string>> {
    if (this.dirCache) return this.dirCache;
    const dirs = new Set<string>();
    for await (const e of this.store.list(this.layout.walsPrefix, { delimiter: '/' })) {
      if (e.kind === 'prefix' && !this.outside(e.prefix, this.layout.walsPrefix)) dirs.add(e.prefix);
    }
    this.dirCache = dirs;
    return dirs;
  }

  /** The WAL listing, read once (after the first whole-directory deletes, as barman does). */
  private async walPaths(): Promise<WalListing> {
    if (this.walCache) return this.walCache;
    const entries: WalEntry[] = [];
    for await (const e of this.store.list(this.layout.walsPrefix)) {
      if (e.kind !== 'object' || this.outside(e.key, this.layout.walsPrefix)) continue;
      const name = walNameFromKey(e.key);
      if (name === null) continue;
      entries.push({ name, key: e.key, size: e.size });
      this.sizes.set(e.key, e.size);
    }
    this.walCache = new WalListing(this.layout.walsPrefix, entries);
    return this.walCache;
  }

  /** barman's _remove_wals_for_backup (docs/format.md#wal-cleanup). Failures are logged and counted, never thrown. */
  private async removeWals(deleted: BackupInfo, fromRetentionPolicy: boolean): Promise<void> {
    const { dryRun } = this.options;
    const backups = (await this.catalog.load()).backups;
    const decision = decideWalCleanup({
      deleted,
      backups,
      keepTarget: (id) => this.keepTargets.get(id) ?? null,
      fromRetentionPolicy,
    });
    if (!decision.allowed) {
      log.debug(`Not removing WAL files for backup ${deleted.backup_id}: ${decision.reason}`);
      return;
    }

    // Whole WAL directories first (barman does this on S3; the result is the same everywhere).
    let listed: Set<string>;
    try {
      listed = await this.walDirectories();
    } catch (e) {
      this.walError(`Cannot clean up WALs for backup ${deleted.backup_id} because an error occurred listing WALs: ${(e as Error).message}`);
      return;
    }
    const plan = deletablePrefixes(decision, listed);
    for (const p of plan.malformed) log.warning(`Ignoring malformed WAL object prefix: ${p}`);
    for (const p of plan.prefixes) {
      if (dryRun) {
        this.options.print(`Skipping deletion of all objects under prefix ${p} due to --dry-run option`);
        continue;
      }
      try {
        const keys: string[] = [];
        for await (const e of this.store.list(p)) {
          if (e.kind !== 'object' || this.outside(e.key, p)) continue;
          keys.push(e.key);
          this.sizes.set(e.key, e.size);
        }
        await this.deleteKeys(keys, 'wal');
        listed.delete(p);
      } catch (e) {
        this.walError(`Could not delete the WAL objects under prefix ${p} for backup ${deleted.backup_id}: ${(e as Error).message}`);
      }
      // What was under the prefix is gone (or will be retried by a later deletion): forget it.
      this.walCache?.removeUnder(p);
    }

    let wals: WalListing;
    try {
      wals = await this.walPaths();
    } catch (e) {
      this.walError(`Cannot clean up WALs for backup ${deleted.backup_id} because an error occurred listing WALs: ${(e as Error).message}`);
      return;
    }
    // Only names below remove_until's begin_wal can go: look at those alone.
    const doomed = deletableWals(decision, wals.below(decision.removeUntil!.begin_wal!, new Set(plan.prefixes)), plan.prefixes);
    if (doomed.length === 0) return;
    const keys = doomed.map((w) => w.key);
    if (dryRun) {
      this.options.print(`Skipping deletion of objects ${pyListRepr(keys)} due to --dry-run option`);
    } else {
      try {
        await this.deleteKeys(keys, 'wal');
      } catch (e) {
        // Left in the listing so that a later deletion in this run retries them (barman's choice).
        this.walError(`Could not delete the following WALs for backup ${deleted.backup_id}: ${pyListRepr(keys)}, Reason: ${(e as Error).message}`);
        return;
      }
    }
    for (const w of doomed) wals.remove(w);
  }

  /**
   * WAL cleanup failures are logged and counted but leave the exit code alone, as barman's: the
   * backups are gone either way, the next run retries the WAL, and CloudNativePG treats any non-zero
   * exit as a failed retention run (it then skips its catalog sync).
   */
  private walError(message: string): void {
    log.error(message);
    this.summary.errors += 1;
  }
}

/** Format the summary line printed after a real deletion (beyond barman, for unattended runs). */
export function formatSummary(s: DeletionSummary, format: 'console' | 'json'): string {
  if (format === 'json') {
    return JSON.stringify({
      backups_deleted: s.backupIds.length,
      backup_ids: s.backupIds,
      backup_objects_deleted: s.backupObjectsDeleted,
      wal_objects_deleted: s.walObjectsDeleted,
      bytes_freed: s.bytesFreed,
      errors: s.errors,
    });
  }
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return (
    `Deleted ${plural(s.backupIds.length, 'backup')} (${plural(s.backupObjectsDeleted, 'object')}) and ` +
    `${plural(s.walObjectsDeleted, 'WAL object')}, ${s.bytesFreed} bytes freed` +
    (s.errors > 0 ? `, ${plural(s.errors, 'error')}` : '')
  );
}

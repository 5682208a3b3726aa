// Which WAL objects go when a backup is deleted (docs/format.md#wal-cleanup): barman-cloud's remove_wal_before_backup,
// as pure planning over the in-memory catalog and the WAL listing. No I/O here: delete.ts lists,
// calls these functions and deletes what they return.
import { STATUS, isInterruptedDeletion, type BackupInfo } from '../catalog/backup-info.js';
import { decodeHashDir } from '../catalog/layout.js';
import { stripAgeSuffix } from '../encryption/names.js';
import { isBackupHistoryFile, isHistoryFile, isWalName, parseSegmentName, walTimeline } from '../xlog.js';

/** Backups used for "previous" / "next" navigation: barman's STATUS_COPY_DONE. */
const NAVIGABLE: ReadonlySet<string> = new Set([STATUS.WAITING_FOR_WALS, STATUS.DONE]);

/** The compression suffixes barman strips (once) from WAL object names (ALLOWED_COMPRESSIONS). */
const WAL_COMPRESSION_SUFFIXES: readonly string[] = ['.gz', '.bz2', '.xz', '.snappy', '.zst', '.lz4'];

/**
 * The WAL name an object stands for (barman's get_wal_paths): its base name if that looks like a
 * WAL file, else the base name minus one known compression suffix if that does; otherwise null
 * (the object is ignored by the cleanup).
 */
export function walNameFromKey(key: string): string | null {
  // an encrypted object (`….age`) stands for the WAL file it holds
  const base = stripAgeSuffix(key.slice(key.lastIndexOf('/') + 1)).name;
  if (isWalName(base)) return base;
  // os.path.splitext: the suffix starts at the last dot (a leading dot is not a suffix).
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return null;
  const suffix = base.slice(dot);
  const name = base.slice(0, dot);
  return WAL_COMPRESSION_SUFFIXES.includes(suffix) && isWalName(name) ? name : null;
}

/** Timeline and log of a segment name (`.partial` and `.backup` included), or null (history files, anything else). */
function decodeSegment(name: string): { tli: number; log: number } | null {
  if (!isWalName(name) || isHistoryFile(name)) return null;
  const { timeline, log } = parseSegmentName(name);
  return { tli: timeline, log };
}

/**
 * The closest older (-1) or newer (+1) DONE / WAITING_FOR_WALS backup in ID order. A backup whose
 * deletion was interrupted counts as what it was before the mark (docs/format.md#delete-backup):
 * the run that finishes it makes the WAL decisions of the run that began it.
 */
export function neighbourBackup(backups: ReadonlyMap<string, BackupInfo>, backupId: string, direction: -1 | 1): BackupInfo | null {
  const ids = [...new Set([...backups.keys(), backupId])].sort();
  for (let i = ids.indexOf(backupId) + direction; i >= 0 && i < ids.length; i += direction) {
    const b = backups.get(ids[i]!);
    if (b && (NAVIGABLE.has(b.status ?? '') || isInterruptedDeletion(b))) return b;
  }
  return null;
}

export interface WalCleanupInput {
  /** The backup being deleted. */
  deleted: BackupInfo;
  /** The catalog as it stands, normally still including `deleted` (barman removes it afterwards). */
  backups: ReadonlyMap<string, BackupInfo>;
  /** Keep annotation of a backup, or null. */
  keepTarget: (backupId: string) => string | null;
  /**
   * True when the deletion comes from a retention policy (-r): older standalone-kept backups then
   * only protect their own WAL range. With -b they block the cleanup altogether.
   */
  fromRetentionPolicy: boolean;
}

export interface WalCleanupDecision {
  /** False: no WAL may be deleted (an older backup still needs everything after it). */
  allowed: boolean;
  /** Why not, for the log. */
  reason?: string;
  /** WALs before this backup's begin_wal are candidates (the next backup, or the deleted one). */
  removeUntil?: BackupInfo;
  /** Inclusive [begin_wal, end_wal] ranges of older standalone-kept backups. */
  protectedRanges: [string, string][];
  /** Timelines on which nothing is deleted. */
  protectedTimelines: Set<number>;
}

/**
 * Whether WALs can go after deleting `deleted`, and within which limits (docs/format.md#wal-cleanup steps 1-3).
 * Walking back over older DONE/WAITING_FOR_WALS backups: none → allowed; keep standalone → with
 * -r protect its range and look further back, with -b stop; anything else → not allowed.
 */
export function decideWalCleanup(input: WalCleanupInput): WalCleanupDecision {
  const { deleted, backups } = input;
  const ranges: [string, string][] = [];
  const refuse = (reason: string): WalCleanupDecision => ({ allowed: false, reason, protectedRanges: [], protectedTimelines: new Set() });
  let prev = neighbourBackup(backups, deleted.backup_id, -1);
  while (prev) {
    if (input.keepTarget(prev.backup_id) !== 'standalone') {
      return refuse(`backup ${prev.backup_id} is older and needs the WAL files after it`);
    }
    if (!input.fromRetentionPolicy) {
      return refuse(`the older backup ${prev.backup_id} is kept standalone`);
    }
    if (!prev.begin_wal || !prev.end_wal) {
      // barman would fail comparing names with None; keeping everything is the safe reading.
      return refuse(`the standalone backup ${prev.backup_id} has no WAL range`);
    }
    ranges.push([prev.begin_wal, prev.end_wal]);
    prev = neighbourBackup(backups, prev.backup_id, -1);
  }
  const removeUntil = neighbourBackup(backups, deleted.backup_id, 1) ?? deleted;
  if (!removeUntil.begin_wal || !decodeSegment(removeUntil.begin_wal)) {
    return refuse(`backup ${removeUntil.backup_id} has no valid begin_wal`);
  }
  // Every timeline holding a backup, except the one of remove_until. barman-cloud compares the
  // catalog entries with a freshly read copy of the deleted backup by identity, so the deleted
  // backup's own timeline is protected too (unless it is remove_until's).
  const protectedTimelines = new Set<number>();
  for (const b of backups.values()) if (typeof b.timeline === 'number') protectedTimelines.add(b.timeline);
  if (typeof deleted.timeline === 'number') protectedTimelines.add(deleted.timeline);
  if (typeof removeUntil.timeline === 'number') protectedTimelines.delete(removeUntil.timeline);
  return { allowed: true, removeUntil, protectedRanges: ranges, protectedTimelines };
}

export interface PrefixPlan {
  /** Whole WAL directories (`…/wals/<TLI><LOG>/`) to delete. */
  prefixes: string[];
  /** Directory names that do not look like `<TLI8><LOG8>` (barman logs a WARNING for each). */
  malformed: string[];
}

/**
 * Whole WAL directories that can go at once (docs/format.md#wal-cleanup step 4): not on a protected timeline, not
 * inside the (tli, log) span of a protected range, on remove_until's timeline below its log.
 */
export function deletablePrefixes(decision: WalCleanupDecision, prefixes: Iterable<string>): PrefixPlan {
  const plan: PrefixPlan = { prefixes: [], malformed: [] };
  if (!decision.allowed || !decision.removeUntil) return plan;
  const until = decodeSegment(decision.removeUntil.begin_wal!)!;
  const spans = decision.protectedRanges.map(([b, e]) => [decodeSegment(b), decodeSegment(e)] as const);
  for (const prefix of prefixes) {
    const parts = prefix.split('/');
    const dir = parts.length >= 2 ? parts[parts.length - 2]! : '';
    const hd = decodeHashDir(dir);
    if (!hd) {
      plan.malformed.push(prefix);
      continue;
    }
    if (decision.protectedTimelines.has(hd.tli)) continue;
    const inSpan = spans.some(([b, e]) => {
      // A range whose names do not decode protects everything (conservative).
      if (!b || !e) return true;
      return hd.tli >= b.tli && hd.log >= b.log && hd.tli <= e.tli && hd.log <= e.log;
    });
    if (inSpan) continue;
    if (hd.tli === until.tli && hd.log < until.log) plan.prefixes.push(prefix);
  }
  return plan;
}

/** Whether `key` starts with one of the `/`-terminated prefixes (checked through its ancestors). */
function underAny(key: string, prefixes: ReadonlySet<string>): boolean {
  for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) {
    if (prefixes.has(key.slice(0, i + 1))) return true;
  }
  return false;
}

/** One WAL object of the listing: the WAL name (suffix stripped) and the object. */
export interface WalEntry {
  name: string;
  key: string;
  size?: number;
}

/**
 * The WAL objects to delete one by one (docs/format.md#wal-cleanup step 5), sorted by key: skip objects under a
 * prefix deleted whole, history files, protected timelines, names inside a protected range (for
 * `.backup` files their first 24 characters), and keep everything not `< removeUntil.begin_wal`
 * (plain string comparison, as barman does).
 */
export function deletableWals(decision: WalCleanupDecision, wals: Iterable<WalEntry>, deletedPrefixes: readonly string[] = []): WalEntry[] {
  if (!decision.allowed || !decision.removeUntil) return [];
  const limit = decision.removeUntil.begin_wal!;
  const skip = new Set(deletedPrefixes);
  const out: WalEntry[] = [];
  for (const wal of wals) {
    if (skip.size > 0 && underAny(wal.key, skip)) continue;
    if (isHistoryFile(wal.name)) continue;
    if (decision.protectedTimelines.size > 0 && decision.protectedTimelines.has(walTimeline(wal.name))) continue;
    const rangeName = isBackupHistoryFile(wal.name) ? wal.name.slice(0, 24) : wal.name;
    if (decision.protectedRanges.some(([b, e]) => rangeName >= b && rangeName <= e)) continue;
    if (wal.name < limit) out.push(wal);
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Cleanup steps that share their protections (timelines, standalone ranges, remove_until's
 * timeline): together they delete exactly what their step with the highest remove_until deletes,
 * since both of barman's tests (name < begin_wal, hash directory log < its log) only widen with it.
 */
export interface CleanupClass {
  /** A decision standing for the whole class: the protections, and the highest remove_until. */
  decision: WalCleanupDecision;
  /** The backup whose deletion made that step (for messages). */
  backupId: string;
}

/**
 * Fold the WAL decisions of deleting several backups one after the other (each computed on the
 * catalog without the backups deleted before it) into a few classes, so that one pass over the
 * WAL listing applies all of them: an object goes when any step would have deleted it.
 */
export function foldCleanupSteps(steps: readonly { backupId: string; decision: WalCleanupDecision }[]): CleanupClass[] {
  const classes = new Map<string, CleanupClass>();
  for (const { backupId, decision } of steps) {
    if (!decision.allowed || !decision.removeUntil) continue;
    const until = decision.removeUntil.begin_wal!;
    const key = JSON.stringify([[...decision.protectedTimelines].sort((a, b) => a - b), decision.protectedRanges, until.slice(0, 8)]);
    const seen = classes.get(key);
    if (!seen || until > seen.decision.removeUntil!.begin_wal!) classes.set(key, { decision, backupId });
  }
  return [...classes.values()];
}

/**
 * Whether one listed WAL-area object goes under any of the classes: its first-level hash
 * directory would be deleted whole (docs/format.md#wal-cleanup, step 4), or its WAL name one by one (step 5).
 * `dirVerdicts` caches the directory answers between calls.
 */
export function walObjectDoomed(
  classes: readonly CleanupClass[], walsPrefix: string, entry: WalEntry | { key: string; name: null }, dirVerdicts: Map<string, boolean>,
): boolean {
  const rest = entry.key.slice(walsPrefix.length);
  const cut = rest.indexOf('/');
  if (cut >= 0) {
    const prefix = walsPrefix + rest.slice(0, cut + 1);
    let whole = dirVerdicts.get(prefix);
    if (whole === undefined) {
      whole = classes.some((c) => deletablePrefixes(c.decision, [prefix]).prefixes.length > 0);
      dirVerdicts.set(prefix, whole);
    }
    if (whole) return true;
  }
  if (entry.name === null) return false;
  const wal = entry as WalEntry;
  return classes.some((c) => deletableWals(c.decision, [wal]).length > 0);
}

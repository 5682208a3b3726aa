// WAL continuity for `verify` (pure: no I/O). Which segments a backup needs — its own begin_wal to
// end_wal and, for the newest backup, on to the newest archived segment across the timeline
// switches that `.history` files record — and which of them the archive lacks.
import { isSegmentName, parseLsn, parseSegmentName, segmentName, segmentsPerLogId } from '../xlog.js';

/** One line of a timeline history file: `parent` ended at LSN `switchLsn` (the next timeline began there). */
export interface HistoryEntry {
  parent: number;
  switchLsn: bigint;
}

const HISTORY_LINE = /^\s*(\d+)\s+([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})(\s|$)/;

/**
 * Parses the `.history` file of `timeline` as PostgreSQL writes it: one `<parent tli>\t<X/Y>\t<reason>`
 * line per ancestor, oldest first; blank lines and `#` comments are skipped. Returns null when a line
 * is not of that shape, or when the parents are not increasing 32-bit timeline IDs below `timeline`:
 * PostgreSQL's recovery refuses such a file (FATAL), so it proves nothing about the chain
 * (docs/format.md#wal-ranges).
 */
export function parseHistoryFile(text: string, timeline: number): HistoryEntry[] | null {
  const entries: HistoryEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = HISTORY_LINE.exec(line);
    if (!m) return null;
    const parent = Number(m[1]);
    if (parent >= timeline || parent <= (entries.at(-1)?.parent ?? 0)) return null;
    entries.push({ parent, switchLsn: parseLsn(`${m[2]}/${m[3]}`) });
  }
  return entries;
}

/** A segment's position on its timeline as one integer (log * segments-per-log + seg). */
function segmentNumber(name: string, segmentSize: number): number {
  const id = parseSegmentName(name);
  return id.log * segmentsPerLogId(segmentSize) + id.seg;
}

export function segmentNameAt(timeline: number, segno: number, segmentSize: number): string {
  const per = segmentsPerLogId(segmentSize);
  return segmentName({ timeline, log: Math.floor(segno / per), seg: segno % per });
}

/** The segment holding LSN `lsn`. */
function segnoOfLsn(lsn: bigint, segmentSize: number): number {
  return Number(lsn / BigInt(segmentSize));
}

/** A run of consecutive segments of one timeline, both ends included. */
export interface SegmentRange {
  timeline: number;
  first: number;
  last: number;
}

export interface ChainInput {
  /** Timeline of the backup (its begin_wal's). */
  timeline: number;
  /** The backup's last needed segment (end_wal). */
  endWal: string;
  segmentSize: number;
  /** Newest archived segment per timeline. */
  newestByTimeline: ReadonlyMap<number, string>;
  /** The parsed history file of each timeline that has one (null: unreadable). */
  histories: ReadonlyMap<number, HistoryEntry[] | null>;
}

export interface ChainPlan {
  /** Segments needed after end_wal, up to the newest archived one of the chosen timeline. */
  ranges: SegmentRange[];
  /** The timeline followed to the end. */
  targetTimeline: number;
  /** Newest archived segment that the chain reaches (undefined: none after end_wal). */
  newest?: string;
}

/**
 * The segments that recovery from a backup ending at `endWal` must replay to reach the newest
 * archived segment: the newest timeline that descends from the backup's (its history lists the
 * backup's timeline, switched at or after the backup's end) is followed; on each ancestor timeline
 * the segments up to the one before the switch point are needed, and the new timeline starts with
 * the segment that holds the switch point (PostgreSQL copies the old timeline's data into it).
 */
export function planChain(input: ChainInput): ChainPlan {
  const { timeline: base, segmentSize } = input;
  const endSeg = segmentNumber(input.endWal, segmentSize);
  const candidates = [...new Set([...input.newestByTimeline.keys(), ...input.histories.keys()])]
    .filter((t) => t > base)
    .sort((a, b) => b - a);
  for (const t of candidates) {
    const history = input.histories.get(t);
    if (!history) continue;
    const from = history.findIndex((e) => e.parent === base);
    if (from < 0) continue;
    const steps = history.slice(from);
    // A switch before the backup ended means this timeline forked off before the backup's end.
    if (segnoOfLsn(steps[0]!.switchLsn, segmentSize) < endSeg) continue;
    const ranges: SegmentRange[] = [];
    let pos = endSeg + 1;
    let tli = base;
    for (let i = 0; i < steps.length; i++) {
      const switchSeg = segnoOfLsn(steps[i]!.switchLsn, segmentSize);
      if (pos <= switchSeg - 1) ranges.push({ timeline: tli, first: pos, last: switchSeg - 1 });
      pos = Math.max(pos, switchSeg);
      tli = i + 1 < steps.length ? steps[i + 1]!.parent : t;
    }
    const newest = input.newestByTimeline.get(t);
    if (newest !== undefined) {
      const last = segmentNumber(newest, segmentSize);
      if (pos <= last) ranges.push({ timeline: t, first: pos, last });
    }
    return { ranges, targetTimeline: t, newest };
  }
  const newest = input.newestByTimeline.get(base);
  const ranges: SegmentRange[] = [];
  if (newest !== undefined && segmentNumber(newest, segmentSize) > endSeg) {
    ranges.push({ timeline: base, first: endSeg + 1, last: segmentNumber(newest, segmentSize) });
  }
  return { ranges, targetTimeline: base, newest };
}

/** The range from begin_wal to end_wal of one backup (null when end_wal precedes begin_wal). */
export function backupRange(beginWal: string, endWal: string, segmentSize: number): SegmentRange | null {
  const a = parseSegmentName(beginWal);
  const first = segmentNumber(beginWal, segmentSize);
  const last = segmentNumber(endWal, segmentSize);
  if (!isSegmentName(beginWal) || !isSegmentName(endWal) || last < first) return null;
  return { timeline: a.timeline, first, last };
}

/**
 * The archived segments of each timeline as sorted segment numbers. Names whose segment field is past
 * the last one of a log id (no such segment exists for this size) are left out, so that none stands
 * for another segment's number.
 */
export function indexSegments(names: Iterable<string>, segmentSize: number): Map<number, number[]> {
  const per = segmentsPerLogId(segmentSize);
  const out = new Map<number, number[]>();
  for (const name of names) {
    const id = parseSegmentName(name);
    if (!isSegmentName(name) || id.seg >= per) continue;
    let list = out.get(id.timeline);
    if (!list) out.set(id.timeline, (list = []));
    list.push(id.log * per + id.seg);
  }
  for (const list of out.values()) list.sort((a, b) => a - b);
  return out;
}

/**
 * Runs of missing segments within `range`, from the archived segments (indexSegments). It walks the
 * archived segments inside the range, never the range itself: a range comes from backup.info, a
 * `.history` file's switch point or a listed name, all the store's to choose, and one ending at
 * FFFFFFFF/FFFFFFFF is 2^40 segments long (docs/format.md#wal-ranges).
 */
export function missingRuns(range: SegmentRange, archived: ReadonlyMap<number, readonly number[]>): SegmentRange[] {
  const have = archived.get(range.timeline) ?? [];
  let lo = 0;
  let hi = have.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (have[mid]! < range.first) lo = mid + 1;
    else hi = mid;
  }
  const out: SegmentRange[] = [];
  let pos = range.first;
  for (let i = lo; i < have.length && have[i]! <= range.last; i++) {
    if (have[i]! > pos) out.push({ timeline: range.timeline, first: pos, last: have[i]! - 1 });
    pos = have[i]! + 1;
  }
  if (pos <= range.last) out.push({ timeline: range.timeline, first: pos, last: range.last });
  return out;
}

// The one owner of PostgreSQL's WAL naming and LSN arithmetic (docs/format.md#wal-names): segment,
// .partial, .backup and .history names, segment numbering, LSN text. Below every other layer (it
// imports only errors.ts), so the catalog, the WAL commands, backup, restore, retention and verify
// all use it, and barman-cloud-restore reads an LSN without loading node-postgres.
import { GeneralError } from './errors.js';

/** barman's accepted names, case-insensitive hex (docs/format.md#wal-names). */
const WAL_NAME = /^[0-9A-F]{8}([0-9A-F]{8}[0-9A-F]{8}(\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$/i;

export function isWalName(name: string): boolean {
  return WAL_NAME.test(name);
}

export function isHistoryFile(name: string): boolean {
  return /^[0-9A-F]{8}\.history$/i.test(name);
}

/** A backup history file: `<segment>.<offset 8 hex>.backup`. */
export function isBackupHistoryFile(name: string): boolean {
  return /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/i.test(name);
}

export function isSegmentName(name: string): boolean {
  return /^[0-9A-F]{24}$/i.test(name);
}

export interface SegmentId {
  timeline: number;
  log: number;
  seg: number;
}

export function parseSegmentName(name: string): SegmentId {
  return {
    timeline: Number.parseInt(name.slice(0, 8), 16),
    log: Number.parseInt(name.slice(8, 16), 16),
    seg: Number.parseInt(name.slice(16, 24), 16),
  };
}

/** `%08X`: how every field of a WAL name is written. */
export function hex8(n: number | bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** The timeline of any WAL name (its first 8 hex digits). */
export function walTimeline(name: string): number {
  return Number.parseInt(name.slice(0, 8), 16);
}

/** `<TLI8>.history` */
export function historyFileName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

export function segmentName(id: SegmentId): string {
  return hex8(id.timeline) + hex8(id.log) + hex8(id.seg);
}

/** PostgreSQL's XLogSegmentsPerXLogId: how many segments one log id holds for this segment size. */
export function segmentsPerLogId(segmentSize: number): number {
  return 0x100000000 / segmentSize;
}

/**
 * The most plain bytes a WAL file of this name may hold (docs/format.md#metadata-limits): PostgreSQL's
 * largest segment (1 GiB) for segments and .partial files, 16 MiB for a timeline history file (a
 * line of under 100 bytes per switch), 1 MiB for a backup history file (a few hundred bytes).
 */
export function walFileMaxBytes(name: string): number {
  if (isHistoryFile(name)) return 16 << 20;
  if (isBackupHistoryFile(name)) return 1 << 20;
  return 1 << 30;
}

/** Valid wal_segment_size values: a power of two from 1 MiB to 1 GiB. */
export function isValidSegmentSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 << 20 && size <= 1 << 30 && (size & (size - 1)) === 0;
}

/** The segment after `name` on the same timeline. */
export function nextSegment(name: string, segmentSize: number): string {
  const id = parseSegmentName(name);
  return id.seg + 1 >= segmentsPerLogId(segmentSize)
    ? segmentName({ timeline: id.timeline, log: id.log + 1, seg: 0 })
    : segmentName({ ...id, seg: id.seg + 1 });
}

/** `X/Y` → bigint. */
export function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** An LSN as PostgreSQL prints it (`%X/%X`: upper case, no leading zeros); refuses anything else. */
export function formatLsn(lsn: string): string {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new GeneralError(`invalid LSN ${JSON.stringify(lsn)}`);
  return `${Number.parseInt(m[1]!, 16).toString(16).toUpperCase()}/${Number.parseInt(m[2]!, 16).toString(16).toUpperCase()}`;
}

/** barman's begin_wal/end_wal and offset from an LSN (docs/format.md#postgres-session). */
export function walLocation(lsn: string, timeline: number, segmentSize: number): { wal: string; offset: number } {
  const value = parseLsn(lsn);
  const size = BigInt(segmentSize);
  const perFile = 0xffffffffn / size;
  const seg = (value & (size * perFile)) / size;
  return { wal: hex8(timeline) + hex8(value >> 32n) + hex8(seg), offset: Number(value & (size - 1n)) };
}

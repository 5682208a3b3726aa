// WAL file names (docs/format.md#wal-names): segments, .partial segments, .backup history files, .history files.

/** barman's accepted names, case-insensitive hex (docs/format.md#wal-names). */
const WAL_NAME = /^[0-9A-F]{8}([0-9A-F]{8}[0-9A-F]{8}(\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$/i;

export function isWalName(name: string): boolean {
  return WAL_NAME.test(name);
}

export function isHistoryFile(name: string): boolean {
  return /^[0-9A-F]{8}\.history$/i.test(name);
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

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

export function segmentName(id: SegmentId): string {
  return hex8(id.timeline) + hex8(id.log) + hex8(id.seg);
}

/** PostgreSQL's XLogSegmentsPerXLogId: how many segments one log id holds for this segment size. */
export function segmentsPerLogId(segmentSize: number): number {
  return 0x100000000 / segmentSize;
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

// The checks wal-restore applies to what it downloads: the segment size a segment's own first page
// states, and which temp files beside wal_dest are ours to sweep.
import { mkdtempSync, rmSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { headerSegmentSize } from '../../src/wal/restore.ts';
import { STALE_AFTER_MS, isOurTempName, removeStaleTemps, tempBeside } from '../../src/wal/temp-files.ts';

/** The first 40 bytes of a segment: XLogLongPageHeaderData as PostgreSQL 15 writes it on x86-64. */
function longHeader(pageAddress: bigint, segmentSize: number, info = 0x0002, blockSize = 8192): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt16LE(0xd110, 0); // xlp_magic (PostgreSQL 15)
  h.writeUInt16LE(info, 2);
  h.writeUInt32LE(1, 4); // xlp_tli
  h.writeBigUInt64LE(pageAddress, 8);
  h.writeBigUInt64LE(7_000_000_000_000_000_000n, 24); // xlp_sysid
  h.writeUInt32LE(segmentSize, 32);
  h.writeUInt32LE(blockSize, 36);
  return h;
}

describe('headerSegmentSize', () => {
  it('reads the segment size when the page address matches the name', () => {
    expect(headerSegmentSize('000000010000000000000001', longHeader(16n << 20n, 16 << 20))).toBe(16 << 20);
    expect(headerSegmentSize('0000000300000002000000FF', longHeader((2n << 32n) + 255n * BigInt(1 << 20), 1 << 20))).toBe(1 << 20);
    expect(headerSegmentSize('000000010000000000000001', longHeader(16n << 20n, 16 << 20, 0x0007))).toBe(16 << 20);
  });

  it('reads only what places the segment: a later version\'s magic, flag bits or page size do not matter', () => {
    const name = '000000010000000000000001';
    const later = longHeader(16n << 20n, 16 << 20, 0x0012, 1 << 17);
    later.writeUInt16LE(0xd2ff, 0);
    expect(headerSegmentSize(name, later)).toBe(16 << 20);
    expect(headerSegmentSize(name, longHeader(16n << 20n, 16 << 20, 0x0001))).toBe(16 << 20);
  });

  it('says nothing unless it is that segment’s long page header', () => {
    const name = '000000010000000000000001';
    expect(headerSegmentSize(name, longHeader(32n << 20n, 16 << 20))).toBeUndefined(); // another segment's page
    expect(headerSegmentSize(name, longHeader(16n << 20n, 3 << 20))).toBeUndefined(); // not a power of two
    expect(headerSegmentSize(name, longHeader(16n << 20n, 512 << 10))).toBeUndefined(); // below 1 MiB
    expect(headerSegmentSize(name, longHeader(16n << 20n, 2 << 30 >>> 0))).toBeUndefined(); // above 1 GiB
    expect(headerSegmentSize('0000000100000000000000FF', longHeader(255n << 24n, 16 << 24))).toBeUndefined(); // no such segment with 256 MiB ones
    expect(headerSegmentSize(name, longHeader(16n << 20n, 16 << 20).subarray(0, 39))).toBeUndefined();
    expect(headerSegmentSize(`${name}.partial`, longHeader(16n << 20n, 16 << 20))).toBeUndefined();
    expect(headerSegmentSize('00000002.history', longHeader(16n << 20n, 16 << 20))).toBeUndefined();
    expect(headerSegmentSize(name, Buffer.alloc(40))).toBeUndefined();
  });
});

describe('temp files beside wal_dest', () => {
  it('names them distinctively and recognises only that exact pattern', () => {
    const t = tempBeside('/pg/pg_wal/RECOVERYXLOG');
    expect(t).toMatch(new RegExp(`^/pg/pg_wal/RECOVERYXLOG\\.tmp-barman-cloud-${process.pid}-[0-9a-f]{8}$`));
    expect(isOurTempName(t.slice('/pg/pg_wal/'.length))).toBe(true);
    for (const n of ['RECOVERYXLOG', 'RECOVERYXLOG.tmp-123-0badc0de', '.tmp-barman-cloud-1-0badc0de', 'X.tmp-barman-cloud-1-0badc0de.bak', 'X.tmp-barman-cloud-x-0badc0de']) {
      expect(isOurTempName(n), n).toBe(false);
    }
  });

  it('removes old ones only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-sweep-'));
    try {
      const now = Date.now();
      const at = (name: string, ageMs: number) => {
        writeFileSync(join(dir, name), 'x');
        utimesSync(join(dir, name), (now - ageMs) / 1000, (now - ageMs) / 1000);
      };
      at('A.tmp-barman-cloud-1-00000001', STALE_AFTER_MS + 1000);
      at('B.tmp-barman-cloud-1-00000002', STALE_AFTER_MS - 60_000);
      at('C.tmp-1-00000003', STALE_AFTER_MS * 10);
      expect(await removeStaleTemps(dir, now)).toBe(1);
      expect(readdirSync(dir).sort()).toEqual(['B.tmp-barman-cloud-1-00000002', 'C.tmp-1-00000003']);
      expect(await removeStaleTemps(join(dir, 'missing'), now)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

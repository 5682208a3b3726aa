// BackupManifestBuilder (src/backup/manifest.ts) keeps one slot per file and hands the manifest out
// in pieces: its length first, then at most 256 KiB at a time, never other bytes than announced.
// The text itself is checked against PostgreSQL 15 in test/integration/backup-manifest.test.ts.
import { describe, expect, it } from 'vitest';
import { BackupManifestBuilder, crc32cHex, type WalRange } from '../../src/backup/manifest.ts';
import { parseBackupManifest } from '../../src/backup/manifest-reader.ts';
import { GeneralError } from '../../src/errors.ts';

const RANGES: WalRange[] = [{ timeline: 1, startLsn: '0/2000028', endLsn: '0/2000100' }];
const PIECE = 256 * 1024;

function pieces(b: BackupManifestBuilder): { byteLength: number; chunks: Buffer[] } {
  const r = b.render(RANGES);
  return { byteLength: r.byteLength, chunks: [...r.chunks] };
}

describe('BackupManifestBuilder', () => {
  it('renders 100,000 files in pieces of at most 256 KiB that add up to the announced length and parse back', () => {
    const b = new BackupManifestBuilder();
    const n = 100_000;
    for (let i = 0; i < n; i++) b.addFile(`base/16384/${100000 + i}`, 8192 * (i % 100), 1733300000 + i, i * 2654435761);
    expect(b.size).toBe(n);
    const { byteLength, chunks } = pieces(b);
    expect(chunks.length).toBeGreaterThan(50);
    for (const c of chunks) {
      expect(c.length).toBeGreaterThan(0);
      expect(c.length).toBeLessThanOrEqual(PIECE);
    }
    const whole = Buffer.concat(chunks);
    expect(whole.length).toBe(byteLength);
    // parseBackupManifest checks the Manifest-Checksum over the bytes before the last line
    const parsed = parseBackupManifest(whole);
    expect(parsed.files.size).toBe(n);
    expect(parsed.walRanges).toEqual(RANGES);
    const keys = [...parsed.files.keys()];
    expect(keys[0]).toBe('base/16384/100000');
    expect(keys[n - 1]).toBe(`base/16384/${100000 + n - 1}`);
    for (const i of [0, 1023, 1024, 1025, 65_536, n - 1]) {
      expect(parsed.files.get(`base/16384/${100000 + i}`)).toMatchObject({
        size: 8192 * (i % 100),
        checksum: crc32cHex(i * 2654435761),
        lastModified: new Date((1733300000 + i) * 1000).toISOString().replace('T', ' ').replace('.000Z', ' GMT'),
      });
    }
  });

  it('moves a path added again to the end with its later values; a link copies its target; backup_manifest is never listed', () => {
    const b = new BackupManifestBuilder();
    b.addFile('PG_VERSION', 3, 10, 1);
    b.addFile('base/1/1259', 8192, 20, 2);
    b.addFile('base/1/hl_a', 100, 30, 3);
    b.addFile('backup_manifest', 5, 40, 4);
    b.addLink('base/1/hl_b', 'base/1/hl_a');
    b.addLink('base/1/nowhere', 'base/1/missing');
    b.addFile('PG_VERSION', 4, 50, 5);
    // the target written again later does not change what the link recorded
    b.addFile('base/1/hl_a', 200, 60, 6);
    expect(b.size).toBe(4);
    const text = Buffer.concat(pieces(b).chunks).toString('utf8');
    expect(text).not.toContain('backup_manifest');
    const parsed = parseBackupManifest(text);
    expect([...parsed.files.keys()]).toEqual(['base/1/1259', 'base/1/hl_b', 'PG_VERSION', 'base/1/hl_a']);
    expect(parsed.files.get('PG_VERSION')).toMatchObject({ size: 4, checksum: crc32cHex(5), lastModified: '1970-01-01 00:00:50 GMT' });
    expect(parsed.files.get('base/1/hl_b')).toMatchObject({ size: 100, checksum: crc32cHex(3), lastModified: '1970-01-01 00:00:30 GMT' });
    expect(parsed.files.get('base/1/hl_a')).toMatchObject({ size: 200, checksum: crc32cHex(6) });
  });

  it('writes a path that is not UTF-8 as Encoded-Path and a UTF-8 one given as bytes as Path', () => {
    const b = new BackupManifestBuilder();
    b.addFile(Buffer.from([0x66, 0xff, 0x2f, 0x61]), 3, 0, 0x01020304);
    b.addFile(Buffer.from('base/1/ü', 'utf8'), 1, 0, 0);
    b.addFile(Buffer.from([0x66, 0xff, 0x2f, 0x61]), 4, 0, 0x01020304);
    const text = Buffer.concat(pieces(b).chunks).toString('utf8');
    expect(text).toContain('{ "Path": "base/1/ü", "Size": 1,');
    expect(text).toContain('{ "Encoded-Path": "66ff2f61", "Size": 4, "Last-Modified": "1970-01-01 00:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "04030201" }');
    expect(text.indexOf('"Encoded-Path"')).toBeGreaterThan(text.indexOf('"base/1/ü"'));
    expect(parseBackupManifest(text).files.size).toBe(2);
  });

  it('hands a line longer than a piece out in pieces of its own', () => {
    const b = new BackupManifestBuilder();
    const long = `base/1/${'\u0001'.repeat(100_000)}`; // escaped as \u0001: 600 KB of text
    b.addFile('PG_VERSION', 3, 0, 7);
    b.addFile(long, 1, 0, 0);
    b.addFile('global/pg_control', 8192, 0, 9);
    const { byteLength, chunks } = pieces(b);
    expect(byteLength).toBeGreaterThan(2 * PIECE);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(PIECE);
    const parsed = parseBackupManifest(Buffer.concat(chunks));
    expect([...parsed.files.keys()]).toEqual(['PG_VERSION', long, 'global/pg_control']);
  });

  it.each([
    ['a file recorded after the length was counted', (b: BackupManifestBuilder) => b.addFile('base/1/late', 1, 0, 0), /changed while it was written: more than the \d+ bytes announced/],
    ['a file recorded again with a longer size', (b: BackupManifestBuilder) => b.addFile('base/1/4999', 100_000, 0, 0), /changed while it was written: more than the \d+ bytes announced/],
    ['a file recorded again with a shorter size', (b: BackupManifestBuilder) => b.addFile('base/1/4999', 1, 0, 0), /changed while it was written: \d+ bytes, fewer than the \d+ bytes announced/],
  ])('fails rather than hand out other bytes than announced: %s', (_, change, message) => {
    const b = new BackupManifestBuilder();
    for (let i = 0; i < 5000; i++) b.addFile(`base/1/${i}`, 1000, 0, i);
    const r = b.render(RANGES);
    const it = r.chunks[Symbol.iterator]();
    const first = it.next();
    expect(first.done).toBe(false); // a piece handed out before the change
    let handed = (first.value as Buffer).length;
    change(b);
    let failure: unknown;
    try {
      for (let next = it.next(); !next.done; next = it.next()) handed += next.value.length;
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(GeneralError);
    expect((failure as Error).message).toMatch(message);
    expect(handed).toBeLessThan(r.byteLength);
    // rendered again, the changed builder is consistent
    const again = pieces(b);
    expect(Buffer.concat(again.chunks).length).toBe(again.byteLength);
  });
});

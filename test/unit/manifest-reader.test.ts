// The streamed backup_manifest reader (src/backup/manifest-reader.ts, docs/format.md#manifest-reading):
// the same entries whatever the pieces it is fed in, entries handed over before the end, and the
// refusals that bound its memory on hostile input (a line without end, a field PostgreSQL does not
// know, a nested value), each checked to fail without its guard.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BackupManifestReader, MAX_LINE, parseBackupManifest } from '../../src/backup/manifest-reader.ts';
import type { ManifestFileEntry } from '../../src/backup/manifest.ts';
import { ArchiveFiles, ManifestMember } from '../../src/verify/manifest-check.ts';

/** A manifest laid out as PostgreSQL writes one: one entry per line, the checksum over all but the last line. */
function manifest(fileLines: string[], opts: { top?: string; ranges?: string[] } = {}): Buffer {
  let body = `{ "PostgreSQL-Backup-Manifest-Version": 1,${opts.top ?? ''}\n"Files": [`;
  if (fileLines.length) body += `\n${fileLines.join(',\n')}`;
  body += `\n],\n"WAL-Ranges": [\n${(opts.ranges ?? ['{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }']).join(',\n')}\n],\n`;
  const sum = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`${body}"Manifest-Checksum": "${sum}"}\n`, 'utf8');
}

const fileLine = (path: string, size: number, crc: string) =>
  `{ "Path": ${JSON.stringify(path)}, "Size": ${size}, "Last-Modified": "2026-12-05 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "${crc}" }`;

/** Feeds `bytes` in pieces of the given sizes (cycled), each piece a fresh copy later overwritten, as a reused read buffer is. */
function readInPieces(bytes: Buffer, sizes: number[]): { entries: ManifestFileEntry[]; summary: ReturnType<BackupManifestReader['end']> } {
  const entries: ManifestFileEntry[] = [];
  const reader = new BackupManifestReader((e) => entries.push(e));
  const scratch = Buffer.alloc(Math.max(...sizes));
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, bytes.length - at);
    bytes.copy(scratch, 0, at, at + n);
    reader.write(scratch.subarray(0, n));
    scratch.fill(0x7b); // what a reused buffer holds next: the reader must have copied what it keeps
    at += n;
  }
  return { entries, summary: reader.end() };
}

describe('backup_manifest read in pieces', () => {
  const paths = Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? `base/1/é"\\\n${i}` : `base/16384/${16000 + i}`));
  const text = manifest(paths.map((p, i) => fileLine(p, i * 8192, (i * 2654435761 >>> 0).toString(16).padStart(8, '0'))));

  it('yields the same entries and summary whatever the piece sizes, down to one byte', () => {
    const whole = readInPieces(text, [text.length]);
    expect(whole.entries.map((e) => e.path)).toEqual(paths);
    expect(whole.entries[7]).toEqual({ path: paths[7], size: 7 * 8192, algorithm: 'CRC32C', checksum: expect.stringMatching(/^[0-9a-f]{8}$/), lastModified: '2026-12-05 10:00:00 GMT' });
    expect(whole.summary).toEqual({ version: 1, files: 300, walRanges: [{ timeline: 1, startLsn: '0/2000028', endLsn: '0/2000100' }] });
    for (const sizes of [[1], [2, 3], [7], [64, 1, 13], [4096]]) expect(readInPieces(text, sizes)).toEqual(whole);
  });

  it('decodes escapes exactly as JSON.parse does (surrogate pairs included)', () => {
    const odd = ['a"b\n', 'tab\there', '\u00e9\u{1F600}', 'back\\slash', '/'];
    const { entries } = readInPieces(manifest(odd.map((p) => fileLine(p, 1, '00000000').replace(JSON.stringify(p), JSON.stringify(p).replace('/', '\\/')))), [5]);
    expect(entries.map((e) => e.path)).toEqual(odd);
  });

  it('hands each entry over as soon as its line is read, before the end', () => {
    let seen = 0;
    const reader = new BackupManifestReader(() => seen++);
    const firstHalf = text.subarray(0, text.indexOf(JSON.stringify(paths[150])));
    reader.write(firstHalf);
    expect(seen).toBeGreaterThanOrEqual(140);
  });

  it('refuses a wrong checksum, a missing last newline, and anything after the closing brace', () => {
    const altered = Buffer.from(text.toString('utf8').replace('"Size": 8192,', '"Size": 8193,'));
    expect(() => readInPieces(altered, [1000])).toThrow(/manifest checksum mismatch/);
    expect(() => readInPieces(text.subarray(0, text.length - 1), [1000])).toThrow(/newline-terminated/);
    expect(() => readInPieces(Buffer.concat([text, Buffer.from('{}\n')]), [1000])).toThrow(/more after the closing brace/);
    expect(() => parseBackupManifest(manifest([fileLine('x', 1, '00000000'), fileLine('x', 1, '00000000')]))).toThrow(/duplicate path name "x"/);
  });
});

describe('backup_manifest from a hostile store: memory stays bounded', () => {
  it('refuses a line longer than MAX_LINE before holding more than that', () => {
    const reader = new BackupManifestReader(() => undefined);
    reader.write(Buffer.from('{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [ { "Path": "'));
    const piece = Buffer.alloc(16 << 10, 0x61);
    let fed = 0;
    expect(() => {
      for (let i = 0; i < 16 * 1024; i++) {
        reader.write(piece);
        fed += piece.length;
      }
    }).toThrow(/a line longer than 1048576 bytes/);
    expect(fed).toBeLessThanOrEqual(MAX_LINE);
  });

  it('refuses a field PostgreSQL does not know at its first token, whatever follows it', () => {
    const reader = new BackupManifestReader(() => undefined);
    expect(() => reader.write(Buffer.from('{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Padding": [\n'))).toThrow(/unexpected top-level field "Padding"/);
    expect(() => parseBackupManifest(manifest([fileLine('x', 1, '00000000').replace(' }', ', "Extra": 1 }')]))).toThrow(/unexpected field "Extra"/);
  });

  it('refuses a nested value inside an entry and non-objects in Files', () => {
    expect(() => parseBackupManifest(manifest(['{ "Path": "x", "Size": [1] }']))).toThrow(/field "Size" is not a string or number/);
    expect(() => parseBackupManifest(manifest(['1']))).toThrow(/Files holds something other than objects/);
    expect(() => parseBackupManifest(manifest([fileLine('x', 1, '00000000')], { top: ' "Files": 1,' }))).toThrow(/Files is not an array/);
  });

  it('verify holds a manifest only up to its bound: beyond it, a finding and nothing kept', () => {
    const text = manifest([fileLine('PG_VERSION', 3, '00000000')]);
    const files = new ArchiveFiles();
    files.add('data', { name: 'PG_VERSION', type: 'file', size: 3, crc32c: 0 });
    const within = new ManifestMember(text.length);
    within.write(text);
    expect(within.check(files)).toEqual([]);
    const beyond = new ManifestMember(text.length - 1);
    for (let at = 0; at < text.length; at += 10) beyond.write(text.subarray(at, at + 10));
    expect(beyond.check(files)).toEqual([{ kind: 'invalid-manifest', file: 'backup_manifest', message: `backup_manifest has ${text.length} bytes, more than the ${text.length - 1} checked` }]);
  });

  it('wants the version first, as PostgreSQL does', () => {
    const body = '{ "Files": [],\n"PostgreSQL-Backup-Manifest-Version": 1,\n';
    const sum = createHash('sha256').update(body).digest('hex');
    expect(() => parseBackupManifest(`${body}"Manifest-Checksum": "${sum}"}\n`)).toThrow(/expected the version first/);
  });
});

// PostgreSQL's own `backup_manifest` (version 1, as pg_basebackup of PostgreSQL 13–16 writes it and
// 17 still reads it): one line per file with its path, size, modification time and checksum, the WAL
// range the backup needs, and a SHA-256 of the manifest itself. We write it as the last member of
// data.tar, so a restored data directory passes `pg_verifybackup -n` unchanged, and barman (which
// knows nothing of it) just extracts one more file. The text is produced byte for byte as
// PostgreSQL's backup_manifest.c does, because pg_verifybackup checks the manifest checksum over the
// exact bytes.
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { GeneralError } from '../errors.js';
import { formatLsn } from '../xlog.js';

export const BACKUP_MANIFEST_NAME = 'backup_manifest';

export interface ManifestFileEntry {
  /** Path relative to the data directory (`pg_tblspc/<oid>/…` for tablespace files). */
  path: string;
  size: number;
  /** Checksum algorithm name as PostgreSQL spells it (`CRC32C`, `SHA256`, …) or `NONE`. */
  algorithm: string;
  /** Lower-case hex; '' when the algorithm is NONE. */
  checksum: string;
  /** As written, e.g. `2026-12-03 05:42:00 GMT` (nothing checks it). */
  lastModified?: string;
}

export interface WalRange {
  timeline: number;
  /** `%X/%X` as PostgreSQL prints an LSN. */
  startLsn: string;
  endLsn: string;
}

export interface ParsedBackupManifest {
  version: number;
  files: Map<string, ManifestFileEntry>;
  walRanges: WalRange[];
}

/**
 * Running CRC-32C of one file's bytes. PostgreSQL writes the checksum as the hex of the uint32's
 * in-memory bytes (pg_checksum_final copies the integer), i.e. little-endian on the machines it
 * runs on; pg_verifybackup compares in the same representation.
 */
export class Crc32c {
  private crc = 0;
  update(data: Uint8Array): void {
    if (data.length > 0) this.crc = crc32c(data, this.crc);
  }
  get value(): number {
    return this.crc >>> 0;
  }
  hex(): string {
    return crc32cHex(this.value);
  }
}

export function crc32cHex(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(crc >>> 0);
  return b.toString('hex');
}

/**
 * The manifest path of a tar member: data's members as they are (without the `./` of files at the
 * root), a tablespace archive's members below `pg_tblspc/<oid>/` (the name pg_basebackup uses,
 * through the link the restore recreates).
 */
export function manifestPath(archive: string, memberName: string): string {
  const rel = memberName
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .join('/');
  return archive === 'data' ? rel : `pg_tblspc/${archive}/${rel}`;
}

/** pg_strftime("%Y-%m-%d %H:%M:%S %Z") of a pg_time_t in GMT. */
function gmtTime(seconds: number): string {
  const d = new Date(Math.floor(seconds) * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} GMT`;
}

/** The largest piece of a manifest handed to the tar writer at once. */
const MANIFEST_CHUNK = 256 * 1024;
/** The last line's length: `"Manifest-Checksum": "<64 hex digits>"}` and its newline. */
const CHECKSUM_LINE_LENGTH = Buffer.byteLength(`"Manifest-Checksum": "${'0'.repeat(64)}"}\n`);

/** A manifest ready to be written: its exact length first (a tar header needs it), then its bytes. */
export interface RenderedManifest {
  readonly byteLength: number;
  /** The bytes in pieces of at most 256 KiB, produced as they are read; one pass only. */
  readonly chunks: Iterable<Buffer>;
}

/**
 * Collects the files of a backup as the tar producer writes them and renders the manifest. A path
 * added again (a member written twice, the later one winning on extraction) replaces the earlier
 * entry and moves to the end: PostgreSQL refuses a manifest that names a path twice.
 * `backup_manifest` itself is never listed (a stale one in PGDATA is overwritten by ours on
 * extraction).
 *
 * Memory grows with the number of files, so per file only the path and a slot in typed columns are
 * kept (no object per entry), and the text is produced in bounded pieces, never whole
 * (issue 14; docs/architecture.md#base-backups-catalog-and-retention, "Memory budget").
 */
export class BackupManifestBuilder {
  /** Manifest path (hex of the bytes for a Buffer path) → its slot in the columns, in manifest order. */
  private readonly slots = new Map<string, number>();
  private sizes = new Float64Array(1024);
  private mtimes = new Float64Array(1024);
  private crcs = new Uint32Array(1024);
  /** 1 where the key is the hex of a Buffer path (written as Path if that is UTF-8, else Encoded-Path). */
  private hexKeys = new Uint8Array(1024);

  /**
   * Add one regular file. `path` is the manifest path (see manifestPath); a Buffer path that is not
   * valid UTF-8 is written as `Encoded-Path` (hex of its bytes), as PostgreSQL does.
   */
  addFile(path: string | Buffer, size: number, mtimeSeconds: number, crc: number): void {
    const key = typeof path === 'string' ? path : path.toString('hex');
    if (key === BACKUP_MANIFEST_NAME) return;
    let slot = this.slots.get(key);
    if (slot === undefined) slot = this.slots.size;
    else this.slots.delete(key); // set again below: to the end, where the later member is
    if (slot === this.sizes.length) this.grow();
    this.slots.set(key, slot);
    this.sizes[slot] = size;
    this.mtimes[slot] = mtimeSeconds;
    this.crcs[slot] = crc >>> 0;
    this.hexKeys[slot] = typeof path === 'string' ? 0 : 1;
  }

  /** A hard link: `path` holds the same bytes as the file already recorded as `target`. */
  addLink(path: string, target: string): void {
    const slot = this.slots.get(target);
    if (slot !== undefined) this.addFile(path, this.sizes[slot]!, this.mtimes[slot]!, this.crcs[slot]!);
  }

  get size(): number {
    return this.slots.size;
  }

  /**
   * The manifest of the files recorded so far, `Manifest-Checksum` last. Its length is counted in
   * a first pass over the entries and its bytes are made in a second one; the pieces fail with a
   * GeneralError rather than add up to another length (a file recorded in between), so a tar header
   * never announces a size its member does not have.
   */
  render(walRanges: readonly WalRange[]): RenderedManifest {
    const ranges = walRanges
      .map((r) => `{ "Timeline": ${r.timeline}, "Start-LSN": "${formatLsn(r.startLsn)}", "End-LSN": "${formatLsn(r.endLsn)}" }`)
      .join(',\n');
    let byteLength = CHECKSUM_LINE_LENGTH;
    for (const text of this.pieces(ranges)) byteLength += Buffer.byteLength(text);
    return { byteLength, chunks: this.stream(ranges, byteLength) };
  }

  private grow(): void {
    const n = this.sizes.length * 2;
    const grown = <T extends Float64Array | Uint32Array | Uint8Array>(a: T, b: T): T => (b.set(a), b);
    this.sizes = grown(this.sizes, new Float64Array(n));
    this.mtimes = grown(this.mtimes, new Float64Array(n));
    this.crcs = grown(this.crcs, new Uint32Array(n));
    this.hexKeys = grown(this.hexKeys, new Uint8Array(n));
  }

  /** The text before the checksum line, as pg_basebackup lays it out: one line per file. */
  private *pieces(ranges: string): Generator<string> {
    yield '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [';
    let separator = '\n';
    for (const [key, slot] of this.slots) {
      let name: string;
      if (this.hexKeys[slot] === 0) name = `"Path": ${JSON.stringify(key)}`;
      else {
        const raw = Buffer.from(key, 'hex');
        // JSON.stringify escapes exactly what PostgreSQL's escape_json does for valid UTF-8 text
        name = isUtf8(raw) ? `"Path": ${JSON.stringify(raw.toString('utf8'))}` : `"Encoded-Path": "${key}"`;
      }
      yield `${separator}{ ${name}, "Size": ${this.sizes[slot]}, "Last-Modified": "${gmtTime(this.mtimes[slot]!)}", "Checksum-Algorithm": "CRC32C", "Checksum": "${crc32cHex(this.crcs[slot]!)}" }`;
      separator = ',\n';
    }
    yield `\n],\n"WAL-Ranges": [\n${ranges}\n],\n`;
  }

  private *stream(ranges: string, byteLength: number): Generator<Buffer> {
    const hash = createHash('sha256');
    const changed = (got: string) =>
      new GeneralError(`backup_manifest changed while it was written: ${got} than the ${byteLength} bytes announced`);
    const bodyLength = byteLength - CHECKSUM_LINE_LENGTH;
    let done = 0; // bytes handed out
    let chunk = Buffer.allocUnsafe(Math.min(MANIFEST_CHUNK, byteLength));
    let used = 0;
    for (const text of this.pieces(ranges)) {
      const n = Buffer.byteLength(text);
      if (done + used + n > bodyLength) throw changed('more');
      if (used + n > chunk.length) {
        if (used > 0) {
          const full = chunk.subarray(0, used);
          hash.update(full);
          done += used;
          yield full;
        }
        chunk = Buffer.allocUnsafe(Math.min(MANIFEST_CHUNK, byteLength - done));
        used = 0;
        if (n > chunk.length) {
          // a line longer than a piece (a path of PATH_MAX escaped), in pieces of its own
          const bytes = Buffer.from(text, 'utf8');
          for (let off = 0; off < n; off += MANIFEST_CHUNK) {
            const piece = bytes.subarray(off, Math.min(n, off + MANIFEST_CHUNK));
            hash.update(piece);
            done += piece.length;
            yield piece;
          }
          chunk = Buffer.allocUnsafe(Math.min(MANIFEST_CHUNK, byteLength - done));
          continue;
        }
      }
      used += chunk.write(text, used, 'utf8');
    }
    if (done + used !== bodyLength) throw changed(`${done + used + CHECKSUM_LINE_LENGTH} bytes, fewer`);
    hash.update(chunk.subarray(0, used));
    const last = Buffer.from(`"Manifest-Checksum": "${hash.digest('hex')}"}\n`, 'utf8');
    if (used + last.length > chunk.length) {
      yield chunk.subarray(0, used);
      yield last;
    } else {
      last.copy(chunk, used);
      yield chunk.subarray(0, used + last.length);
    }
  }
}

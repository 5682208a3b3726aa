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

/**
 * Collects the files of a backup as the tar producer writes them and renders the manifest. A path
 * added again (a member written twice, the later one winning on extraction) replaces the earlier
 * entry: PostgreSQL refuses a manifest that names a path twice. `backup_manifest` itself is never
 * listed (a stale one in PGDATA is overwritten by ours on extraction).
 */
export class BackupManifestBuilder {
  private readonly entries = new Map<string, { path: string | Buffer; size: number; mtime: number; crc: number }>();

  /**
   * Add one regular file. `path` is the manifest path (see manifestPath); a Buffer path that is not
   * valid UTF-8 is written as `Encoded-Path` (hex of its bytes), as PostgreSQL does.
   */
  addFile(path: string | Buffer, size: number, mtimeSeconds: number, crc: number): void {
    const key = typeof path === 'string' ? path : path.toString('hex');
    if (key === BACKUP_MANIFEST_NAME) return;
    this.entries.delete(key);
    this.entries.set(key, { path, size, mtime: mtimeSeconds, crc: crc >>> 0 });
  }

  /** A hard link: `path` holds the same bytes as the file already recorded as `target`. */
  addLink(path: string, target: string): void {
    const e = this.entries.get(target);
    if (e) this.addFile(path, e.size, e.mtime, e.crc);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The complete manifest, `Manifest-Checksum` last. */
  render(walRanges: readonly WalRange[]): Buffer {
    const lines: string[] = [];
    for (const { path, size, mtime, crc } of this.entries.values()) {
      const text = typeof path === 'string' ? path : isUtf8(path) ? path.toString('utf8') : undefined;
      // JSON.stringify escapes exactly what PostgreSQL's escape_json does for valid UTF-8 text
      const name = text !== undefined ? `"Path": ${JSON.stringify(text)}` : `"Encoded-Path": "${(path as Buffer).toString('hex')}"`;
      lines.push(
        `{ ${name}, "Size": ${size}, "Last-Modified": "${gmtTime(mtime)}", "Checksum-Algorithm": "CRC32C", "Checksum": "${crc32cHex(crc)}" }`,
      );
    }
    let body = '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [';
    if (lines.length) body += `\n${lines.join(',\n')}`;
    body += '\n],\n"WAL-Ranges": [\n';
    body += walRanges
      .map((r) => `{ "Timeline": ${r.timeline}, "Start-LSN": "${formatLsn(r.startLsn)}", "End-LSN": "${formatLsn(r.endLsn)}" }`)
      .join(',\n');
    body += '\n],\n';
    const head = Buffer.from(body, 'utf8');
    const sum = createHash('sha256').update(head).digest('hex');
    return Buffer.concat([head, Buffer.from(`"Manifest-Checksum": "${sum}"}\n`, 'utf8')]);
  }
}

// Reading one back, streamed: manifest-reader.ts.
export { parseBackupManifest } from './manifest-reader.js';

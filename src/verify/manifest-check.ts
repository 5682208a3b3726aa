// Checking the tar members of a backup against its backup_manifest (PostgreSQL's format, read and
// its own checksum checked by src/backup/manifest-reader.ts): every listed file present with its size
// and CRC-32C, and no file the manifest does not list — the checks pg_verifybackup makes on a data
// directory, made on the archives instead.
import { BACKUP_MANIFEST_NAME, manifestPath } from '../backup/manifest.js';
import { BackupManifestReader } from '../backup/manifest-reader.js';
import { ManifestComparison, type FileRecord } from '../backup/integrity.js';
import type { MemberRecord } from './archive.js';
import type { Problem } from './report.js';

/** The member of data's last part that holds the manifest. */
export const MANIFEST_MEMBER = BACKUP_MANIFEST_NAME;

/** Files pg_verifybackup does not expect in the manifest (written at or after restore). */
const NOT_LISTED = new Set([BACKUP_MANIFEST_NAME, 'postgresql.auto.conf', 'standby.signal', 'recovery.signal']);

/**
 * The most of a manifest held until the other archives are read: ~7 million files' worth. Beyond
 * it the manifest is a finding, not memory without end (the store may hand us anything).
 */
const MANIFEST_MAX_BYTES = 1 << 30;

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The regular files of the archives by manifest path, as restore would leave them (a later member replaces an earlier one). */
export class ArchiveFiles {
  readonly files = new Map<string, FileRecord>();

  add(archive: string, member: MemberRecord): void {
    if (member.type === 'file' || member.type === 'contiguous-file') {
      this.files.set(manifestPath(archive, member.name), { size: member.size, crc: member.crc32c });
    }
  }
}

/**
 * The manifest member as its content streams out of the tar: held as its bytes (~150 per file,
 * less than any parsed form) until every archive is read, then read a line at a time against the
 * files (docs/format.md#manifest-reading).
 */
export class ManifestMember {
  private readonly pieces: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes = MANIFEST_MAX_BYTES) {}

  readonly write = (chunk: Buffer): void => {
    this.bytes += chunk.length;
    // a copy: the chunk may be a slice of a much larger read
    if (this.bytes <= this.maxBytes) this.pieces.push(Buffer.from(chunk));
    else this.pieces.length = 0;
  };

  check(archives: ArchiveFiles): Omit<Problem, 'backup_id'>[] {
    const invalid = (why: string) => [{ kind: 'invalid-manifest' as const, file: MANIFEST_MEMBER, message: why }];
    if (this.bytes > this.maxBytes) return invalid(`${MANIFEST_MEMBER} has ${this.bytes} bytes, more than the ${this.maxBytes} checked`);
    const mayBeUnlisted = (path: string) => NOT_LISTED.has(path) || path.startsWith('pg_wal/');
    const comparison = new ManifestComparison(archives.files, mayBeUnlisted);
    try {
      const reader = new BackupManifestReader((entry) => comparison.entry(entry));
      // each piece let go once read
      for (let piece = this.pieces.shift(); piece; piece = this.pieces.shift()) reader.write(piece);
      reader.end();
    } catch (e) {
      return invalid(message(e));
    }
    return comparison.finish().map((f): Omit<Problem, 'backup_id'> => {
      const file = f.path;
      switch (f.kind) {
        case 'missing-file': return { kind: f.kind, file, message: `file ${file} is in backup_manifest but in no archive` };
        case 'file-size-mismatch': return { kind: f.kind, file, message: `file ${file} has ${f.size} bytes, backup_manifest says ${f.expected}` };
        case 'file-checksum-mismatch': return { kind: f.kind, file, message: `file ${file} has CRC-32C ${f.checksum}, backup_manifest says ${f.expected}` };
        case 'unlisted-file': return { kind: f.kind, file, message: `file ${file} is in an archive but not in backup_manifest` };
      }
    });
  }
}

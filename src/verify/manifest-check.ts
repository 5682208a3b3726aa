// Checking the tar members of a backup against its backup_manifest (PostgreSQL's format, read and
// its own checksum checked by src/backup/manifest-reader.ts): every listed file present with its size
// and CRC-32C, and no file the manifest does not list — the checks pg_verifybackup makes on a data
// directory, made on the archives instead.
import { BACKUP_MANIFEST_NAME, manifestPath, type ManifestFileEntry } from '../backup/manifest.js';
import { BackupManifestReader } from '../backup/manifest-reader.js';
import { ManifestComparison, type FileRecord } from '../backup/integrity.js';
import type { MemberRecord } from './archive.js';
import type { Problem } from './report.js';

/** The member of data's last part that holds the manifest. */
export const MANIFEST_MEMBER = BACKUP_MANIFEST_NAME;

/** Files pg_verifybackup does not expect in the manifest (written at or after restore). */
const NOT_LISTED = new Set([BACKUP_MANIFEST_NAME, 'postgresql.auto.conf', 'standby.signal', 'recovery.signal']);

const isFile = (m: MemberRecord) => m.type === 'file' || m.type === 'contiguous-file';

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * The manifest member, read as its content streams out of the tar (docs/format.md#manifest-reading):
 * its entries are kept (the tablespace archives may still be read), its text never is. The first
 * error ends the reading and is the finding.
 */
export class ManifestMember {
  readonly entries: ManifestFileEntry[] = [];
  invalid: string | undefined;
  private readonly reader = new BackupManifestReader((entry) => this.entries.push(entry));

  write(chunk: Buffer): void {
    if (this.invalid === undefined) this.guard(() => this.reader.write(chunk));
  }

  end(): void {
    if (this.invalid === undefined) this.guard(() => this.reader.end());
  }

  private guard(step: () => void): void {
    try {
      step();
    } catch (e) {
      this.invalid = message(e);
      this.entries.length = 0;
    }
  }
}

export function checkManifest(manifest: ManifestMember, members: { archive: string; member: MemberRecord }[]): Omit<Problem, 'backup_id'>[] {
  const invalid = (why: string) => [{ kind: 'invalid-manifest' as const, file: MANIFEST_MEMBER, message: why }];
  if (manifest.invalid !== undefined) return invalid(manifest.invalid);
  // A member written twice is extracted twice; the later copy is the one that stays.
  const files = new Map<string, FileRecord>();
  for (const { archive, member } of members) if (isFile(member)) files.set(manifestPath(archive, member.name), { size: member.size, crc: member.crc32c });
  const mayBeUnlisted = (path: string) => NOT_LISTED.has(path) || path.startsWith('pg_wal/');
  const comparison = new ManifestComparison(files, mayBeUnlisted);
  try {
    for (const entry of manifest.entries) comparison.entry(entry);
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

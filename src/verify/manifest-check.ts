// Checking the tar members of a backup against its backup_manifest (PostgreSQL's format, parsed and
// its own checksum checked by src/backup/manifest.ts): every listed file present with its size and
// CRC-32C, and no file the manifest does not list — the checks pg_verifybackup makes on a data
// directory, made on the archives instead.
import { BACKUP_MANIFEST_NAME, manifestPath, parseBackupManifest, type ParsedBackupManifest } from '../backup/manifest.js';
import { compareFiles } from '../backup/integrity.js';
import type { MemberRecord } from './archive.js';
import type { Problem } from './report.js';

/** The member of data's last part that holds the manifest. */
export const MANIFEST_MEMBER = BACKUP_MANIFEST_NAME;

/** Files pg_verifybackup does not expect in the manifest (written at or after restore). */
const NOT_LISTED = new Set([BACKUP_MANIFEST_NAME, 'postgresql.auto.conf', 'standby.signal', 'recovery.signal']);

const isFile = (m: MemberRecord) => m.type === 'file' || m.type === 'contiguous-file';

export function checkManifest(manifest: Buffer, members: { archive: string; member: MemberRecord }[]): Omit<Problem, 'backup_id'>[] {
  let parsed: ParsedBackupManifest;
  try {
    parsed = parseBackupManifest(manifest);
  } catch (e) {
    return [{ kind: 'invalid-manifest', file: MANIFEST_MEMBER, message: e instanceof Error ? e.message : String(e) }];
  }
  // A member written twice is extracted twice; the later copy is the one that stays.
  const files = new Map<string, { size: number; crc?: number }>();
  for (const { archive, member } of members) if (isFile(member)) files.set(manifestPath(archive, member.name), { size: member.size, crc: member.crc32c });
  const mayBeUnlisted = (path: string) => NOT_LISTED.has(path) || path.startsWith('pg_wal/');
  return compareFiles(parsed, files, mayBeUnlisted).map((f): Omit<Problem, 'backup_id'> => {
    const file = f.path;
    switch (f.kind) {
      case 'missing-file': return { kind: f.kind, file, message: `file ${file} is in backup_manifest but in no archive` };
      case 'file-size-mismatch': return { kind: f.kind, file, message: `file ${file} has ${f.size} bytes, backup_manifest says ${f.expected}` };
      case 'file-checksum-mismatch': return { kind: f.kind, file, message: `file ${file} has CRC-32C ${f.checksum}, backup_manifest says ${f.expected}` };
      case 'unlisted-file': return { kind: f.kind, file, message: `file ${file} is in an archive but not in backup_manifest` };
    }
  });
}

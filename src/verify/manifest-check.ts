// Checking the tar members of a backup against its backup_manifest (PostgreSQL's format, parsed and
// its own checksum checked by src/backup/manifest.ts): every listed file present with its size and
// CRC-32C, and no file the manifest does not list — the checks pg_verifybackup makes on a data
// directory, made on the archives instead.
import { BACKUP_MANIFEST_NAME, crc32cHex, manifestPath, parseBackupManifest, type ParsedBackupManifest } from '../backup/manifest.js';
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
  const problems: Omit<Problem, 'backup_id'>[] = [];
  // A member written twice is extracted twice; the later copy is the one that stays.
  const files = new Map<string, MemberRecord>();
  for (const { archive, member } of members) if (isFile(member)) files.set(manifestPath(archive, member.name), member);
  for (const [path, entry] of parsed.files) {
    const m = files.get(path);
    if (!m) {
      problems.push({ kind: 'missing-file', file: path, message: `file ${path} is in backup_manifest but in no archive` });
      continue;
    }
    if (m.size !== entry.size) {
      problems.push({ kind: 'file-size-mismatch', file: path, message: `file ${path} has ${m.size} bytes, backup_manifest says ${entry.size}` });
    } else if (entry.algorithm === 'CRC32C' && m.crc32c !== undefined && crc32cHex(m.crc32c) !== entry.checksum) {
      problems.push({
        kind: 'file-checksum-mismatch', file: path,
        message: `file ${path} has CRC-32C ${crc32cHex(m.crc32c)}, backup_manifest says ${entry.checksum}`,
      });
    }
  }
  for (const path of files.keys()) {
    if (parsed.files.has(path) || NOT_LISTED.has(path) || path.startsWith('pg_wal/')) continue;
    problems.push({ kind: 'unlisted-file', file: path, message: `file ${path} is in an archive but not in backup_manifest` });
  }
  return problems;
}

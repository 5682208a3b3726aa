// Checking the tar members of a backup against its backup_manifest (PostgreSQL's format).
import type { MemberRecord } from './archive.js';
import type { Problem } from './report.js';

/** The member of data's last part that holds the manifest. */
export const MANIFEST_MEMBER = 'backup_manifest';

export function checkManifest(_manifest: Buffer, _members: { archive: string; member: MemberRecord }[]): Omit<Problem, 'backup_id'>[] {
  return [];
}

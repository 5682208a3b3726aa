// Whether a data archive is the backup its backup.info describes: its backup_label, the system
// identifier of its control file, its links in pg_tblspc (docs/format.md#restore-backup-label,
// #restore-system-id, #restore-tablespaces). Pure rules, one text each: restore applies them to the
// directory it extracted, verify to the members it read (src/verify/data-directory.ts).
import type { BackupInfo } from '../catalog/backup-info.js';

/** Where PostgreSQL reads a backup's start (docs/format.md#restore-backup-label). */
export const BACKUP_LABEL = 'backup_label';

/** Far more than a label's few hundred bytes; a larger file is not the recorded label anyway. */
export const BACKUP_LABEL_MAX_BYTES = 64 * 1024;

/** PostgreSQL's control file, put in place last by restore (docs/format.md#restore-control-file). */
export const CONTROL_FILE = 'global/pg_control';

/**
 * A control file member larger than this is not PostgreSQL's (PG_CONTROL_FILE_SIZE is 8 KiB):
 * restore refuses it, so that holding it in memory stays bounded (src/backup/extract.ts holdBack).
 */
export const CONTROL_FILE_MAX_BYTES = 1 << 20;

/** The control file's first field, the system identifier (a uint64), is all that is compared. */
export const SYSTEM_ID_BYTES = 8;

const dataArchive = (backup: BackupInfo) => `the data archive of backup ${backup.backup_id}`;

/**
 * Why `found` (the file at backup_label once everything is extracted; undefined: none, or not a
 * regular file) is not the label backup.info records; undefined when it is, or none is recorded.
 */
export function backupLabelMismatch(found: Buffer | undefined, backup: BackupInfo): string | undefined {
  if (backup.backup_label == null) return undefined;
  if (found === undefined) {
    return `${BACKUP_LABEL} is missing from ${dataArchive(backup)} (backup.info records one): PostgreSQL would not start from the backup's start`;
  }
  if (!found.equals(Buffer.from(backup.backup_label, 'utf8'))) {
    return `${BACKUP_LABEL} in ${dataArchive(backup)} is not the one backup.info records (another backup's?)`;
  }
  return undefined;
}

/**
 * Why `control` (global/pg_control's content, at least its first 8 bytes; undefined: none) is not
 * of the cluster backup.info names: its system identifier, in either byte order (the server's),
 * must be `systemid`. Undefined when it is, or none is recorded.
 */
export function systemIdMismatch(control: Buffer | undefined, backup: BackupInfo): string | undefined {
  if (backup.systemid == null) return undefined;
  if (!control || control.length < SYSTEM_ID_BYTES) {
    return `${CONTROL_FILE} is missing from ${dataArchive(backup)} (or is not a control file)`;
  }
  const little = control.readBigUInt64LE(0).toString();
  if (little !== backup.systemid && control.readBigUInt64BE(0).toString() !== backup.systemid) {
    return `${dataArchive(backup)} is of another cluster: ${CONTROL_FILE} has system identifier ${little}, backup.info says ${backup.systemid}`;
  }
  return undefined;
}

/**
 * Why a symbolic link `pg_tblspc/<name>` in the data archive is refused: barman's archives hold
 * none, and one for a tablespace backup.info does not list would send PostgreSQL's reads and writes
 * wherever it points. Undefined for a listed tablespace (restore replaces its link).
 */
export function unlistedTablespaceLink(name: string, backup: BackupInfo): string | undefined {
  if ((backup.tablespaces ?? []).some((t) => String(t.oid) === name)) return undefined;
  return `pg_tblspc/${name} in ${dataArchive(backup)} is a link, and backup.info lists no tablespace ${name}`;
}

/**
 * A version directory's name: `PG_<major>_<catalog version>` (PostgreSQL's
 * TABLESPACE_VERSION_DIRECTORY; `PG_15_202209061`, `PG_9.6_201608131`). Any major: barman's walk
 * stores an older cluster's directory too (docs/format.md#restore-tablespace-members).
 */
const VERSION_DIRECTORY = /^PG_\d+(?:\.\d+)?_\d+$/;

/**
 * Why restore refuses to write a member of a tablespace archive (its path components as extraction
 * resolves them, and its tar type): such an archive holds only version directories and what is in
 * them, and anything else would be written wherever backup.info's location points
 * (docs/format.md#restore-tablespace-members). Undefined when it is one of those.
 */
export function outsideVersionDirectory(parts: readonly string[], type: string): string | undefined {
  if (parts.length === 0) return 'it names the tablespace location itself';
  if (!VERSION_DIRECTORY.test(parts[0]!)) return 'it is not in a version directory PG_<major>_<catalog version>';
  if (parts.length === 1 && type !== 'directory') return `its version directory is stored as a ${type}, not a directory`;
  return undefined;
}

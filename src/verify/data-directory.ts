// What restore would leave at the few names it compares with backup.info (backup_label,
// global/pg_control, the links in pg_tblspc: docs/format.md#restore-backup-label, #restore-system-id,
// #restore-tablespaces), worked out from the data archive's members in archive order, as verify
// writes nothing: the last member at a name wins (`./backup_label` is the same name), FIFOs and
// device nodes are skipped as restore skips them. A member written through a link member of the
// archive (src/verify/archive-tree.ts finds them) lands where that link points, which the names
// alone cannot tell: it is a problem of its own (docs/commands/verify.md#as-on-disk). A
// tablespace archive's members must lie in its version directories
// (docs/format.md#restore-tablespace-members), checked on the names the same way.
import {
  BACKUP_LABEL, BACKUP_LABEL_MAX_BYTES, CONTROL_FILE, CONTROL_FILE_MAX_BYTES, SYSTEM_ID_BYTES, backupLabelMismatch, systemIdMismatch,
  outsideVersionDirectory, unlistedTablespaceLink,
} from '../backup/archive-identity.js';
import type { BackupInfo } from '../catalog/backup-info.js';
import { memberPathComponents, ofTablespace, SKIPPED_TYPES } from '../backup/extract.js';
import type { MemberRecord } from './archive.js';
import type { Problem } from './report.js';

/** Types restore writes with their content: regular files, and as tarfile does, any unknown type. */
const NOT_FILES = new Set(['directory', 'symlink', 'link']);

/** A member's path as restore resolves it against the data directory ('' and '.' components dropped). */
const pathOf = (name: string) => name.split('/').filter((p) => p !== '' && p !== '.').join('/');

/**
 * Why restore cannot extract this member at all: a control file over CONTROL_FILE_MAX_BYTES is
 * refused as soon as it is read, whatever comes after it (restore names the part as unreadable).
 */
export function oversizedControlFile(member: MemberRecord): string | undefined {
  if (member.size <= CONTROL_FILE_MAX_BYTES || NOT_FILES.has(member.type) || SKIPPED_TYPES.has(member.type) || pathOf(member.name) !== CONTROL_FILE) {
    return undefined;
  }
  return `member '${member.name}' is over ${CONTROL_FILE_MAX_BYTES} bytes: not a PostgreSQL control file`;
}

interface Entry {
  type: string;
  /** The first bytes restore's comparison reads (regular files whose content was kept). */
  content?: Buffer;
}

export class DataDirectoryView {
  private readonly entries = new Map<string, Entry>();

  /** Bytes of a member's content the comparisons need (readPart's keepContent). */
  keep(name: string): number {
    const path = pathOf(name);
    return path === BACKUP_LABEL ? BACKUP_LABEL_MAX_BYTES + 1 : path === CONTROL_FILE ? SYSTEM_ID_BYTES : 0;
  }

  /** One member of the data archive, in archive order. */
  add(member: MemberRecord, content?: Buffer): void {
    if (SKIPPED_TYPES.has(member.type)) return;
    const path = pathOf(member.name);
    const parts = path.split('/');
    if (path === BACKUP_LABEL || path === CONTROL_FILE || (parts.length === 2 && parts[0] === 'pg_tblspc')) {
      this.entries.set(path, { type: member.type, content });
    }
  }

  /** What restore would find, and the members written through a link member (ArchiveTree.through of the data archive). */
  problems(backup: BackupInfo, through: ReadonlyMap<string, string>): Omit<Problem, 'backup_id'>[] {
    const found: Omit<Problem, 'backup_id'>[] = [];
    const control = this.entries.get(CONTROL_FILE);
    const controlWhy = systemIdMismatch(control && !NOT_FILES.has(control.type) ? control.content : undefined, backup);
    if (controlWhy) found.push({ kind: 'system-id-mismatch', file: CONTROL_FILE, message: controlWhy });
    const label = this.entries.get(BACKUP_LABEL);
    // restore reads the label through a hard link; its bytes were another member's, not kept here
    const labelWhy = label?.type === 'link' && backup.backup_label != null
      ? `${BACKUP_LABEL} in the data archive of backup ${backup.backup_id} is a hard link: verify cannot compare it`
      : backupLabelMismatch(label && !NOT_FILES.has(label.type) ? label.content ?? Buffer.alloc(0) : undefined, backup);
    if (labelWhy) found.push({ kind: 'backup-label-mismatch', file: BACKUP_LABEL, message: labelWhy });
    for (const [path, entry] of this.entries) {
      if (entry.type !== 'symlink' || !path.startsWith('pg_tblspc/')) continue;
      const why = unlistedTablespaceLink(path.slice('pg_tblspc/'.length), backup);
      if (why) found.push({ kind: 'unlisted-tablespace-link', file: path, message: why });
    }
    for (const [link, member] of through) {
      found.push({
        kind: 'member-through-link', file: member,
        message: `member ${member} of the data archive of backup ${backup.backup_id} is written through the link ${link}: ` +
          `where it lands (and so the ${BACKUP_LABEL}, ${CONTROL_FILE} and pg_tblspc restore finds) cannot be told from the names`,
      });
    }
    return found;
  }
}

/** One tablespace archive's members against restore's rule (docs/format.md#restore-tablespace-members). */
export class TablespaceView {
  constructor(private readonly tablespace: { name: string; oid: number }) {}

  /** One member whose name restore accepts (src/verify/verify.ts checks that first): why restore refuses it, if it does. */
  add(member: MemberRecord): string | undefined {
    const why = outsideVersionDirectory(memberPathComponents(member.name), member.type);
    return why && `Refusing to extract '${member.name}' ${ofTablespace(this.tablespace)}: ${why}`;
  }

  /**
   * Members written through a link member (ArchiveTree.through of this archive): restore refuses
   * them when the link leads out of the version directories, which the names cannot tell
   * (stricter, as for the data archive).
   */
  problems(backupId: string, through: ReadonlyMap<string, string>): Omit<Problem, 'backup_id'>[] {
    return [...through].map(([link, member]) => ({
      kind: 'member-through-link' as const, file: member,
      message: `member ${member} ${ofTablespace(this.tablespace)} of backup ${backupId} is written through the link ${link}: ` +
        'whether it lands in a version directory cannot be told from the names',
    }));
  }
}

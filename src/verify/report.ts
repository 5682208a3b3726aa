// What `verify` found, and its two renderings: console lines and one JSON document
// (docs/commands/verify.md describes both).
import { escapeControl } from '../log.js';

export type ProblemKind =
  | 'unreadable-backup-info'
  | 'missing-archive'
  | 'missing-part'
  | 'extra-part'
  | 'part-gap'
  | 'empty-part'
  | 'size-mismatch'
  | 'checksum-mismatch'
  | 'unreadable-part'
  | 'invalid-parts-list'
  | 'invalid-manifest'
  | 'missing-file'
  | 'file-size-mismatch'
  | 'file-checksum-mismatch'
  | 'unlisted-file'
  | 'backup-label-mismatch'
  | 'system-id-mismatch'
  | 'unlisted-tablespace-link'
  | 'member-through-link'
  | 'unsafe-member'
  | 'outside-version-directory'
  | 'unextractable-member'
  | 'invalid-wal-range'
  | 'missing-wal'
  | 'empty-wal'
  | 'wal-size-mismatch'
  | 'missing-history'
  | 'invalid-history'
  | 'unencrypted-part'
  | 'unencrypted-wal';

export interface Problem {
  kind: ProblemKind;
  /** The backup concerned (absent for archive-wide WAL findings). */
  backup_id?: string;
  /** The stored part (`data_0001.tar.lz4`), file (manifest path) or segment(s) named. */
  part?: string;
  file?: string;
  segment?: string;
  message: string;
}

export type Availability = 'verified' | 'unavailable';

export interface BackupResult {
  backup_id: string;
  backup_name: string | null;
  /** backup.info's status. */
  status: string | null;
  /** ok: every check passed; failed: at least one problem; skipped: not DONE, nothing read. */
  result: 'ok' | 'failed' | 'skipped';
  timeline: number | null;
  begin_wal: string | null;
  end_wal: string | null;
  /** Part sizes and SHA-256 (parts.json) checked, or unavailable (no parts.json: barman's backups). */
  part_checksums: Availability;
  /** Member sizes and CRC-32C (backup_manifest) checked, or unavailable. */
  file_checksums: Availability;
  parts: number;
  /** Stored bytes read. */
  bytes: number;
  /** Tar members parsed. */
  members: number;
  problems: Problem[];
}

export interface WalResult {
  /** Segments whose presence was checked (each backup's range, then the chain after the newest). */
  checked_segments: number;
  /** Newest archived segment the newest backup's chain reaches. */
  newest_segment: string | null;
  /** The timeline followed to it. */
  timeline: number | null;
  problems: Problem[];
}

export interface VerifyReport {
  server_name: string;
  backups: BackupResult[];
  wal: WalResult;
  /** Problems in all (backups and WAL). */
  problems: number;
  ok: boolean;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function problemLine(p: Problem): string {
  return `  PROBLEM ${p.kind}: ${p.message}`;
}

export function formatConsole(report: VerifyReport): string {
  const lines: string[] = [];
  for (const b of report.backups) {
    const label = b.backup_name ? `${b.backup_id} (${b.backup_name})` : b.backup_id;
    if (b.result === 'skipped') {
      lines.push(`backup ${label}: SKIPPED (status ${b.status ?? 'unknown'}, only DONE backups are verified)`);
      continue;
    }
    const unavailable = [
      b.part_checksums === 'unavailable' ? 'part checksums unavailable (no parts.json)' : '',
      b.file_checksums === 'unavailable' ? 'file checksums unavailable (no backup_manifest)' : '',
    ].filter(Boolean);
    const what = `${plural(b.parts, 'part')}, ${(b.bytes / 1e6).toFixed(1)} MB, ${plural(b.members, 'member')}, WAL ${b.begin_wal ?? '?'}..${b.end_wal ?? '?'}`;
    const verdict = b.result === 'ok' ? 'OK' : `FAILED (${b.problems.length} problem${b.problems.length === 1 ? '' : 's'})`;
    lines.push(`backup ${label}: ${verdict}: ${what}${unavailable.length ? `; ${unavailable.join(', ')}` : ''}`);
    for (const p of b.problems) lines.push(problemLine(p));
  }
  const w = report.wal;
  const walVerdict = w.problems.length === 0 ? 'OK' : `FAILED (${w.problems.length} problem${w.problems.length === 1 ? '' : 's'})`;
  lines.push(`wal: ${walVerdict}: ${w.checked_segments} segments checked` +
    (w.newest_segment ? `, up to ${w.newest_segment} on timeline ${w.timeline}` : ''));
  for (const p of w.problems) lines.push(problemLine(p));
  const verified = report.backups.filter((b) => b.result !== 'skipped').length;
  const skipped = report.backups.length - verified;
  lines.push(`verify ${report.server_name}: ${report.ok ? 'OK' : 'FAILED'}: ${verified} backup${verified === 1 ? '' : 's'} verified` +
    `${skipped ? `, ${skipped} skipped` : ''}, ${report.problems} problem${report.problems === 1 ? '' : 's'}`);
  // Member names, keys and ids in these lines come from the store: one line each, no terminal
  // escapes (docs/format.md#untrusted-text).
  return `${lines.map(escapeControl).join('\n')}\n`;
}

export function formatJson(report: VerifyReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

// Temp files that wal-restore writes beside `wal_dest` (usually pg_wal/RECOVERYXLOG) before the
// rename. A killed run leaves one behind, in PostgreSQL's own directory, and nothing else would
// ever remove it; so later runs remove those of their own making, and only those: the exact name
// pattern below, a regular file (not a symlink), owned by us, untouched for ten minutes (src/stale-temps.ts).
import { randomBytes } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { removeStaleTemps as removeStale, STALE_TEMP_MS } from '../stale-temps.js';

// Keeps the `.tmp-` infix that the restore spool already skips in its listings.
const MARK = '.tmp-barman-cloud-';
/** `<target name>.tmp-barman-cloud-<pid>-<8 hex>`: distinctive enough that no other program's file matches. */
const TEMP_NAME = /^.+\.tmp-barman-cloud-[0-9]{1,10}-[0-9a-f]{8}$/;

export const STALE_AFTER_MS = STALE_TEMP_MS;

/**
 * Whether PostgreSQL makes the file put at `target` durable itself, so that we need not sync it
 * before the rename (docs/format.md#restore-durability): true only for its own restore names in
 * pg_wal. RestoreArchivedFile removes a leftover RECOVERYXLOG / RECOVERYHISTORY before every
 * restore, so a copy a crash damaged is never read; KeepFileRestoredFromArchive keeps one only
 * through durable_rename, which syncs it. Any other target (CloudNativePG's spool, our own,
 * pg_rewind's pg_wal/<name>, a caller's file) may be trusted after a crash: synced first.
 */
export function syncedByPostgres(target: string): boolean {
  const name = basename(target);
  return (name === 'RECOVERYXLOG' || name === 'RECOVERYHISTORY') && basename(dirname(target)) === 'pg_wal';
}

/** A fresh temp path in the target's directory (same file system, so the final rename is atomic). */
export function tempBeside(target: string): string {
  return `${target}${MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** The name prefix of this process's temp files for `targetName` (tempBeside without its random tail). */
export function ownTempPrefix(targetName: string): string {
  return `${targetName}${MARK}${process.pid}-`;
}

export function isOurTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** Removes our stale temp files from `dir` (src/stale-temps.ts); returns how many. */
export function removeStaleTemps(dir: string, now = Date.now()): Promise<number> {
  return removeStale(dir, isOurTempName, now);
}

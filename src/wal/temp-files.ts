// Temp files that wal-restore writes beside `wal_dest` (usually pg_wal/RECOVERYXLOG) before the
// rename. A killed run leaves one behind, in PostgreSQL's own directory, and nothing else would
// ever remove it; so later runs remove those of their own making, and only those: the exact name
// pattern below, a regular file (not a symlink), owned by us, untouched for STALE_AFTER_MS.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { log } from '../log.js';

// Keeps the `.tmp-` infix that the restore spool already skips in its listings.
const MARK = '.tmp-barman-cloud-';
/** `<target name>.tmp-barman-cloud-<pid>-<8 hex>`: distinctive enough that no other program's file matches. */
const TEMP_NAME = /^.+\.tmp-barman-cloud-[0-9]{1,10}-[0-9a-f]{8}$/;

/** A download that wrote nothing for this long is dead: --read-timeout ends stalled ones far sooner. */
export const STALE_AFTER_MS = 10 * 60_000;

/** A fresh temp path in the target's directory (same file system, so the final rename is atomic). */
export function tempBeside(target: string): string {
  return `${target}${MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
}

export function isOurTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/**
 * Removes our stale temp files from `dir`; returns how many. Never fails: a file that cannot be
 * inspected or removed is left alone (and said so at debug level).
 */
export async function removeStaleTemps(dir: string, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter(isOurTempName);
  } catch {
    return 0;
  }
  const uid = process.geteuid?.();
  let removed = 0;
  for (const name of names) {
    const path = join(dir, name);
    try {
      const st = await fs.lstat(path);
      if (!st.isFile() || (uid !== undefined && st.uid !== uid) || now - st.mtimeMs < STALE_AFTER_MS) continue;
      await fs.unlink(path);
      removed++;
      log.debug(`Removed the stale temporary file ${path}`);
    } catch (e) {
      log.debug(`Could not remove ${path}: ${(e as Error).message}`);
    }
  }
  return removed;
}

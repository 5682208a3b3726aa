// One sweep for the temp files our killed runs leave behind (the file store's `.bc-tmp-*`,
// wal-restore's `<wal_dest>.tmp-barman-cloud-*`, the spool root's `names.tmp-*`): a later run
// removes those of its own making in a directory it writes to anyway, and nothing else.
import { lstat as lstatCallback, readdir as readdirCallback, unlink as unlinkCallback } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { log } from './log.js';

/**
 * A temp file untouched this long belongs to a killed run: live writers change its mtime with every
 * write, and --read-timeout ends a stalled transfer far sooner.
 */
export const STALE_TEMP_MS = 10 * 60_000;

// The callback API, promisified: node:fs/promises would be loaded for this sweep alone on a
// wal-restore from object storage (~2 ms of CPU per call; docs/benchmarks-history.md).
const fs = { lstat: promisify(lstatCallback), readdir: promisify(readdirCallback), unlink: promisify(unlinkCallback) };

/**
 * Removes from `dir` the regular files whose name `isOurs` accepts, owned by the effective uid and
 * untouched for STALE_TEMP_MS; returns how many. lstat never follows a link. Best effort: it never
 * throws; a file that cannot be inspected or removed is left alone (said at debug level).
 */
export async function removeStaleTemps(dir: string, isOurs: (name: string) => boolean, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter(isOurs);
  } catch {
    return 0;
  }
  const uid = process.geteuid?.();
  let removed = 0;
  for (const name of names) {
    const path = join(dir, name);
    try {
      const st = await fs.lstat(path);
      if (!st.isFile() || (uid !== undefined && st.uid !== uid) || now - st.mtimeMs < STALE_TEMP_MS) continue;
      await fs.unlink(path);
      removed++;
      log.debug(`Removed the stale temporary file ${path}`);
    } catch (e) {
      log.debug(`Could not remove ${path}: ${(e as Error).message}`);
    }
  }
  return removed;
}

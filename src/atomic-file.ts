// The one way we put a file in place so that a reader sees the old file or the whole new one, never
// a part: a temp file beside the target (same file system), written, fsynced (unless `durable` is false), then renamed over the
// target (or linked, to create only). The temp is removed when anything fails. Each caller names its
// temp files with its own pattern, so that its sweep of killed runs' temps (src/stale-temps.ts)
// recognises them.
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export interface AtomicWriteOptions {
  /** The temp file's path, in the target's directory. */
  temp: string;
  /** Mode of the new file, as open(2) takes it (the umask applies). Default 0o600. */
  mode?: number;
  /** Create only: link(2) instead of rename(2), so that an existing target is kept. */
  exclusive?: boolean;
  /**
   * False skips the fsync: for a file that is only a hint, which a crash may lose or leave empty
   * but never make wrong (the archive spool's markers), or one that its reader syncs itself and
   * never trusts after a crash (PostgreSQL's RECOVERYXLOG: docs/format.md#restore-durability).
   * Default true.
   */
  durable?: boolean;
  /**
   * Called with the temp file's descriptor once the content is written, before the sync: for the
   * owner, mode and times the target must have (restore's files), set on the file we opened.
   */
  attributes?: (fd: number) => void;
  /** Asked once the temp file is written (and synced when durable); false leaves the target alone. */
  confirm?: () => Promise<boolean>;
}

/**
 * Writes `target` atomically with `content`: bytes, what a function writes to the temp file's
 * descriptor, or a copy of another file (`copyOf`, e.g. from another file system). Returns false when nothing was put in place: `confirm` said no, or (`exclusive`) the
 * target already existed.
 */
export async function writeFileAtomic(
  target: string,
  content: Buffer | string | ((fd: number, handle: FileHandle) => Promise<void> | void) | { copyOf: string },
  options: AtomicWriteOptions,
): Promise<boolean> {
  const { temp } = options;
  const copyOf = typeof content === 'object' && !Buffer.isBuffer(content) ? content.copyOf : undefined;
  try {
    if (copyOf !== undefined) await fs.copyFile(copyOf, temp, fsConstants.COPYFILE_EXCL);
    const fh = copyOf !== undefined ? await fs.open(temp, 'r+') : await fs.open(temp, 'wx', options.mode ?? 0o600);
    try {
      if (typeof content === 'function') await content(fh.fd, fh);
      else if (typeof content === 'string' || Buffer.isBuffer(content)) await fh.writeFile(content);
      options.attributes?.(fh.fd);
      // Durable before it gets the name: a reader may trust what it finds after a crash.
      if (options.durable !== false) await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.confirm && !(await options.confirm())) {
      await fs.rm(temp, { force: true });
      return false;
    }
    if (!options.exclusive) {
      await fs.rename(temp, target);
      return true;
    }
    try {
      await fs.link(temp, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      await fs.rm(temp, { force: true });
      return false;
    }
    await fs.unlink(temp);
    return true;
  } catch (e) {
    await fs.rm(temp, { force: true });
    throw e;
  }
}

// What restore writes after the archives are extracted (pg_wal, pg_tblspc links, recovery files),
// and the checks on where tablespaces go. A restored data directory holds whatever the backup put
// there, so any name in it may be a symlink or a hard link planted by the archive: nothing here
// writes through an existing entry. Files are created new (O_EXCL, which never follows a link, beside the target)
// and renamed over it, which replaces a link instead of following it; directories are created or
// replaced, never entered through a link.
import {
  fchmodSync, fchownSync, lstatSync, mkdirSync, realpathSync, rmSync, symlinkSync, unlinkSync, type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { readRegularFile } from '../regular-file.js';
import { OperationError } from '../errors.js';
import { log } from '../log.js';

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** True when `path` is `dir` or lies below it (both already absolute and normalized). */
function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * Python's os.path.realpath (non-strict): absolute, with the symlinks of the part that exists
 * resolved and the rest appended as written.
 */
export function realpathLoose(path: string): string {
  const abs = resolve(path);
  const tail: string[] = [];
  let head = abs;
  for (;;) {
    try {
      return join(realpathSync(head), ...tail);
    } catch {
      const parent = dirname(head);
      if (parent === head) return abs;
      tail.unshift(basename(head));
      head = parent;
    }
  }
}

/**
 * Write `dir/name` as a new file with `content` (after the existing regular file's content when
 * `append`), atomically (src/atomic-file.ts: an O_EXCL temp beside it, fsync, rename). Whatever
 * was at that name (a symlink, a hard link to another file) is replaced, not written through. The
 * new file keeps the old regular file's mode and, as root, its owner (else the data directory's),
 * so the server's user can still read it.
 */
export async function replaceFile(dir: string, name: string, content: string, append = false): Promise<void> {
  const path = join(dir, name);
  const old = await readRegularFile(path);
  const previous = lstatOrUndefined(path);
  if (previous && !previous.isFile()) log.warning(`Replacing ${path}: it was not a regular file`);
  else if (previous && previous.nlink > 1) log.warning(`Replacing ${path}: it was a hard link shared with another file`);
  const data = Buffer.concat([append && old ? old.content : Buffer.alloc(0), Buffer.from(content)]);
  await placeFile(dir, name, data, (fd) => {
    fchmodSync(fd, old ? old.stats.mode & 0o777 : 0o600);
    if (typeof process.geteuid === 'function' && process.geteuid() === 0) {
      const owner = old?.stats ?? lstatSync(dir);
      fchownSync(fd, owner.uid, owner.gid);
    }
  });
}

/**
 * Put `data` in place as `dir/name`, atomically (src/atomic-file.ts: an O_EXCL temp
 * `.<name>.bc-tmp-<hex>` beside it, fsync, rename over whatever was there, never through it);
 * `attributes` sets owner, mode and times on the temp file's descriptor before the rename.
 */
export async function placeFile(dir: string, name: string, data: Buffer, attributes: (fd: number) => void): Promise<void> {
  await writeFileAtomic(join(dir, name), data, { temp: join(dir, `.${name}.bc-tmp-${randomBytes(6).toString('hex')}`), attributes });
}

/**
 * Make `path` a real directory: created when missing, kept when it is one, and replaced by an empty
 * one when the archive left anything else there (a symlink included: PostgreSQL's own base backups
 * also store pg_wal as a directory whatever it was on the server).
 */
export function ensureDirectory(path: string, mode = 0o700): void {
  const st = lstatOrUndefined(path);
  if (st?.isDirectory()) return;
  if (st) {
    log.warning(`Replacing ${path} by an empty directory: the backup holds ${st.isSymbolicLink() ? 'a symbolic link' : 'a non-directory'} there`);
    unlinkSync(path);
  }
  mkdirSync(path, { mode });
}

/** Create the symlink `path` → `target`, removing whatever is at `path` (inside the data directory) first. */
export function replaceSymlink(path: string, target: string): void {
  rmSync(path, { force: true, recursive: true });
  symlinkSync(target, path);
}

export interface TablespaceTarget {
  name: string;
  oid: number;
  /** Where the tablespace will be extracted (absolute). */
  dir: string;
}

/**
 * Tablespace locations come from backup.info, which is untrusted: refuse (exit 1, before anything is
 * downloaded) a relative location, and any target that is, or lies inside or around, the data
 * destination or another tablespace target, since extracting one archive into another's tree would
 * let it plant links the other is extracted through. Compared after resolving symlinks.
 */
export function checkTablespaceTargets(dataDir: string, targets: TablespaceTarget[]): void {
  for (const t of targets) {
    if (!isAbsolute(t.dir)) {
      throw new OperationError(`Tablespace ${t.name} (${t.oid}) has a relative location '${t.dir}': refusing to restore it`);
    }
  }
  const seen: { what: string; real: string }[] = [{ what: `the destination ${dataDir}`, real: realpathLoose(dataDir) }];
  for (const t of targets) {
    const real = realpathLoose(t.dir);
    for (const other of seen) {
      if (isWithin(real, other.real) || isWithin(other.real, real)) {
        throw new OperationError(`Tablespace ${t.name} (${t.oid}) location '${t.dir}' overlaps ${other.what}: refusing to restore it`);
      }
    }
    seen.push({ what: `tablespace ${t.name}'s location ${t.dir}`, real });
  }
}

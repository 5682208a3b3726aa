// The local spool shared by parallel archiving and restore prefetching. One directory per
// (store URL, server name), so entries of two archives never mix:
//   archive/<wal>          marker: {"size","ino","mtimeNs"} of a WAL file whose upload was confirmed
//   archive/<wal>.lock     claim of a WAL file being uploaded by some process (O_EXCL)
//   restore/<wal>          a complete prefetched WAL file (written as .tmp then renamed)
//   restore/segment-size   the WAL segment size learned from a downloaded segment
// What the spool holds is believed without asking the store (a marker skips an upload, a prefetched
// file becomes a segment), so it is used only when nobody else can have put anything there: every
// level a real directory or regular file owned by us and writable by nobody else, inside a
// directory where nobody else can swap it (trustedSpoolDir). The shell front of the WAL commands
// (src/cli/fast-path.ts) applies the same rule.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc, readFileSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { NOT_THERE, openRegularFile } from '../regular-file.js';
import { log } from '../log.js';
import { mapBounded } from '../concurrency.js';
import { removeStaleTemps } from '../stale-temps.js';
import { syncedByPostgres, tempBeside } from './temp-files.js';

/** Prefetched files are served for this long (by Node and by the generated shell front); the archive of a live server does not change under them. */
export const SPOOL_MAX_AGE_MS = 15 * 60_000;

/**
 * The default spool root: a hidden directory beside the WAL file PostgreSQL names (pg_wal for both
 * archive_command's %p and restore_command's %p). pg_wal is private to the cluster's owner, so no
 * other user can create the spool first; its contents stay out of base backups (barman's, ours,
 * pg_basebackup's); and a prefetched file is on the destination's filesystem, so serving it is one
 * rename.
 */
export function defaultSpoolRoot(walFileDir: string, euid: number): string {
  return join(walFileDir, `.barman-cloud-spool-${euid}`);
}

/**
 * The spool directory of one archive: `<root>/<16 hex of sha256("<url>\n<server>\n")>`, the form the
 * shell front hashes with a here-document. trustedSpoolDir refuses names holding a newline.
 */
export function spoolDirFor(root: string, storeUrl: string, serverName: string): string {
  const id = createHash('sha256').update(`${storeUrl}\n${serverName}\n`).digest('hex').slice(0, 16);
  return join(root, id);
}

type EntryStats = Pick<Stats, 'uid' | 'mode' | 'isDirectory' | 'isFile' | 'isSymbolicLink'>;

/**
 * Why an entry of the spool (from lstat/fstat) cannot be trusted, or null: it must be a directory
 * or regular file itself (not a symlink), owned by `euid`, and not writable by group or others.
 */
export function distrust(st: EntryStats, kind: 'directory' | 'file', euid: number): string | null {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (kind === 'directory' ? !st.isDirectory() : !st.isFile()) return `is not a ${kind === 'directory' ? 'directory' : 'regular file'}`;
  if (st.uid !== euid) return `is owned by uid ${st.uid}, not ${euid}`;
  if (st.mode & 0o022) return `is writable by group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  return null;
}

/**
 * Why the directory holding the spool root cannot be trusted, or null: whoever may rename entries
 * in it could swap our root for theirs after we checked it. Owned by root or `euid`, and writable
 * by nobody else unless sticky (as /tmp).
 */
export function distrustParent(st: Pick<Stats, 'uid' | 'mode' | 'isDirectory'>, euid: number): string | null {
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== 0 && st.uid !== euid) return `is owned by uid ${st.uid}`;
  if (st.mode & 0o022 && !(st.mode & 0o1000)) return `is writable by group or others without the sticky bit (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  return null;
}

function effectiveUid(): number | null {
  return typeof process.geteuid === 'function' ? process.geteuid() : null;
}

let distrustReported = false;

/** Say once per process, at debug level, why the spool is not used (not a failure: we work without it). */
function reportDistrust(path: string, reason: string): void {
  if (distrustReported) return;
  distrustReported = true;
  log.debug(`Not using the spool: ${path} ${reason}; working without it`);
}

const MISSING = Symbol('missing');

/** Check one directory level, creating it (mode 0700) when `create`; the check after creation decides. */
async function checkDir(path: string, euid: number, create: boolean): Promise<string | null | typeof MISSING> {
  let st = await fs.lstat(path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : e));
  if (st instanceof Error) return `cannot be examined (${(st as NodeJS.ErrnoException).code})`;
  if (!st) {
    if (!create) return MISSING;
    try {
      await fs.mkdir(path, { mode: 0o700 });
    } catch (e) {
      // Someone else may have created it meanwhile: the check below decides about what is there.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot be created (${(e as NodeJS.ErrnoException).code})`;
    }
    st = await fs.lstat(path).catch(() => null);
    if (!st) return 'vanished after its creation';
  }
  return distrust(st, 'directory', euid);
}

/**
 * The `archive` or `restore` directory of the spool of one archive, checked level by level (see
 * distrust and distrustParent) and, with `create`, made where missing. Null when the spool must
 * not be used (said once at debug level) or, without `create`, does not exist yet. Never changes
 * the mode or owner of anything it did not create.
 */
export async function trustedSpoolDir(
  root: string,
  storeUrl: string,
  serverName: string,
  sub: 'archive' | 'restore',
  create: boolean,
): Promise<string | null> {
  const euid = effectiveUid();
  // Two (url, server) pairs must never share a directory: with a newline in either, they could.
  if (euid === null || /\n/.test(storeUrl + serverName)) return null;
  const parent = dirname(root);
  if (create) await fs.mkdir(parent, { recursive: true, mode: 0o700 }).catch(() => undefined);
  const pst = await fs.stat(parent).catch(() => null);
  if (!pst) {
    if (create) reportDistrust(parent, 'cannot be examined');
    return null;
  }
  const why = distrustParent(pst, euid);
  if (why) {
    reportDistrust(parent, why);
    return null;
  }
  const store = spoolDirFor(root, storeUrl, serverName);
  for (const level of [root, store, join(store, sub)]) {
    const reason = await checkDir(level, euid, create);
    if (reason === MISSING) return null;
    if (reason) {
      reportDistrust(level, reason);
      return null;
    }
  }
  if (create) await recordSpoolName(root, basename(store), storeUrl, serverName);
  return join(store, sub);
}

/**
 * `<root>/names`: each archive's spool directory name, then its store URL, then its server name, one
 * per line. The shell front finds the directory there instead of starting sha256sum (~1-1.4 ms of
 * CPU per call); it believes the file only after its find checked it like every other level
 * (ours, regular, writable by nobody else), and hashes as before when the pair is not listed. A
 * hint: not fsynced, rewritten whole; past NAMES_KEPT entries it starts again with this one.
 */
export const SPOOL_NAMES = 'names';
const NAMES_KEPT = 32;
/** writeAtomic's temp for the names file; the archive and restore directories are pruned whole, the root is not. */
const NAMES_TEMP = new RegExp(`^${SPOOL_NAMES}\\.tmp-[0-9]{1,10}-[0-9a-f]{8}$`);

async function recordSpoolName(root: string, id: string, storeUrl: string, serverName: string): Promise<void> {
  const path = join(root, SPOOL_NAMES);
  // a run killed while rewriting the file left its temp here (src/stale-temps.ts)
  await removeStaleTemps(root, (name) => NAMES_TEMP.test(name));
  const entry = `${id}\n${storeUrl}\n${serverName}\n`;
  const text = await fs.readFile(path, 'utf8').catch(() => '');
  const lines = text.split('\n');
  for (let i = 0; i + 2 < lines.length; i += 3) if (`${lines[i]}\n${lines[i + 1]}\n${lines[i + 2]}\n` === entry) return;
  const kept = lines.length > 3 * NAMES_KEPT || !text.endsWith('\n') ? '' : text;
  await writeAtomic(path, kept + entry, false).catch((e: unknown) => log.debug(`Cannot record the spool's name in ${path}: ${(e as Error).message}`));
}

/**
 * Open a file of the spool for reading only if it is a regular file of ours that nobody else can
 * write (src/regular-file.ts: never through a symbolic link, never waiting on a FIFO).
 * Null when missing or not trusted.
 */
async function openTrusted(path: string): Promise<{ fh: fs.FileHandle; stats: Stats } | null> {
  const euid = effectiveUid();
  if (euid === null) return null;
  const f = await openRegularFile(path, (st) => distrust(st, 'file', euid))
    .catch((e: NodeJS.ErrnoException) => `cannot be opened (${e.code})`);
  if (typeof f !== 'string') return f;
  if (f !== NOT_THERE) reportDistrust(path, f);
  return null;
}

/** The content of a trusted spool file, or null. */
async function readTrusted(path: string): Promise<string | null> {
  const f = await openTrusted(path);
  if (!f) return null;
  try {
    return await f.fh.readFile('utf8');
  } catch {
    return null;
  } finally {
    await f.fh.close();
  }
}

/** The stats of a trusted spool file, or null. */
async function statTrusted(path: string): Promise<Stats | null> {
  const f = await openTrusted(path);
  if (!f) return null;
  await f.fh.close();
  return f.stats;
}

/**
 * Write a spool file atomically (src/atomic-file.ts); the `.tmp-` infix keeps listings off the temp.
 * Not fsynced when `durable` is false: the file is a hint that a crash may lose or leave empty,
 * never a wrong one.
 */
export async function writeAtomic(path: string, data: Buffer | string, durable = true): Promise<void> {
  await writeFileAtomic(path, data, { temp: `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`, durable });
}

/**
 * Move a complete file into place atomically, also across filesystems (the spool may live in
 * /tmp and the destination in PGDATA): then a copy beside the target, renamed (synced first unless
 * PostgreSQL syncs it itself: docs/format.md#restore-durability).
 */
export async function moveInto(source: string, target: string): Promise<void> {
  try {
    await fs.rename(source, target);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
  }
  // beside wal_dest: removed by later runs if we are killed; synced unless PostgreSQL does it (syncedByPostgres)
  await writeFileAtomic(target, { copyOf: source }, { temp: tempBeside(target), durable: !syncedByPostgres(target) });
  await fs.rm(source, { force: true });
}

export interface ArchiveMarker {
  size: number;
  /**
   * The file's identity when it was read for the upload (inode, mtime in ns): an unchanged file is
   * recognised without reading it again; any write changes the mtime.
   */
  ino: string;
  mtimeNs: string;
}

/** The `archive` directory of a spool, as returned by trustedSpoolDir. */
export class ArchiveSpool {
  constructor(readonly dir: string) {}

  async readMarker(walName: string): Promise<ArchiveMarker | null> {
    const text = await readTrusted(join(this.dir, walName));
    if (text === null) return null;
    try {
      return JSON.parse(text) as ArchiveMarker;
    } catch {
      return null;
    }
  }

  /**
   * Written only after the upload of `walName` was confirmed by the store. Not fsynced (one
   * journal commit less per segment): the store already holds the segment durably, and a marker
   * a crash lost or left empty only sends PostgreSQL's call to archive the file again, where the
   * content check finds it (an empty or torn marker matches no file, in Node or the shell).
   */
  async writeMarker(walName: string, marker: ArchiveMarker): Promise<void> {
    await writeAtomic(join(this.dir, walName), JSON.stringify(marker), false);
  }

  async removeMarker(walName: string): Promise<void> {
    await fs.rm(join(this.dir, walName), { force: true });
  }

  /**
   * Claim a WAL file for upload. A claim older than `staleMs` (a crashed archiver) is taken over.
   * Returns a release function, or null when another live process holds it.
   */
  async claim(walName: string, staleMs = 10 * 60_000): Promise<(() => Promise<void>) | null> {
    const lock = join(this.dir, `${walName}.lock`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await fs.open(lock, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        return () => fs.rm(lock, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const st = await fs.stat(lock).catch(() => null);
        const holder = Number(await fs.readFile(lock, 'utf8').catch(() => ''));
        const alive = holder > 0 && processAlive(holder);
        if (st && alive && Date.now() - st.mtimeMs < staleMs) return null;
        await fs.rm(lock, { force: true });
      }
    }
    return null;
  }

  /** Remove markers older than `maxAgeMs` (their WAL files were long since asked for, or never will be). */
  async prune(maxAgeMs: number): Promise<void> {
    await removeOlderThan(this.dir, maxAgeMs);
  }
}

/** Remove the entries of `dir` (but `keep`) last changed more than `maxAgeMs` ago, a few at a time. */
async function removeOlderThan(dir: string, maxAgeMs: number, keep?: string): Promise<void> {
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => n !== keep);
  const now = Date.now();
  await mapBounded(names, 8, async (n) => {
    const st = await fs.stat(join(dir, n)).catch(() => null);
    if (st && now - st.mtimeMs > maxAgeMs) await fs.rm(join(dir, n), { force: true });
  });
}

/**
 * Whether `pid` runs. A zombie does not: a killed --async worker whose caller already exited is
 * reparented, and a PID 1 that does not reap (some containers) would keep its claims "alive".
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: the signal's answer stands
  }
}

/** The `restore` directory of a spool, as returned by trustedSpoolDir. */
export class RestoreSpool {
  constructor(readonly dir: string) {}

  path(walName: string): string {
    return join(this.dir, walName);
  }

  /** A prefetched file younger than `maxAgeMs` that only we can have written, or null. */
  async lookup(walName: string, maxAgeMs: number): Promise<string | null> {
    const p = this.path(walName);
    const st = await statTrusted(p);
    if (!st) return null;
    if (Date.now() - st.mtimeMs > maxAgeMs) {
      await fs.rm(p, { force: true });
      return null;
    }
    return p;
  }

  /** A trusted prefetched copy exists (anything else there is replaced by the next download). */
  async has(walName: string): Promise<boolean> {
    return (await statTrusted(this.path(walName))) !== null;
  }

  async entries(): Promise<string[]> {
    return (await fs.readdir(this.dir).catch(() => [] as string[])).filter((n) => !n.includes('.tmp-'));
  }

  async remove(walName: string): Promise<void> {
    await fs.rm(this.path(walName), { force: true });
  }

  async segmentSize(): Promise<number | undefined> {
    const v = Number((await readTrusted(join(this.dir, 'segment-size'))) ?? '');
    return v > 0 ? v : undefined;
  }

  async setSegmentSize(size: number): Promise<void> {
    await writeAtomic(join(this.dir, 'segment-size'), String(size));
  }

  /** Delete temp files left by a crash and entries older than `maxAgeMs`. */
  async prune(maxAgeMs: number): Promise<void> {
    await removeOlderThan(this.dir, maxAgeMs, 'segment-size');
  }
}

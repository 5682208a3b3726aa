// The local directory store: the embedded default that needs no cloud. Keys are paths below the
// root directory. Every write is atomic: temp file in the same directory, fsync, rename (or link
// for a no-overwrite put), fsync of the directory. A symbolic link below the root that leads out of
// it is never followed (docs/architecture.md, "File store"): whoever can plant one in the store must
// not make us read, write or delete files elsewhere with our rights.
import { constants as fsConstants, lstatSync, promises as fs, readdirSync, readlinkSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { addAbortSignal, type Readable } from 'node:stream';
import type { FileStoreConfig } from './config.js';
import type {
  ConnectivityResult, DeleteResult, GetOptions, ListEntry, ListOptions, ObjectInfo, ObjectStore, PutOptions, Tag,
} from '../types.js';
import { exactChunks, isChunkedBody, readWhole, type PutBody } from '../body.js';
import { CoalescingFileWriter, WRITE_BUFFER_SIZE, writeCoalesced } from '../../file-writer.js';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { BucketNotFoundError, NotFoundError, ObjectTooLargeError, PreconditionFailedError, StorageError } from '../../errors.js';
import { mapBounded } from '../../concurrency.js';
import { writeFileAtomic } from '../../atomic-file.js';
import { NOT_REGULAR, openRegularFile, readRegularFile } from '../../regular-file.js';
import { removeStaleTemps } from '../../stale-temps.js';

// Our own bookkeeping files start with this; listings never show them.
const INTERNAL = '.bc-';
const TMP = `${INTERNAL}tmp-`;
const TAGS = `${INTERNAL}tags-`;
/** Exactly the temp names put() and writeTags() make: nothing else is ever swept. */
const OUR_TEMP = /^\.bc-(?:tmp-[0-9a-f]{12}|tags-.+\.json\.[0-9a-f]{8})$/;
// Should a writer stall for longer than STALE_TEMP_MS, a later run removes its temp file and its
// rename/link then fails (ENOENT) instead of storing anything.
export { STALE_TEMP_MS } from '../../stale-temps.js';

const { O_RDONLY, O_DIRECTORY } = fsConstants;

/**
 * Largest tag file read: barman's tags are at most 10 pairs of 128 + 256 characters, a few KiB as
 * JSON even with every character escaped (docs/format.md#metadata-limits).
 */
const TAGS_MAX_BYTES = 64 * 1024;

/** Files stat()ed between two turns of the event loop while listing a directory. */
const STAT_YIELD = 256;
/** Unlinks in flight in deleteMany(). */
const UNLINK_CONCURRENCY = 16;

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (e) {
    if (!isErrno(e, 'ENOENT', 'ENOTDIR')) throw e;
  }
}

function modeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function isErrno(e: unknown, ...codes: string[]): boolean {
  return typeof e === 'object' && e !== null && codes.includes((e as NodeJS.ErrnoException).code ?? '');
}

export class FileObjectStore implements ObjectStore {
  readonly provider = 'file' as const;
  readonly bucket: string;
  // Deleting local files one by one is cheap; a large batch keeps callers' loops short.
  readonly maxDeleteBatch = 1000;

  /** Directories swept for stale temp files by this process (one readdir each, at most). */
  private readonly swept = new Set<string>();
  /** The root with its own symlinks resolved (a root that is a link is the operator's choice). */
  private realRoot: string | undefined;
  /**
   * Directories found inside the root, for reads: each resolved once per process, since a catalog
   * of 5,000 backups heads and reads 10,000 keys and a realpath costs ~0.1 ms of CPU. Writes and
   * deletions check afresh (a long-lived worker's directory may be replaced meanwhile).
   */
  private readonly inside = new Set<string>();
  /** Real directories found owned by us (or root) and writable by nobody else: see assertOwnLevels. */
  private readonly ownLevels = new Set<string>();

  constructor(config: FileStoreConfig) {
    this.bucket = config.bucket;
  }

  /** Remove temp files of killed runs from `dir` (src/stale-temps.ts), once per directory and process. */
  private async sweepStaleTemps(dir: string): Promise<number> {
    if (this.swept.has(dir)) return 0;
    this.swept.add(dir);
    return removeStaleTemps(dir, (name) => OUR_TEMP.test(name));
  }

  private path(key: string): string {
    if (key === '' || key.split('/').some((part) => part === '..') || key.startsWith('/')) {
      throw new StorageError(`invalid object key: ${key}`);
    }
    return join(this.bucket, ...key.split('/'));
  }

  /**
   * Refuses (StorageError) when directory `dir` of `key` resolves outside the root through a
   * symbolic link below it; a missing directory passes (nothing there to follow). `forRead` may
   * answer from the directories already found inside.
   */
  private async assertInside(dir: string, key: string, forRead = false): Promise<void> {
    if (forRead && this.inside.has(dir)) return;
    let real: string;
    try {
      this.realRoot ??= await fs.realpath(this.bucket);
      real = await fs.realpath(dir);
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
      throw new StorageError(`cannot access ${key}: ${(e as Error).message}`, { cause: e });
    }
    const root = this.realRoot;
    if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) {
      throw new StorageError(`refusing ${key}: a symbolic link in ${this.bucket} leads out of it (to ${real})`);
    }
    this.assertOwnLevels(real, key);
    this.inside.add(dir);
  }

  /**
   * Refuses (StorageError) when another user could change what lies at `real` (a real directory
   * in the root): the root and each level down to `real` must be owned by us or root (any owner
   * when we are root) and writable by nobody else, and the root's parent owned by us or root and
   * writable by nobody else unless sticky (docs/format.md#file-store-owners). A level that passed stays trusted for the
   * process: only its owner or root could change its mode, and only through a trusted parent
   * could it be replaced. lstat on the main thread: a few cached inodes answer from memory, cheaper
   * than a thread-pool round trip each (wal-restore checks ~4 levels once per process).
   */
  private assertOwnLevels(real: string, key: string): void {
    const root = this.realRoot!;
    const levels = [root, ...(real === root ? [] : real.slice(root.length + (root.endsWith(sep) ? 0 : 1)).split(sep))];
    const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
    let path = '';
    for (const [i, level] of levels.entries()) {
      path = i === 0 ? level : join(path, level);
      if (this.ownLevels.has(path)) continue;
      let why: string | null = null;
      try {
        if (i === 0 && dirname(path) !== path) {
          const parent = lstatSync(dirname(path));
          if (parent.mode & 0o022 && !(parent.mode & 0o1000)) {
            why = `its parent ${dirname(path)} is writable by group or others without the sticky bit (mode ${modeText(parent.mode)})`;
          } else if (euid !== 0 && parent.uid !== euid && parent.uid !== 0) {
            // the parent's owner may rename the root away and put another in its place
            why = `its parent ${dirname(path)} is owned by uid ${parent.uid}, not by us (${euid}) or root`;
          }
        }
        const st = lstatSync(path);
        if (why === null && euid !== 0 && st.uid !== euid && st.uid !== 0) why = `${path} is owned by uid ${st.uid}, not by us (${euid}) or root`;
        if (why === null && st.mode & 0o022) why = `${path} is writable by group or others (mode ${modeText(st.mode)})`;
      } catch (e) {
        if (isErrno(e, 'ENOENT', 'ENOTDIR')) return; // nothing there yet: what we make is ours
        throw new StorageError(`cannot access ${key}: ${(e as Error).message}`, { cause: e });
      }
      if (why !== null) throw new StorageError(`refusing ${key}: another user could change the store: ${why}`);
      this.ownLevels.add(path);
    }
  }

  /** src/regular-file.ts's check for the file opened for `key`: it must lie inside the root (else it throws). */
  private refuseOutside(key: string): (stats: unknown, fd: number) => Promise<null> {
    return async (_stats, fd) => {
      await this.assertOpenedInside(fd, key);
      return null;
    };
  }

  /**
   * Refuses (StorageError) when the file open as `fd` lies outside the root: the check of its
   * directory came before the open, and a directory level swapped for a link in between would
   * otherwise be used (docs/format.md#file-store-links). Returns that real path; Linux names the file of a
   * descriptor in /proc/self/fd; without procfs (null) only the check before the open stands.
   */
  private async assertOpenedInside(fd: number, key: string): Promise<string | null> {
    let real: string;
    try {
      // procfs answers from memory: a thread-pool round trip would cost more than the call
      real = readlinkSync(`/proc/self/fd/${fd}`);
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return null;
      throw new StorageError(`cannot access ${key}: ${(e as Error).message}`, { cause: e });
    }
    this.realRoot ??= await fs.realpath(this.bucket);
    const root = this.realRoot;
    if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) {
      throw new StorageError(`refusing ${key}: a symbolic link in ${this.bucket} leads out of it (to ${real})`);
    }
    return real;
  }

  /**
   * Creates the missing directories of `dir` one level at a time, each only after its parent was
   * found inside the root: `mkdir -p` through a linked level would make directories outside the
   * store before any check could refuse (docs/format.md#file-store-links).
   */
  private async makeDirs(dir: string, key: string): Promise<void> {
    const root = join(this.bucket, '.');
    if (dir === root || dirname(dir) === dir) return;
    try {
      if ((await fs.lstat(dir)).isDirectory()) return;
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
      await this.makeDirs(dirname(dir), key);
      const parent = await this.pinDir(dirname(dir), key);
      try {
        await fs.mkdir(join(parent.base, basename(dir)), 0o755); // writable by nobody else, whatever the umask (see assertOwnLevels)
      } catch (e2) {
        if (!isErrno(e2, 'EEXIST')) throw e2;
      } finally {
        await parent.handle.close();
      }
    }
    // a link, or the directory made above: where it leads is checked by the caller
  }

  private async assertRoot(): Promise<void> {
    if (!(await this.bucketExists())) throw new BucketNotFoundError(this.bucket);
  }

  async testConnectivity(): Promise<ConnectivityResult> {
    return (await this.bucketExists()) ? 'ok' : 'bucket-missing';
  }

  async bucketExists(): Promise<boolean> {
    try {
      return (await fs.stat(this.bucket)).isDirectory();
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return false;
      throw new StorageError(`cannot access ${this.bucket}: ${(e as Error).message}`, { cause: e });
    }
  }

  async createBucket(): Promise<void> {
    await fs.mkdir(this.bucket, { recursive: true, mode: 0o755 }); // see assertOwnLevels
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const p = this.path(key);
    await this.assertInside(dirname(p), key, true);
    try {
      // lstat: a symlink is no object, as listings say
      const st = await fs.lstat(p);
      return st.isFile() ? { key, size: st.size, lastModified: st.mtime } : null;
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return null;
      throw new StorageError(`cannot stat ${key}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * The object at `p` opened for reading: a regular file inside the root, else NotFoundError or
   * StorageError. Opened by src/regular-file.ts: never through a link (a symlink is no object, as
   * listings say), and a FIFO planted under an object's name does not hang a wal-restore, and with
   * it PostgreSQL's recovery.
   */
  private async openObject(p: string, key: string): Promise<{ handle: fs.FileHandle; size: number }> {
    await this.assertInside(dirname(p), key, true);
    let opened: Awaited<ReturnType<typeof openRegularFile>>;
    try {
      opened = await openRegularFile(p, this.refuseOutside(key));
    } catch (e) {
      if (isErrno(e, 'ENOTDIR', 'EISDIR')) {
        await this.assertRoot();
        throw new NotFoundError(key, { cause: e });
      }
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot read ${key}: ${(e as Error).message}`, { cause: e });
    }
    if (typeof opened === 'string') {
      // nothing there or a link: the root itself may be gone; a non-regular file is no object
      if (opened !== NOT_REGULAR) await this.assertRoot();
      throw new NotFoundError(key);
    }
    return { handle: opened.fh, size: opened.stats.size };
  }

  /**
   * Directory `dir` of `key` opened and found inside the root, and the path to reach names in it
   * through that descriptor (`/proc/self/fd/N`, as openat(2) would): a rename or unlink through a
   * path would look the directory up again, and rename(2) looks up its two paths one after the
   * other, so a level switched to a link in between moved our file out of the store over a file
   * there (docs/format.md#file-store-links). Without procfs: the path, checked just before.
   */
  private async pinDir(dir: string, key: string): Promise<{ base: string; handle: fs.FileHandle }> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(dir, O_RDONLY | O_DIRECTORY);
    } catch (e) {
      throw new StorageError(`cannot access ${key}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const real = await this.assertOpenedInside(handle.fd, key);
      if (real !== null) {
        this.assertOwnLevels(real, key);
        return { base: `/proc/self/fd/${handle.fd}`, handle };
      }
      await this.assertInside(dir, key);
      return { base: dir, handle };
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const { handle, size } = await this.openObject(this.path(key), key);
    // A read stream allocates a whole piece per read: no larger than the object (10,001 one-block
    // parts read through 1 MiB pieces took 50% longer to restore).
    const piece = options.pieceSize === undefined ? undefined : Math.min(options.pieceSize, Math.max(size, 64 * 1024));
    return handle.createReadStream({ start: options.start, end: options.end, signal: options.signal, highWaterMark: piece });
  }

  async getBuffer(key: string, options: GetOptions = {}): Promise<Buffer> {
    if (options.start === undefined && options.end === undefined) {
      // A whole small object (backup.info, annotations): one read, without a stream's 64 KiB
      // buffer per call (listing 5,000 backups allocated 320 MB of them).
      const { handle: fh, size } = await this.openObject(this.path(key), key);
      try {
        const { maxBytes } = options;
        if (maxBytes === undefined) return await fh.readFile({ signal: options.signal });
        if (size > maxBytes) throw new ObjectTooLargeError(key, maxBytes);
        // Not readFile(): a file growing meanwhile must not be read past the limit either. Read on
        // the main thread, as listings stat: a small file just opened is in the page cache, and a
        // thread-pool round trip per read cost more CPU than the read (a catalog reads thousands).
        const buf = Buffer.allocUnsafe(size + 1);
        let got = 0;
        for (let n; got < buf.length && (n = readSync(fh.fd, buf, got, buf.length - got, got)) > 0;) got += n;
        if (got > maxBytes) throw new ObjectTooLargeError(key, maxBytes);
        return buf.subarray(0, got);
      } catch (e) {
        if (e instanceof StorageError) throw e;
        if ((e as Error).name === 'AbortError') throw e;
        throw new StorageError(`cannot read ${key}: ${(e as Error).message}`, { cause: e });
      } finally {
        await fh.close();
      }
    }
    return readWhole(await this.get(key, options), { key, maxBytes: options.maxBytes });
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    await this.assertRoot();
    const target = this.path(key);
    const dir = dirname(target);
    await this.makeDirs(dir, key);
    const { base, handle: dirHandle } = await this.pinDir(dir, key);
    // Runs beside the write (both are short); awaited before we return.
    const sweep = this.sweepStaleTemps(dir);
    try {
      // A whole object at hand (a WAL file, a small file) is written on the thread pool: the --async
      // archive worker has several in flight, and one write(2) waiting on a busy disk would stop
      // them all and the compression feeding them (measured: a third of its wall time blocked in
      // writes). A stream goes in 1 MiB pieces through a reused buffer (src/file-writer.ts says
      // why); a chunk is copied or written before the next is read, so borrowed chunks are safe.
      // Then fsynced and renamed, or with ifNoneMatch linked: link() fails with EEXIST instead of
      // replacing, an atomic "create only" (src/atomic-file.ts).
      const temp = join(base, `${TMP}${randomBytes(6).toString('hex')}`);
      const written = await writeFileAtomic(join(base, basename(target)), async (fd, fh) => {
        if (Buffer.isBuffer(body) || isChunkedBody(body)) {
          await writeCoalesced(fh, Buffer.isBuffer(body) ? [body] : exactChunks(body));
          return;
        }
        const writer = new CoalescingFileWriter(fd);
        let sinceYield = 0;
        for await (const chunk of options.signal ? addAbortSignal(options.signal, body) : body) {
          writer.write(chunk as Buffer);
          // The writes are synchronous: give timers and signals (an abort, SIGINT) their turn
          // now and then, even when the source always has data ready.
          if ((sinceYield += (chunk as Buffer).length) >= 8 * WRITE_BUFFER_SIZE) {
            sinceYield = 0;
            await yieldToEventLoop();
          }
        }
        writer.flush();
      }, { temp, mode: 0o644, exclusive: options.ifNoneMatch === true });
      if (!written) throw new PreconditionFailedError(key);
      await this.writeTags(join(base, tagsName(target)), options.tags);
      await syncDir(dirHandle);
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot write ${key}: ${(e as Error).message}`, { cause: e });
    } finally {
      await dirHandle.close();
      await sweep;
    }
  }

  private tagsPath(key: string): string {
    const p = this.path(key);
    return join(dirname(p), tagsName(p));
  }

  /** Writes or removes the tag file `tp` (a path through the pinned directory). */
  private async writeTags(tp: string, tags: Tag[] | undefined): Promise<void> {
    if (!tags || tags.length === 0) {
      await fs.rm(tp, { force: true });
      return;
    }
    await writeFileAtomic(tp, JSON.stringify(tags), { temp: join(dirname(tp), `${TMP}${randomBytes(6).toString('hex')}`), mode: 0o644 });
  }

  async getTags(key: string): Promise<Tag[]> {
    if (!(await this.head(key))) throw new NotFoundError(key);
    try {
      // as for objects: a link or anything but a regular file is no tag file
      // (docs/format.md#file-store-links); and at most TAGS_MAX_BYTES of it.
      const tags = await readRegularFile(this.tagsPath(key), TAGS_MAX_BYTES, this.refuseOutside(key));
      if (!tags) return [];
      if (tags.content.length > TAGS_MAX_BYTES) throw new StorageError(`cannot read tags of ${key}: the tag file is larger than ${TAGS_MAX_BYTES} bytes`);
      return JSON.parse(tags.content.toString('utf8')) as Tag[];
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot read tags of ${key}: ${(e as Error).message}`, { cause: e });
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    const { delimiter } = options;
    if (delimiter !== undefined && delimiter !== '/') {
      throw new StorageError(`the file store lists with the '/' delimiter only, not '${delimiter}'`);
    }
    await this.assertRoot();
    // Start in the deepest directory the prefix names completely; filter the rest by name.
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut >= 0 ? prefix.slice(0, cut + 1) : '';
    yield* this.walk(dirKey, prefix, delimiter === '/');
  }

  private async *walk(dirKey: string, prefix: string, oneLevel: boolean, top = true): AsyncGenerator<ListEntry> {
    let entries: import('node:fs').Dirent[];
    const dirPath = dirKey ? join(this.bucket, ...dirKey.split('/').filter(Boolean)) : this.bucket;
    // the directory named by the prefix is reached by path; those below it only through real directories
    if (top) await this.assertInside(dirPath, dirKey || '/', true);
    try {
      entries = await fs.readdir(dirPath, {
        withFileTypes: true,
      });
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
      throw new StorageError(`cannot list ${dirKey || '/'}: ${(e as Error).message}`, { cause: e });
    }
    // Sort as object keys sort: a directory "a" sorts as "a/", after "a.txt".
    const named = entries
      .filter((d) => !d.name.startsWith(INTERNAL) && (d.isFile() || d.isDirectory()))
      .map((d) => ({ d, sortKey: dirKey + d.name + (d.isDirectory() ? '/' : '') }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    // Sizes come from statSync() on the main thread: the inodes of a directory just read are
    // almost always cached, and a thread-pool round trip (futex, eventfd, promise) per file cost
    // more CPU than the system call itself (a retention pass stats 200,000 files). The event loop
    // gets a turn every STAT_YIELD files so that deletions in flight keep completing.
    let sinceYield = 0;
    for (const { d, sortKey } of named) {
      if (d.isDirectory()) {
        // Descend when the directory can hold matching keys.
        if (!(sortKey.startsWith(prefix) || prefix.startsWith(sortKey))) continue;
        if (oneLevel && sortKey.startsWith(prefix)) {
          yield { kind: 'prefix', prefix: sortKey };
        } else {
          yield* this.walk(sortKey, prefix, oneLevel, false);
        }
      } else if (sortKey.startsWith(prefix)) {
        if (++sinceYield >= STAT_YIELD) {
          sinceYield = 0;
          await yieldToEventLoop();
        }
        let st: import('node:fs').Stats | undefined;
        try {
          st = statSync(dirPath + sep + d.name, { throwIfNoEntry: false });
        } catch {
          // Unreadable between readdir and stat: not listed, as a vanished file is not.
        }
        if (st) yield { kind: 'object', key: sortKey, size: st.size, lastModified: st.mtime };
      }
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.path(key);
    let pinned: { base: string; handle: fs.FileHandle };
    try {
      pinned = await this.pinDir(dirname(p), key);
    } catch (e) {
      // no directory: no object (a directory that is no directory: its key holds nothing either)
      if (isErrno((e as Error).cause, 'ENOENT', 'ENOTDIR')) return;
      throw e;
    }
    try {
      await fs.unlink(join(pinned.base, basename(p)));
    } catch (e) {
      if (!isErrno(e, 'ENOENT', 'ENOTDIR')) {
        throw new StorageError(`cannot delete ${key}: ${(e as Error).message}`, { cause: e });
      }
    } finally {
      await fs.rm(join(pinned.base, tagsName(p)), { force: true }).finally(() => pinned.handle.close());
    }
    await this.pruneSwept(dirname(p));
  }

  /**
   * pruneEmptyDirs, and where `dir` stays, a sweep of the temp files killed writers left there
   * first: a directory emptied of its objects would otherwise keep one for ever (a backup killed
   * mid-part, then deleted: docs/format.md#backup-heartbeat). Read only when the directory stays.
   */
  private async pruneSwept(dir: string): Promise<string> {
    const kept = await this.pruneEmptyDirs(dir);
    return kept === dir && (await this.sweepStaleTemps(dir)) > 0 ? this.pruneEmptyDirs(dir) : kept;
  }

  // Object stores have no empty "directories"; neither should we. Returns the first directory
  // that stayed (where the last change is recorded).
  private async pruneEmptyDirs(dir: string): Promise<string> {
    const root = this.bucket.endsWith(sep) ? this.bucket.slice(0, -1) : this.bucket;
    while (dir.startsWith(root + sep) && dir !== root) {
      try {
        await fs.rmdir(dir);
      } catch {
        return dir;
      }
      dir = dirname(dir);
    }
    return dir;
  }

  /**
   * Unlinks with a few in flight and no fsync each; then each directory touched is pruned if
   * empty, and the ones left (or the parent of one removed) are fsynced once, so that the
   * deletions are durable when this returns. `batchSize` does not matter here: there is no request.
   */
  async deleteMany(keys: string[], _batchSize?: number): Promise<DeleteResult> {
    const failed = new Map<string, string>();
    // Tag files of the directories touched, from one readdir each (most objects have none, and a
    // failed unlink per object cost more than the unlink of the object itself).
    const tagFiles = new Map<string, Set<string>>();
    const tagsIn = (dir: string, base: string) => {
      let found = tagFiles.get(dir);
      if (!found) {
        found = new Set();
        try {
          for (const name of readdirSync(base)) if (name.startsWith(TAGS)) found.add(name);
        } catch {
          // A missing directory holds no tag file; the unlink below reports what matters.
        }
        tagFiles.set(dir, found);
      }
      return found;
    };
    // No fsync per unlink: see below. Several in flight, since an unlink may wait on the device's journal.
    // Each directory opened and checked once while keys of it are in flight (a retention pass
    // deletes thousands per directory), names unlinked through it (pinDir says why); closed when
    // its last key is done, so a pass over thousands of directories holds few descriptors.
    const pins = new Map<string, { base: Promise<string | null>; handle?: fs.FileHandle; users: number }>();
    await mapBounded(keys, UNLINK_CONCURRENCY, async (key) => {
      let dir: string | undefined;
      try {
        const p = this.path(key);
        dir = dirname(p);
        let pin = pins.get(dir);
        if (!pin) {
          const made: { base: Promise<string | null>; handle?: fs.FileHandle; users: number } = { base: Promise.resolve(null), users: 0 };
          made.base = this.pinDir(dir, key).then(({ base, handle }) => {
            made.handle = handle;
            return base;
          }, (e: unknown) => {
            // no directory: none of its keys exists
            if (isErrno((e as Error).cause, 'ENOENT', 'ENOTDIR')) return null;
            throw e;
          });
          pins.set(dir, (pin = made));
        }
        pin.users++;
        try {
          const base = await pin.base;
          if (base === null) {
            if (!tagFiles.has(dir)) tagFiles.set(dir, new Set());
            return;
          }
          const tags = tagsIn(dir, base);
          await unlinkIfPresent(join(base, basename(p)));
          const tagName = tagsName(p);
          if (tags.has(tagName)) await unlinkIfPresent(join(base, tagName));
        } finally {
          if (--pin.users === 0) {
            pins.delete(dir);
            await pin.handle?.close();
          }
        }
      } catch (e) {
        failed.set(key, e instanceof StorageError ? e.message : `cannot delete ${key}: ${(e as Error).message}`);
      }
    });
    // Each directory touched: removed if empty, else (or its first remaining parent) fsynced
    // once, so the deletions are durable when this returns.
    const toSync = new Set<string>();
    for (const dir of [...tagFiles.keys()].sort((a, b) => b.length - a.length)) toSync.add(await this.pruneSwept(dir));
    for (const dir of toSync) await syncDir(dir).catch(() => {});
    return {
      deleted: keys.filter((k) => !failed.has(k)),
      errors: [...failed].map(([key, message]) => ({ key, message })),
    };
  }

  async close(): Promise<void> {}
}

async function syncDir(dir: string | fs.FileHandle): Promise<void> {
  const fh = typeof dir === 'string' ? await fs.open(dir, 'r') : dir;
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    if (fh !== dir) await fh.close();
  }
}

/** The tag file's name beside the object at `path`. */
function tagsName(path: string): string {
  return `${TAGS}${basename(path)}.json`;
}

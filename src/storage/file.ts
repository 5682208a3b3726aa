// The local directory store: the embedded default that needs no cloud. Keys are paths below the
// root directory. Every write is atomic: temp file in the same directory, fsync, rename (or link
// for a no-overwrite put), fsync of the directory.
import { closeSync, fsyncSync, openSync, promises as fs } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { addAbortSignal, type Readable } from 'node:stream';
import type { FileStoreConfig } from './config.js';
import type {
  ConnectivityResult, DeleteResult, GetOptions, ListEntry, ListOptions, ObjectInfo, ObjectStore, PutOptions, Tag,
} from './types.js';
import { exactChunks, isChunkedBody, type PutBody } from './body.js';
import { CoalescingFileWriter, WRITE_BUFFER_SIZE } from '../file-writer.js';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { BucketNotFoundError, NotFoundError, PreconditionFailedError, StorageError } from '../errors.js';
import { removeStaleTemps } from '../stale-temps.js';

// Our own bookkeeping files start with this; listings never show them.
const INTERNAL = '.bc-';
const TMP = `${INTERNAL}tmp-`;
const TAGS = `${INTERNAL}tags-`;
/** Exactly the temp names put() and writeTags() make: nothing else is ever swept. */
const OUR_TEMP = /^\.bc-(?:tmp-[0-9a-f]{12}|tags-.+\.json\.[0-9a-f]{8})$/;
// Should a writer stall for longer than STALE_TEMP_MS, a later run removes its temp file and its
// rename/link then fails (ENOENT) instead of storing anything.
export { STALE_TEMP_MS } from '../stale-temps.js';

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

  constructor(config: FileStoreConfig) {
    this.bucket = config.bucket;
  }

  /** Remove temp files of killed runs from `dir` (src/stale-temps.ts), once per directory and process. */
  private async sweepStaleTemps(dir: string): Promise<void> {
    if (this.swept.has(dir)) return;
    this.swept.add(dir);
    await removeStaleTemps(dir, (name) => OUR_TEMP.test(name));
  }

  private path(key: string): string {
    if (key === '' || key.split('/').some((part) => part === '..') || key.startsWith('/')) {
      throw new StorageError(`invalid object key: ${key}`);
    }
    return join(this.bucket, ...key.split('/'));
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
    await fs.mkdir(this.bucket, { recursive: true });
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const st = await fs.stat(this.path(key));
      return st.isFile() ? { key, size: st.size, lastModified: st.mtime } : null;
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return null;
      throw new StorageError(`cannot stat ${key}: ${(e as Error).message}`, { cause: e });
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.path(key), 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR', 'EISDIR')) {
        await this.assertRoot();
        throw new NotFoundError(key, { cause: e });
      }
      throw new StorageError(`cannot read ${key}: ${(e as Error).message}`, { cause: e });
    }
    return handle.createReadStream({ start: options.start, end: options.end, signal: options.signal });
  }

  async getBuffer(key: string, options: GetOptions = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(key, options)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    await this.assertRoot();
    const target = this.path(key);
    const dir = dirname(target);
    await fs.mkdir(dir, { recursive: true });
    // Runs beside the write (both are short); awaited before we return.
    const sweep = this.sweepStaleTemps(dir);
    const tmp = join(dir, `${TMP}${randomBytes(6).toString('hex')}`);
    try {
      // Written in 1 MiB pieces through a reused buffer (src/file-writer.ts says why); a chunk is
      // copied or written before the next is read, so a chunked body's borrowed chunks are safe.
      const fd = openSync(tmp, 'wx', 0o644);
      try {
        const writer = new CoalescingFileWriter(fd);
        if (Buffer.isBuffer(body)) {
          writer.write(body);
        } else if (isChunkedBody(body)) {
          for (const chunk of exactChunks(body)) writer.write(chunk);
        } else {
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
        }
        writer.flush();
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      if (options.ifNoneMatch) {
        // link() fails with EEXIST instead of replacing: an atomic "create only".
        try {
          await fs.link(tmp, target);
        } catch (e) {
          if (isErrno(e, 'EEXIST')) throw new PreconditionFailedError(key, { cause: e });
          throw e;
        }
        await fs.unlink(tmp);
      } else {
        await fs.rename(tmp, target);
      }
      await this.writeTags(key, options.tags);
      await syncDir(dir);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot write ${key}: ${(e as Error).message}`, { cause: e });
    } finally {
      await sweep;
    }
  }

  private tagsPath(key: string): string {
    const p = this.path(key);
    return join(dirname(p), `${TAGS}${p.slice(dirname(p).length + 1)}.json`);
  }

  private async writeTags(key: string, tags: Tag[] | undefined): Promise<void> {
    const tp = this.tagsPath(key);
    if (!tags || tags.length === 0) {
      await fs.rm(tp, { force: true });
      return;
    }
    const tmp = `${tp}.${randomBytes(4).toString('hex')}`;
    await fs.writeFile(tmp, JSON.stringify(tags));
    await fs.rename(tmp, tp);
  }

  async getTags(key: string): Promise<Tag[]> {
    if (!(await this.head(key))) throw new NotFoundError(key);
    try {
      return JSON.parse(await fs.readFile(this.tagsPath(key), 'utf8')) as Tag[];
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return [];
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

  private async *walk(dirKey: string, prefix: string, oneLevel: boolean): AsyncGenerator<ListEntry> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dirKey ? join(this.bucket, ...dirKey.split('/').filter(Boolean)) : this.bucket, {
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
    for (const { d, sortKey } of named) {
      if (d.isDirectory()) {
        // Descend when the directory can hold matching keys.
        if (!(sortKey.startsWith(prefix) || prefix.startsWith(sortKey))) continue;
        if (oneLevel && sortKey.startsWith(prefix)) {
          yield { kind: 'prefix', prefix: sortKey };
        } else {
          yield* this.walk(sortKey, prefix, oneLevel);
        }
      } else if (sortKey.startsWith(prefix)) {
        const st = await fs.stat(join(this.bucket, ...sortKey.split('/'))).catch(() => null);
        if (st) yield { kind: 'object', key: sortKey, size: st.size, lastModified: st.mtime };
      }
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.path(key);
    try {
      await fs.unlink(p);
    } catch (e) {
      if (!isErrno(e, 'ENOENT', 'ENOTDIR')) {
        throw new StorageError(`cannot delete ${key}: ${(e as Error).message}`, { cause: e });
      }
    }
    await fs.rm(this.tagsPath(key), { force: true });
    await this.pruneEmptyDirs(dirname(p));
  }

  // Object stores have no empty "directories"; neither should we.
  private async pruneEmptyDirs(dir: string): Promise<void> {
    const root = this.bucket.endsWith(sep) ? this.bucket.slice(0, -1) : this.bucket;
    while (dir.startsWith(root + sep) && dir !== root) {
      try {
        await fs.rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }

  async deleteMany(keys: string[], batchSize?: number): Promise<DeleteResult> {
    const size = Math.max(1, Math.min(batchSize ?? this.maxDeleteBatch, this.maxDeleteBatch));
    const result: DeleteResult = { deleted: [], errors: [] };
    for (let i = 0; i < keys.length; i += size) {
      for (const key of keys.slice(i, i + size)) {
        try {
          await this.delete(key);
          result.deleted.push(key);
        } catch (e) {
          result.errors.push({ key, message: (e as Error).message });
        }
      }
    }
    return result;
  }

  async close(): Promise<void> {}
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    await fh.close();
  }
}

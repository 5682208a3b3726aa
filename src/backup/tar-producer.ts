// Streaming tar producer for base backups (docs/format.md#tar-members, #tar-parts, #layout for part names, #compression).
//
// Archives are written the way barman's TarFileIgnoringTruncate (Python tarfile, PAX_FORMAT, stream
// mode) writes them, byte for byte for the uncompressed tar: the headers and the end of each part
// as tar-header.ts encodes them, and a file read for exactly the size lstat reported (a file that
// shrank is padded with zeros, the extra bytes of a file that grew are not read).
//
// Checksums: with a manifest builder, the CRC-32C and size of every regular file's data are taken
// from the bytes written into the tar (a file that changes while read is recorded as stored), and
// the pgdata archive ends with PostgreSQL's `backup_manifest` (manifest.ts). Every part's stored
// (compressed) bytes are hashed with SHA-256 on their way to the sink, for parts.json.
//
// Parts: `<name>.tar<sfx>`, `<name>_0001.tar<sfx>`, … Before each member, a part whose compressed
// byte count already exceeds maxArchiveSize is closed and the next one opened; a member is never
// split, so every part is a complete tar. Each part's compressed byte stream is handed to the
// caller's part sink; back-pressure runs from the sink through the compressor to the file reads.
import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import type { BigIntStats, Dirent } from 'node:fs';
import { constants as fsc } from 'node:fs';
import { BlockCompressStream } from '../compression/block-stream.js';
import { lstat, open, readdir, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream';
import { loadCodec, WAL_SUFFIX, type Codec, type CodecName } from '../compression/index.js';
import { AGE_SUFFIX, encryptStream } from '../encryption/age.js';
import { TaskWindow } from '../concurrency.js';
import { GeneralError } from '../errors.js';
import { bytesMoved } from '../reclaim.js';
import { log } from '../log.js';
import { childMemberName, createPathFilter, type ExclusionOptions, type PathFilter, type RootKind } from './exclude.js';
import { BACKUP_MANIFEST_NAME, BackupManifestBuilder, Crc32c, manifestPath, type WalRange } from './manifest.js';
import {
  BLOCK_SIZE, devMajor, devMinor, encodeTarHeader, groupName, pythonMtime, tarTrailer, TarType, userName, type TarHeader,
} from './tar-header.js';

/**
 * Default levels of backup tars; others: the codec's default. bzip2 9 as barman's tarfile (`w|bz2`).
 * gzip 6, not barman's 9 (`w|gz`, docs/format.md#compression): on a pgbench data directory level 9 deflates at
 * 24 MB/s per core against 119 at level 6, for output 0.2% smaller; `--compression-level` chooses.
 */
export const BACKUP_COMPRESSION_LEVEL: Partial<Record<CodecName, number>> = { gzip: 6, bzip2: 9 };

/** A file of the source tree could not be read: the backup fails (exit code decided by the caller). */
export class ArchiveSourceError extends GeneralError {}

// ---- source errors -------------------------------------------------------------------------------

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** The bytes of a name, printable: ASCII as is, anything else as `\xNN`. */
function byteEscaped(raw: Buffer): string {
  let out = '';
  for (const b of raw) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

/**
 * A name that is not UTF-8 reaches us with U+FFFD in its place: that name does not exist, so the
 * entry would pass for one that vanished and be left out of the backup with exit 0 (a link's target
 * would be stored wrong). The backup fails instead, naming the entry.
 */
function undecodableName(what: string, raw: Buffer): ArchiveSourceError {
  return new ArchiveSourceError(`Cannot back up ${what}: '${byteEscaped(raw)}' is not valid UTF-8`);
}

/**
 * A regular file that became something else between its lstat and its open: like a file that
 * vanished, it is left out (a WARNING says so), or, when it must be there, the backup fails.
 */
function replaced(path: string, what: string, skipVanished: boolean): false {
  if (!skipVanished) throw new ArchiveSourceError(`Cannot read '${path}' for the backup: it became ${what} while being read`);
  log.warning(`Skipping '${path}': it became ${what} while being read`);
  return false;
}

function sourceError(path: string, err: unknown): ArchiveSourceError {
  const msg = err instanceof Error ? err.message : String(err);
  return new ArchiveSourceError(`Cannot read '${path}' for the backup: ${msg}`, { cause: err });
}

// ---- parts ---------------------------------------------------------------------------------------

/** `<name>.tar<sfx>` for index 0, `<name>_%04d.tar<sfx>` after (docs/format.md#layout). */
function partName(name: string, index: number, suffix = ''): string {
  return index === 0 ? `${name}.tar${suffix}` : `${name}_${String(index).padStart(4, '0')}.tar${suffix}`;
}

/** Suffix after `.tar` for a codec: '' (none), '.gz', '.bz2', '.snappy', '.zst', '.lz4', '.xz'. */
function tarSuffix(codec: CodecName | null | undefined): string {
  return codec ? WAL_SUFFIX[codec] : '';
}

/** One part handed to the sink. */
export interface ArchivePart {
  /** Archive name: 'data' or a tablespace OID. */
  archive: string;
  /** Object name: data.tar.gz, data_0001.tar.gz, … */
  name: string;
  /** 0 for the main file, n for `_%04d`. */
  index: number;
  /** The compressed bytes of the part; ends when the part is complete. */
  stream: Readable;
}

/**
 * Where a part goes. Consume `part.stream` to its end (e.g. `store.put(key, part.stream)` or a
 * pipeline into a file) and resolve once the part is safely stored; reject to fail the backup.
 */
export type PartSink = (part: ArchivePart) => Promise<void>;

export interface PartStats {
  name: string;
  index: number;
  /** Compressed bytes handed to the sink. */
  bytes: number;
  /** SHA-256 (hex) of the bytes handed to the sink. */
  sha256: string;
  /** Uncompressed tar bytes, trailer included. */
  tarBytes: number;
  members: number;
  /** Part opened (sink called). */
  startTime: Date;
  /** Sink resolved. */
  endTime: Date;
  seconds: number;
}

export interface ArchiveResult {
  archive: string;
  parts: PartStats[];
  bytes: number;
  tarBytes: number;
  members: number;
  startTime: Date;
  endTime: Date;
}

class OpenPart {
  readonly index: number;
  readonly name: string;
  readonly input: Writable;
  readonly output: Transform;
  readonly startTime = new Date();
  endTime?: Date;
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private digest: string | undefined;
  tarBytes = 0;
  members = 0;
  ended = false;
  /** Hard-link detection, per archive part as in tarfile: "dev:ino" → first member name (nlink > 1 only). */
  readonly inodes = new Map<string, string>();
  done: Promise<void>;

  constructor(
    archive: string,
    index: number,
    suffix: string,
    codec: Codec | undefined,
    level: number | undefined,
    sink: PartSink,
    fail: (err: Error) => void,
    recipients?: readonly string[],
  ) {
    this.index = index;
    this.name = partName(archive, index, suffix);
    const counter = new Transform({
      writableHighWaterMark: STREAM_BUFFER,
      readableHighWaterMark: STREAM_BUFFER,
      transform: (chunk: Buffer, _enc, cb) => {
        this.bytes += chunk.length;
        this.hash.update(chunk);
        cb(null, chunk);
      },
    });
    this.output = counter;
    // A sink that gives up on its stream (an upload failing) makes Node destroy it with its own
    // AbortError (ABORT_ERR) or a premature close before the sink rejects with the real cause:
    // leave that failure to `done` below, so the error reported is the cause and not "The
    // operation was aborted".
    const onStreamError = (err: Error) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ABORT_ERR' || code === 'ERR_STREAM_PREMATURE_CLOSE') return;
      fail(err);
    };
    // compress, then encrypt: the age file's plaintext is exactly the part barman would store
    const encryptor = recipients ? encryptStream(recipients) : undefined;
    if (codec || encryptor) {
      const compressor = codec?.compressStream(level);
      this.input = (compressor ?? encryptor)!;
      const stages = [compressor, encryptor].filter((x): x is NonNullable<typeof x> => x !== undefined);
      pipeline([...stages, counter], (err) => {
        if (err) onStreamError(err);
      });
    } else {
      this.input = counter;
      counter.on('error', onStreamError);
    }
    const part: ArchivePart = { archive, name: this.name, index, stream: counter };
    this.done = Promise.resolve()
      .then(() => sink(part))
      .then(() => {
        if (!this.ended || !counter.readableEnded) {
          throw new GeneralError(`the sink of ${this.name} returned before consuming the whole part`);
        }
        this.endTime = new Date();
      });
    this.done.catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))));
  }

  /** Input still being compressed (BlockCompressStream), counted towards the part's size. */
  get pendingBytes(): number {
    return this.input instanceof BlockCompressStream ? this.input.pendingBytes : 0;
  }

  stats(): PartStats {
    const end = this.endTime ?? new Date();
    // complete only once the part has ended (close() asks after every sink resolved)
    if (this.digest === undefined && this.output.readableEnded) this.digest = this.hash.digest('hex');
    return {
      name: this.name,
      index: this.index,
      bytes: this.bytes,
      sha256: this.digest ?? '',
      tarBytes: this.tarBytes,
      members: this.members,
      startTime: this.startTime,
      endTime: end,
      seconds: (end.getTime() - this.startTime.getTime()) / 1000,
    };
  }

  destroy(err: Error): void {
    this.input.destroy(err);
    this.output.destroy(err);
  }
}

// ---- the archive writer --------------------------------------------------------------------------

export interface ArchiveWriterOptions {
  /** Archive name: 'data' or the tablespace OID. */
  name: string;
  /** Compression (a registry name or a loaded codec); none when absent. */
  codec?: CodecName | Codec | null;
  /** Compression level; default BACKUP_COMPRESSION_LEVEL, else the codec's default. */
  level?: number;
  /** Start a new part before a member once the current part's compressed size exceeds this. */
  maxArchiveSize: number;
  onPart: PartSink;
  /**
   * Parts whose sink may still be running at once (the part being written included). 1 (default):
   * a part's sink must finish before the next part starts; 2 lets the next part start while the
   * previous one completes its upload.
   */
  partConcurrency?: number;
  signal?: AbortSignal;
  /** Bytes read from a file at once (default READ_CHUNK_SIZE, 1 MiB). */
  readChunkSize?: number;
  /** Records every regular file member (path, size, mtime, CRC-32C of the bytes written). */
  manifest?: BackupManifestBuilder;
  /** age recipients: each part is compressed, then encrypted into one age file named `….age`. */
  recipients?: readonly string[];
}

/** A member built from memory (backup_label). tarfile.TarInfo defaults apply to omitted fields. */
export interface BufferMember {
  type: 'buffer';
  name: string;
  data: Buffer | string;
  /** Default 0o644. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Integer seconds, default 0. */
  mtime?: number;
  uname?: string;
  gname?: string;
  label?: string;
}

/** A file taken from disk (lstat metadata) under a chosen member name: pg_control, config files. */
export interface PathMember {
  type: 'path';
  source: string;
  name: string;
  /** Skip silently when the path does not exist (barman: ident_file). */
  optional?: boolean;
  label?: string;
}

export type ExtraMember = BufferMember | PathMember;

/** `backup_label` as barman appends it after pg_backup_stop (docs/format.md#tar-members step 5). */
export function backupLabelMember(label: string, pgdataGid: number): BufferMember {
  return { type: 'buffer', name: 'backup_label', data: label, mode: 0o644, uid: 0, gid: pgdataGid, mtime: 0, label: 'backup_label' };
}

/** A configuration file outside PGDATA, stored under its basename (docs/format.md#tar-members step 4). */
export function externalConfigMember(path: string, label: string, optional = false): PathMember {
  return { type: 'path', source: path, name: basename(path), optional, label };
}

const ZERO_CHUNK = Buffer.alloc(128 * 1024);
/** File read size: large reads keep the thread-pool round trips per byte low. */
const READ_CHUNK_SIZE = 1 << 20;
/** Bytes a part's streams may hold before the reader waits (bounded memory, but no lock-step). */
const STREAM_BUFFER = 1 << 20;

class ArchiveWriter {
  readonly archive: string;
  readonly suffix: string;
  private readonly codec: Codec | undefined;
  private readonly level: number | undefined;
  private readonly maxArchiveSize: number;
  private readonly sink: PartSink;
  /** The parts' sinks still running; a sink's failure reaches us through fail(), not through here. */
  private readonly sinks: TaskWindow;
  private readonly signal: AbortSignal | undefined;
  private readonly chunkSize: number;
  private readonly manifest: BackupManifestBuilder | undefined;
  private readonly recipients: readonly string[] | undefined;
  private readonly parts: OpenPart[] = [];
  private current: OpenPart | undefined;
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private rejectFailed!: (err: Error) => void;
  private closed = false;
  private readonly startTime = new Date();
  private readonly onAbort = (): void => {
    const reason: unknown = this.signal?.reason;
    this.fail(reason instanceof Error ? reason : new GeneralError('backup aborted'));
  };

  private constructor(options: ArchiveWriterOptions, codec: Codec | undefined) {
    this.archive = options.name;
    this.codec = codec;
    this.recipients = options.recipients;
    this.suffix = tarSuffix(codec?.name) + (options.recipients ? AGE_SUFFIX : '');
    this.level = options.level ?? (codec ? BACKUP_COMPRESSION_LEVEL[codec.name] : undefined);
    this.maxArchiveSize = options.maxArchiveSize;
    this.sink = options.onPart;
    this.sinks = new TaskWindow(Math.max(1, options.partConcurrency ?? 1));
    this.signal = options.signal;
    this.chunkSize = Math.max(BLOCK_SIZE, options.readChunkSize ?? READ_CHUNK_SIZE);
    this.manifest = options.manifest;
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => undefined);
    if (this.signal) {
      if (this.signal.aborted) this.onAbort();
      else this.signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  static async create(options: ArchiveWriterOptions): Promise<ArchiveWriter> {
    const c = options.codec;
    const codec = c == null ? undefined : typeof c === 'string' ? await loadCodec(c) : c;
    return new ArchiveWriter(options, codec);
  }

  /** Name of the first part, e.g. data.tar.gz. */
  get firstPartName(): string {
    return partName(this.archive, 0, this.suffix);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.rejectFailed(err);
    for (const p of this.parts) if (!p.endTime) p.destroy(err);
  }

  private check(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new GeneralError(`archive ${this.archive} is already closed`);
  }

  /**
   * Read buffers for file data, reused when the part's compressor copies its input before its
   * write callback (BlockCompressStream): first-touching fresh memory costs more here than reading
   * (320 MB through fresh 1 MiB Buffers: 0.4–1.0 s; through one reused Buffer: 45 ms, measured).
   * Other parts get fresh Buffers, since their consumers may keep a chunk for any time.
   */
  private readonly readPool: Buffer[] = [];

  private readBuffer(n: number): { buffer: Buffer; release?: () => void } {
    if (!(this.current?.input instanceof BlockCompressStream) || n > this.chunkSize) return { buffer: Buffer.allocUnsafe(n) };
    const buffer = this.readPool.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
    return { buffer: buffer.subarray(0, n), release: () => this.readPool.push(buffer) };
  }

  private async write(buf: Buffer, release?: () => void): Promise<void> {
    if (this.failure) throw this.failure;
    const part = this.current!;
    part.tarBytes += buf.length;
    // what was read, and what compressing it made, dies once the sink has copied it: see reclaim.ts
    bytesMoved(buf.length);
    if (release) {
      // The buffer goes back to the pool once the compressor has copied it (its write callback).
      await Promise.race([
        new Promise<void>((resolve) => part.input.write(buf, () => {
          release();
          resolve();
        })),
        this.failed,
      ]);
      return;
    }
    if (!part.input.write(buf)) {
      await Promise.race([
        new Promise<void>((resolve) => part.input.once('drain', resolve)),
        this.failed,
      ]);
    }
  }

  private async endPart(part: OpenPart): Promise<void> {
    await this.write(tarTrailer(part.tarBytes));
    part.ended = true;
    part.input.end();
  }

  /** barman's _get_tar: open the first part, or rotate when the current one is over the limit. */
  private async ensurePart(): Promise<OpenPart> {
    this.check();
    let part = this.current;
    if (part && part.bytes + part.pendingBytes > this.maxArchiveSize) {
      await this.endPart(part);
      part = undefined;
    }
    if (!part) {
      // Every earlier part has ended here: wait until fewer of their sinks than the limit still run.
      await Promise.race([this.failed, this.sinks.room()]);
      this.check();
      part = new OpenPart(this.archive, this.parts.length, this.suffix, this.codec, this.level, this.sink, (e) =>
        this.fail(e), this.recipients,
      );
      this.parts.push(part);
      const { done } = part;
      this.sinks.start(() => done.catch(() => undefined));
      this.current = part;
    }
    return part;
  }

  private async writeMember(header: TarHeader, part: OpenPart): Promise<void> {
    await this.write(encodeTarHeader(header));
    part.members++;
  }

  private async copyData(fh: FileHandle, size: number, path: string, crc?: Crc32c): Promise<void> {
    // One read ahead: the next chunk is read from disk while this one is compressed and written,
    // so the read latency of the thread pool no longer adds to every chunk.
    const readAt = (position: number, n: number): Promise<{ data: Buffer; release?: () => void }> => {
      const { buffer, release } = this.readBuffer(n);
      return fh.read(buffer, 0, n, position).then(
        ({ bytesRead }) => ({ data: bytesRead === n ? buffer : buffer.subarray(0, bytesRead), release }),
        (err: unknown) => {
          throw sourceError(path, err);
        },
      );
    };
    let position = 0;
    let remaining = size;
    let next: Promise<{ data: Buffer; release?: () => void }> | undefined =
      remaining > 0 ? readAt(0, Math.min(this.chunkSize, remaining)) : undefined;
    next?.catch(() => undefined);
    while (next) {
      const { data: buf, release } = await next;
      next = undefined;
      if (this.failure) throw this.failure;
      if (buf.length === 0) {
        release?.();
        break; // the file shrank: zero padding below
      }
      position += buf.length;
      remaining -= buf.length;
      if (remaining > 0) {
        next = readAt(position, Math.min(this.chunkSize, remaining));
        next.catch(() => undefined);
      }
      crc?.update(buf);
      await this.write(buf, release);
    }
    if (remaining > 0) log.debug(`${path} shrank while being read: padding ${remaining} bytes with zeros`);
    while (remaining > 0) {
      const n = Math.min(ZERO_CHUNK.length, remaining);
      const zeros = n === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n);
      crc?.update(zeros);
      await this.write(zeros);
      remaining -= n;
    }
    const tail = size % BLOCK_SIZE;
    if (tail > 0) await this.write(ZERO_CHUNK.subarray(0, BLOCK_SIZE - tail));
  }

  /**
   * Add one filesystem entry (not recursive) like tarfile.add(path, arcname): lstat metadata,
   * symlinks stored as symlinks, regular files streamed. Returns false when the entry is not stored:
   * it vanished (ENOENT, when `skipVanished`) or is a socket.
   */
  async addPath(path: string, memberName: string, options: { skipVanished?: boolean } = {}): Promise<boolean> {
    const skipVanished = options.skipVanished ?? true;
    const part = await this.ensurePart();
    let st: BigIntStats;
    try {
      st = await lstat(path, { bigint: true });
    } catch (err) {
      if (skipVanished && errnoCode(err) === 'ENOENT') return false;
      throw sourceError(path, err);
    }
    const header: TarHeader = {
      name: memberName.replace(/^\/+/, ''),
      type: TarType.FILE,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      mtime: pythonMtime(st.mtimeNs),
      mtimeIsFloat: true,
      linkname: '',
      uname: userName(Number(st.uid)),
      gname: groupName(Number(st.gid)),
    };
    if (st.isFile()) {
      const inode = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? part.inodes.get(inode) : undefined;
      if (first !== undefined && first !== header.name) {
        header.type = TarType.HARDLINK;
        header.linkname = first;
        await this.writeMember(header, part);
        // the restore links it to the first name: the same content under a second path
        this.manifest?.addLink(this.manifestPathOf(header.name), this.manifestPathOf(first));
        return true;
      }
      let fh: FileHandle;
      try {
        // Not through a symbolic link, not waiting on a FIFO: what lstat saw may have been replaced
        // since (docs/format.md#backup-open); a link's target may lie outside the data directory.
        fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
      } catch (err) {
        if (skipVanished && errnoCode(err) === 'ENOENT') return false;
        if (errnoCode(err) !== 'ELOOP') throw sourceError(path, err);
        return replaced(path, 'a symbolic link', skipVanished);
      }
      try {
        if (!(await fh.stat()).isFile()) return replaced(path, 'something other than a regular file', skipVanished);
        // only multiply-linked files can be met again: keeps the table small
        if (st.nlink > 1n && st.ino !== 0n) part.inodes.set(inode, header.name);
        header.size = Number(st.size);
        await this.writeMember(header, part);
        const crc = this.manifest ? new Crc32c() : undefined;
        await this.copyData(fh, header.size, path, crc);
        if (crc) this.manifest!.addFile(this.manifestPathOf(header.name), header.size, Math.floor(header.mtime), crc.value);
      } finally {
        await fh.close().catch(() => undefined);
      }
      return true;
    }
    if (st.isDirectory()) {
      header.type = TarType.DIRECTORY;
    } else if (st.isSymbolicLink()) {
      header.type = TarType.SYMLINK;
      try {
        const target = await readlink(path, { encoding: 'buffer' });
        if (!isUtf8(target)) throw undecodableName(`the symbolic link '${path}' (its target)`, target);
        header.linkname = target.toString('utf8');
      } catch (err) {
        if (err instanceof ArchiveSourceError) throw err;
        if (skipVanished && errnoCode(err) === 'ENOENT') return false;
        throw sourceError(path, err);
      }
    } else if (st.isFIFO()) {
      header.type = TarType.FIFO;
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      header.type = st.isCharacterDevice() ? TarType.CHAR : TarType.BLOCK;
      header.devmajor = devMajor(st.rdev);
      header.devminor = devMinor(st.rdev);
    } else {
      log.debug(`tarfile: Unsupported type ${path}`);
      return false; // sockets
    }
    await this.writeMember(header, part);
    return true;
  }

  /** Add a member built from memory (tarfile.addfile with a fresh TarInfo). */
  async addBuffer(member: Omit<BufferMember, 'type'>): Promise<void> {
    const part = await this.ensurePart();
    const data = typeof member.data === 'string' ? Buffer.from(member.data, 'utf8') : member.data;
    await this.writeMember(
      {
        name: member.name,
        type: TarType.FILE,
        mode: member.mode ?? 0o644,
        uid: member.uid ?? 0,
        gid: member.gid ?? 0,
        size: data.length,
        mtime: member.mtime ?? 0,
        uname: member.uname ?? '',
        gname: member.gname ?? '',
      },
      part,
    );
    for (let off = 0; off < data.length; off += this.chunkSize) {
      await this.write(data.subarray(off, Math.min(data.length, off + this.chunkSize)));
    }
    const tail = data.length % BLOCK_SIZE;
    if (tail > 0) await this.write(ZERO_CHUNK.subarray(0, BLOCK_SIZE - tail));
    if (this.manifest) {
      const crc = new Crc32c();
      crc.update(data);
      this.manifest.addFile(this.manifestPathOf(member.name), data.length, member.mtime ?? 0, crc.value);
    }
  }

  private manifestPathOf(memberName: string): string {
    return manifestPath(this.archive, memberName);
  }

  /**
   * Write PostgreSQL's backup_manifest of everything recorded so far as the last member (it does
   * not list itself). The data archive calls this once backup_label is in.
   */
  async addManifest(walRanges: readonly WalRange[], owner: { uid: number; gid: number }): Promise<void> {
    if (!this.manifest) throw new GeneralError('no manifest is being recorded');
    const manifest = this.manifest.render(walRanges);
    log.info(`Uploading '${BACKUP_MANIFEST_NAME}' file to '${this.firstPartName}' with path '${BACKUP_MANIFEST_NAME}'`);
    const part = await this.ensurePart();
    await this.writeMember(
      {
        name: BACKUP_MANIFEST_NAME,
        type: TarType.FILE,
        mode: 0o600,
        uid: owner.uid,
        gid: owner.gid,
        size: manifest.byteLength,
        mtime: Math.floor(Date.now() / 1000),
        uname: userName(owner.uid),
        gname: groupName(owner.gid),
      },
      part,
    );
    // made piece by piece as the part takes them: the whole text of 100,000 files is ~15 MB
    for (const chunk of manifest.chunks) await this.write(chunk);
    const tail = manifest.byteLength % BLOCK_SIZE;
    if (tail > 0) await this.write(ZERO_CHUNK.subarray(0, BLOCK_SIZE - tail));
  }

  /** Add an extra member (after the walk): pg_control, configuration files, backup_label. */
  async addExtra(member: ExtraMember): Promise<void> {
    const label = member.label ?? member.name;
    if (member.type === 'buffer') {
      log.info(`Uploading '${label}' file to '${this.firstPartName}' with path '${member.name}'`);
      await this.addBuffer(member);
      return;
    }
    if (member.optional) {
      try {
        await stat(member.source);
      } catch {
        return; // os.path.exists() is false
      }
    }
    log.info(`Uploading '${label}' file from '${member.source}' to '${this.firstPartName}' with path '${member.name}'`);
    await this.addPath(member.source, member.name, { skipVanished: false });
  }

  /**
   * Walk `root` top-down like barman's upload_directory over os.walk: each directory as its own
   * member followed by the files directly inside it, then its sub-directories; symlinks to
   * directories are neither stored nor followed; entries that vanish are skipped.
   */
  async addTree(root: string, filter: PathFilter): Promise<void> {
    await this.walk(root, '.', filter);
  }

  private async walk(dir: string, member: string, filter: PathFilter): Promise<void> {
    this.check();
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // vanished
      throw sourceError(dir, err);
    }
    if (entries.some((e) => e.name.includes('\uFFFD'))) {
      const raw = await readdir(dir, { encoding: 'buffer' }).catch((err: unknown) => {
        throw sourceError(dir, err);
      });
      const bad = raw.find((n) => !isUtf8(n));
      if (bad) throw undecodableName(`an entry of '${dir}' (its name; rename it or move it out)`, bad);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const dirs: string[] = [];
    const files: string[] = [];
    for (const e of entries) {
      if (e.isDirectory()) {
        dirs.push(e.name);
      } else if (e.isSymbolicLink()) {
        // os.walk lists a symlink to a directory with the directories, then does not follow it
        let toDir = false;
        try {
          toDir = (await stat(join(dir, e.name))).isDirectory();
        } catch {
          toDir = false;
        }
        if (!toDir) files.push(e.name);
      } else {
        files.push(e.name);
      }
    }
    const decision = filter.decide(member, true);
    if (decision.include) {
      if (await this.addPath(dir, member)) {
        log.debug(`Uploading ${member}`);
        for (const name of files) {
          const fileMember = childMemberName(member, name, false);
          if (!filter.decide(fileMember, false).include) continue;
          log.debug(`Uploading ${fileMember}`);
          await this.addPath(join(dir, name), fileMember);
        }
      } else {
        return; // the directory vanished
      }
    }
    if (!decision.descend) return;
    for (const name of dirs) {
      await this.walk(join(dir, name), childMemberName(member, name, true), filter);
    }
  }

  /** End the last part, wait for every sink, and report sizes and durations. */
  async close(): Promise<ArchiveResult> {
    this.check();
    try {
      if (this.current && !this.current.ended) await this.endPart(this.current);
      this.closed = true;
      await Promise.race([this.failed, this.sinks.drain()]);
      if (this.failure) throw this.failure;
    } finally {
      this.closed = true;
      this.signal?.removeEventListener('abort', this.onAbort);
    }
    const parts = this.parts.map((p) => p.stats());
    return {
      archive: this.archive,
      parts,
      bytes: parts.reduce((a, p) => a + p.bytes, 0),
      tarBytes: parts.reduce((a, p) => a + p.tarBytes, 0),
      members: parts.reduce((a, p) => a + p.members, 0),
      startTime: parts[0]?.startTime ?? this.startTime,
      endTime: parts.reduce((a, p) => (p.endTime > a ? p.endTime : a), parts[0]?.endTime ?? new Date()),
    };
  }

  /** Stop: destroy the open part streams (the sinks see an error) and wait for the sinks to settle. */
  async abort(reason?: Error): Promise<void> {
    this.fail(reason ?? new GeneralError(`archive ${this.archive} aborted`));
    this.closed = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    await this.sinks.drain();
  }
}

// ---- high level ----------------------------------------------------------------------------------

export interface ProduceArchiveOptions extends Omit<ArchiveWriterOptions, 'name'> {
  /** PGDATA (a symlink is resolved first) or the tablespace location. */
  root: string;
  kind: RootKind;
  /** 'data' or the tablespace OID. */
  name: string;
  /** Exclusion rules input (docs/format.md#tar-members): major version, tablespaces, PGDATA as reported by PostgreSQL. */
  exclusion: Omit<ExclusionOptions, 'kind'>;
  /** PGDATA only: append `global/pg_control` after the walk (default true for 'pgdata'). */
  pgControl?: boolean;
  /** Appended after the walk (and pg_control): e.g. configuration files outside PGDATA. */
  extraMembers?: readonly ExtraMember[];
  /** Called after extraMembers, before closing: e.g. backup_label once pg_backup_stop returned. */
  lateMembers?: () => Promise<readonly ExtraMember[]> | readonly ExtraMember[];
  /**
   * With `manifest`, write backup_manifest as the very last member: its WAL range (known once the
   * late members are in) and the owner of its member.
   */
  manifestMember?: { walRanges: () => readonly WalRange[]; uid: number; gid: number };
  /** Log label (barman: 'pgdata' or the tablespace name). */
  label?: string;
}

/** Produce one archive (all its parts): walk, pg_control, extra members, late members, close. */
export async function produceArchive(options: ProduceArchiveOptions): Promise<ArchiveResult> {
  let root = options.root;
  let rootStat;
  try {
    rootStat = await lstat(root);
    if (options.kind === 'pgdata' && rootStat.isSymbolicLink()) {
      root = await realpath(root);
    }
    rootStat = await stat(root);
  } catch (err) {
    throw sourceError(root, err);
  }
  if (!rootStat.isDirectory()) throw new ArchiveSourceError(`'${root}' is not a directory`);
  const filter = createPathFilter({ ...options.exclusion, kind: options.kind });
  const writer = await ArchiveWriter.create({ ...options, name: options.name });
  try {
    const label = options.label ?? (options.kind === 'pgdata' ? 'pgdata' : options.name);
    log.info(`Uploading '${label}' directory '${root}' as '${writer.firstPartName}'`);
    await writer.addTree(root, filter);
    if (options.kind === 'pgdata' && options.pgControl !== false) {
      await writer.addExtra({
        type: 'path',
        source: join(root, 'global', 'pg_control'),
        name: 'global/pg_control',
        label: 'pg_control',
      });
    }
    for (const m of options.extraMembers ?? []) await writer.addExtra(m);
    if (options.lateMembers) {
      for (const m of await options.lateMembers()) await writer.addExtra(m);
    }
    if (options.manifestMember) {
      await writer.addManifest(options.manifestMember.walRanges(), options.manifestMember);
    }
    return await writer.close();
  } catch (err) {
    await writer.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
}

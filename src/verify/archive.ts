// Reading one stored part for `verify`: its bytes are hashed (SHA-256) and counted as they arrive,
// decompressed by suffix and parsed as a tar to the end, and every member's content gets a CRC-32C
// — the way restore reads it, but nothing is written. Memory stays bounded: streams with
// back-pressure, one pass.
import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32c } from '@node-rs/crc32';
import tarStream, { type Header } from 'tar-stream';
import { TarEndTap } from '../backup/tar-end.js';
import { CompressionFormatError, type Codec } from '../compression/index.js';
import { EncryptedDataError, EncryptionKeyError, NetworkError, NotFoundError, StorageError } from '../errors.js';
import type { ObjectStore } from '../storage/types.js';

/** One tar member as read: its name in the archive, its type, and for regular files size + CRC-32C. */
export interface MemberRecord {
  name: string;
  type: string;
  size: number;
  /** CRC-32C of the content (regular files only). */
  crc32c?: number;
  /** The target of a symbolic or hard link. */
  linkname?: string;
}

export interface PartReadResult {
  /** Bytes of the stored object read. */
  bytes: number;
  sha256: string;
  /** Bytes of tar after decompression. */
  tarBytes: number;
  members: number;
  /** Why the part could not be decompressed or parsed (undefined: it parsed to its end). */
  unreadable?: string;
  /** The object disappeared between the listing and the read. */
  missing?: boolean;
}

/** Counts and hashes the stored bytes as they pass (the object as written, before decompression). */
class HashTap extends Transform {
  bytes = 0;
  constructor(readonly hash: Hash, private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Reads one part to its end. Store failures other than a vanished object are thrown (the caller's
 * exit code decides); a part that cannot be decompressed or parsed is reported in the result, and
 * its SHA-256 is still completed by reading the rest of the object, so a damaged part is named by
 * both findings.
 */
export async function readPart(
  store: ObjectStore, key: string, size: number, codec: Codec | undefined, onMember: (m: MemberRecord, content?: Buffer) => void,
  options: {
    /** How many bytes of a regular file's content to hand to onMember, at most (0 or undefined: none). */
    keepContent?: (name: string) => number | undefined; onBytes?: (n: number) => void; signal?: AbortSignal;
    /** Where a regular file's content goes as it is read, whole and never held (undefined: nowhere). */
    streamContent?: (name: string) => ((chunk: Buffer) => void) | undefined;
    /** For an encrypted part: the decrypting stage, between the stored bytes and the codec. */
    decrypt?: () => NodeJS.ReadWriteStream;
  } = {},
): Promise<PartReadResult> {
  const hash = createHash('sha256');
  const tap = new HashTap(hash, options.onBytes);
  const tail = new TarEndTap();
  let members = 0;
  let source: Readable;
  try {
    source = await store.get(key, { signal: options.signal });
  } catch (e) {
    if (e instanceof NotFoundError) return { bytes: 0, sha256: hash.digest('hex'), tarBytes: 0, members: 0, missing: true };
    throw e;
  }
  // A failure of the download itself says nothing about the part: it is thrown, not reported. The
  // first stage to fail is the origin (the pipeline then destroys the source with that same error).
  let origin: 'source' | 'codec' | 'tar' | undefined;
  source.on('error', () => (origin ??= 'source'));
  const extract = tarStream.extract();
  let memberError: Error | undefined;
  extract.on('entry', (header: Header, stream, next) => {
    members++;
    const refused = tail.refuseLate(header, stream, next, memberError);
    if (refused) {
      memberError = refused;
      return;
    }
    const type = header.type ?? 'file';
    if (type !== 'file' && type !== 'contiguous-file') {
      onMember({ name: header.name, type, size: header.size ?? 0, ...(type === 'link' || type === 'symlink' ? { linkname: header.linkname ?? '' } : {}) });
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    let crc = 0;
    let length = 0;
    const limit = options.keepContent?.(header.name) ?? 0;
    const keep = limit > 0 ? [] as Buffer[] : undefined;
    const sink = options.streamContent?.(header.name);
    stream.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      crc = crc32c(chunk, crc);
      sink?.(chunk);
      // only what the caller compares stays in memory: memory does not grow with a member
      if (keep && length < limit) keep.push(chunk.subarray(0, limit - length));
      length += chunk.length;
    });
    stream.on('error', (e: Error) => (memberError ??= e));
    stream.on('end', () => {
      onMember({ name: header.name, type, size: length, crc32c: crc }, keep ? Buffer.concat(keep) : undefined);
      next();
    });
  });
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream)[] = [source, tap];
  // Which stage failed first decides the message: a codec error (zlib's own included) or a tar one.
  if (options.decrypt) stages.push(options.decrypt().on('error', () => (origin ??= 'codec')));
  if (codec) stages.push(codec.decompressStream().on('error', () => (origin ??= 'codec')));
  stages.push(tail, extract as unknown as Writable);
  for (const stage of [tap, tail, extract]) (stage as NodeJS.EventEmitter).on('error', () => (origin ??= 'tar'));
  let unreadable: string | undefined;
  try {
    await (pipeline as (...args: unknown[]) => Promise<void>)(...stages, options.signal ? { signal: options.signal } : {});
    if (memberError) unreadable = memberError.message;
    else unreadable = tail.unended();
  } catch (e) {
    if (options.signal?.aborted) throw e;
    // The store's own failures are not findings about the part (except a vanished object).
    if (e instanceof NotFoundError) return { bytes: tap.bytes, sha256: '', tarBytes: tail.bytes, members, missing: true };
    if (e instanceof StorageError || e instanceof EncryptionKeyError) throw e;
    if (origin === 'source') throw new NetworkError(`reading ${key}: ${message(e)}`, { cause: e });
    unreadable = e instanceof EncryptedDataError
      ? `cannot be decrypted: ${message(e)}`
      : origin === 'codec' || e instanceof CompressionFormatError
      ? `cannot be decompressed (${codec?.name}): ${message(e)}`
      : `not a readable tar: ${message(memberError ?? e)}`;
    await drainRest(store, key, size, tap, options.signal);
  }
  return { bytes: tap.bytes, sha256: hash.digest('hex'), tarBytes: tail.bytes, members, unreadable };
}

/** Hashes the bytes of `key` after those the tap already saw (the pipeline stopped early). */
async function drainRest(store: ObjectStore, key: string, size: number, tap: HashTap, signal?: AbortSignal): Promise<void> {
  if (tap.bytes >= size) return;
  let rest: Readable;
  try {
    rest = await store.get(key, { start: tap.bytes, signal });
  } catch (e) {
    if (e instanceof NotFoundError) return;
    throw e;
  }
  for await (const chunk of rest as AsyncIterable<Buffer>) {
    tap.hash.update(chunk);
    tap.bytes += chunk.length;
  }
}

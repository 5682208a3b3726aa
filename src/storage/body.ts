// A request body that is read in chunks, as often as needed (a hash pass before the upload, a retry),
// without holding it whole in memory. A WAL segment is sent this way: each chunk is read into one
// reused buffer, because first-touching fresh memory is what a 16 MiB Buffer costs most here
// (~100 ms to read a segment into a new Buffer and hash it, ~16 ms through a reused 256 KiB one).
import { createHash } from 'node:crypto';
import { ObjectTooLargeError, StorageError } from '../errors.js';

export interface ChunkedBody {
  readonly kind: 'chunked';
  /** Total length in bytes. */
  readonly length: number;
  /** Hex SHA-256 of the whole body, computed on first use (S3 signs it: the server refuses a body that differs). */
  readonly sha256: string;
  /**
   * The body from its first byte. A chunk is valid only until the next one is asked for: a
   * consumer that keeps it longer (a queued socket write) must wait before asking again.
   */
  chunks(): Iterable<Buffer>;
  /**
   * Each pass computes the chunks anew at a real cost (a cipher): a consumer should not make a
   * pass of its own before sending (the lean S3 client then signs it chunk by chunk as it goes).
   */
  readonly costlyPasses?: boolean;
  /**
   * Where a commit gate holds the body back: the offset of the first byte sent only once the gate
   * opens. The last byte when absent; a framed body (aws-chunked) names its last data byte, as a
   * server may store the object once it has every data byte, without the framing after them.
   */
  readonly gateAt?: number;
}

export type PutBody = Buffer | import('node:stream').Readable | ChunkedBody;

export function isChunkedBody(body: unknown): body is ChunkedBody {
  return typeof body === 'object' && body !== null && (body as { kind?: unknown }).kind === 'chunked';
}

/** Hex SHA-256 of data given in pieces (a body's chunks, or `[buffer]`). */
export function sha256Hex(pieces: Iterable<Buffer>): string {
  const h = createHash('sha256');
  for (const p of pieces) h.update(p);
  return h.digest('hex');
}

/**
 * The chunks of a body, checked against its declared length once they are all read: a consumer
 * never sends or stores a body that changed while it was read.
 */
export function* exactChunks(body: ChunkedBody): Generator<Buffer> {
  let read = 0;
  for (const chunk of body.chunks()) {
    read += chunk.length;
    yield chunk;
  }
  if (read !== body.length) throw new StorageError(`the body changed while it was read: ${read} bytes instead of ${body.length}`);
}

/** The whole body in one Buffer, for drivers that upload a Buffer (a copy of every chunk). */
export function chunkedToBuffer(body: ChunkedBody): Buffer {
  const out = Buffer.allocUnsafe(body.length);
  let at = 0;
  for (const chunk of exactChunks(body)) at += chunk.copy(out, at);
  return out;
}

/** A body made of Buffers that stay valid (compressed pieces); its SHA-256 computed on first use. */
export function piecesBody(pieces: Buffer[]): ChunkedBody {
  let digest: string | undefined;
  return {
    kind: 'chunked',
    length: pieces.reduce((n, p) => n + p.length, 0),
    get sha256() {
      return (digest ??= sha256Hex(pieces));
    },
    chunks: () => pieces,
  };
}

/**
 * A whole object read from its stream into one Buffer: what every driver's getBuffer() falls back
 * on. With `limit`, more than `maxBytes` is refused (ObjectTooLargeError) as soon as it arrives;
 * leaving the loop destroys the stream, so the rest is never read.
 */
export async function readWhole(stream: AsyncIterable<unknown>, limit?: { key: string; maxBytes?: number }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const max = limit?.maxBytes ?? Infinity;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > max) throw new ObjectTooLargeError(limit!.key, max);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

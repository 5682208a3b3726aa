// A stream of unknown length into S3, shared by both clients: the SDK driver (s3.ts) and the lean
// SigV4 client (s3-lean.ts) give the requests, this module the part buffers and their bound. A
// backup with static or container credentials thus never loads the SDK, which cost ~10 MB of its
// peak RSS (issue 14: a file-store lz4 backup at pgbench scale 100 peaked at 85-88 MB, with the SDK
// loaded beside it 96-98 MB).
import type { Readable } from 'node:stream';
import { StorageError } from '../../errors.js';
import { TaskWindow } from '../../concurrency.js';
import type { PutOptions } from '../types.js';

const MIB = 1024 * 1024;
/** S3's smallest part (all parts but the last). */
const MIN_PART_SIZE = 5 * MIB;
const DEFAULT_PART_SIZE = 8 * MIB;
const DEFAULT_QUEUE_SIZE = 4;
/** Parts of a multipart upload sent at a quarter of the part size (see uploadStream). */
const RAMP_PARTS = 2000;

export interface CompletedPart {
  PartNumber: number;
  ETag: string;
}

/** The requests of one upload, key and headers bound by the client. */
export interface MultipartCalls {
  /** PutObject of a whole body that ended within the first part. */
  putObject(body: Buffer): Promise<void>;
  /**
   * CreateMultipartUpload: the upload id. Never sent with the caller's abort signal: the store may
   * create the upload before an abort reaches us, and an upload whose id we never read cannot be
   * aborted; uploadStream waits for the id and aborts the upload itself.
   */
  create(): Promise<string>;
  /** UploadPart: the part's ETag. `body` stays unchanged until this settles, and is reused afterwards. */
  uploadPart(uploadId: string, partNumber: number, body: Buffer): Promise<string>;
  complete(uploadId: string, parts: CompletedPart[]): Promise<void>;
  /** AbortMultipartUpload; a failure to abort is the client's to report, never thrown. */
  abort(uploadId: string): Promise<void>;
}

export function abortErrorOf(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
}

/**
 * One PutObject when the stream ends within the first part, else a multipart upload with up to
 * `concurrency` parts in flight. Parts are filled into buffers reused from part to part, and the
 * buffers held at once (in flight plus the one filling) stay within a byte budget of concurrency
 * + 1 first-size parts, so memory does not grow with the object (a copying uploader such as
 * lib-storage holds about twice as much). The first RAMP_PARTS parts are a quarter of `partSize`,
 * at least S3's minimum (parts need not be equal): with barman's default 100 GiB archive limit
 * that is 5.4 MB instead of 21.5 MB, and 10,000 parts still hold 1.7 times the limit
 * (docs/format.md#tar-parts). Larger parts later on mean fewer in flight, never more bytes than
 * the budget or two parts.
 *
 * On any failure, of the source, a part, the completion or the caller's abort signal, the
 * in-flight parts are awaited and the multipart upload is aborted before we return; the error
 * given back is the cause: the source's own error when the source failed, else `mapError`'s.
 */
export async function uploadStream(body: Readable, options: PutOptions, calls: MultipartCalls, mapError: (err: unknown) => Error): Promise<void> {
  const partSize = Math.max(Math.floor(options.partSize ?? DEFAULT_PART_SIZE), MIN_PART_SIZE);
  const queueSize = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_QUEUE_SIZE));
  const { signal } = options;
  let sourceError: unknown;
  const onSourceError = (err: unknown) => {
    // Leaving the read loop early (a part failed) makes Node destroy the body with its own
    // AbortError (ABORT_ERR): that is not the source failing; the part's error is the cause.
    if ((err as NodeJS.ErrnoException | undefined)?.code === 'ABORT_ERR' && !signal?.aborted) return;
    sourceError ??= err;
  };
  const onAbort = () => {
    if (signal && !body.destroyed) body.destroy(abortErrorOf(signal));
  };
  body.on('error', onSourceError);
  signal?.addEventListener('abort', onAbort, { once: true });

  const spare: Buffer[] = [];
  const sizeOf = (n: number) => (n <= RAMP_PARTS ? Math.min(partSize, Math.max(MIN_PART_SIZE, Math.floor(partSize / 4))) : partSize);
  // The parts in flight, their buffers' bytes counted against the budget.
  const inFlight = new TaskWindow(queueSize, (queueSize + 1) * sizeOf(1));
  const parts: CompletedPart[] = [];
  let uploadId: string | undefined;
  let created: Promise<string> | undefined;
  const create = () => (created ??= calls.create().then((id) => (uploadId = id)));
  const uploadPart = (buffer: Buffer, length: number, partNumber: number) =>
    inFlight.start(async () => {
      try {
        const id = await create();
        parts[partNumber - 1] = { PartNumber: partNumber, ETag: await calls.uploadPart(id, partNumber, buffer.subarray(0, length)) };
      } finally {
        spare.push(buffer);
      }
    }, { cost: buffer.length });

  const nextBuffer = (n: number): Buffer => {
    const size = sizeOf(n);
    let b = spare.pop();
    while (b && b.length !== size) b = spare.pop();
    return b ?? (Buffer.allocUnsafe(size) as Buffer);
  };
  let current: Buffer = nextBuffer(1);
  let filled = 0;
  let partNumber = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      let input = chunk;
      while (input.length > 0) {
        const n = input.copy(current, filled);
        filled += n;
        input = input.subarray(n);
        if (filled < current.length) continue;
        // This part in flight and the next one filling must fit the budget (one part at least).
        await inFlight.room(current.length + sizeOf(partNumber + 2));
        uploadPart(current, filled, ++partNumber);
        current = nextBuffer(partNumber + 1);
        filled = 0;
      }
      inFlight.check();
    }
    if (sourceError !== undefined) throw sourceError;
    if (partNumber === 0) {
      await calls.putObject(current.subarray(0, filled));
      return;
    }
    if (filled > 0) uploadPart(current, filled, ++partNumber);
    await inFlight.drain();
    if (uploadId === undefined) throw new StorageError('S3 create-multipart-upload gave no upload id');
    await calls.complete(uploadId, parts);
    uploadId = undefined;
  } catch (err) {
    await inFlight.drain().catch(() => undefined);
    await created?.catch(() => undefined);
    if (uploadId) await calls.abort(uploadId);
    if (!body.destroyed) body.destroy();
    // The source failing (or the caller aborting) is not a storage error: give it back as it is.
    if (sourceError !== undefined) throw sourceError;
    if (signal?.aborted) throw abortErrorOf(signal);
    throw mapError(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    body.off('error', onSourceError);
  }
}

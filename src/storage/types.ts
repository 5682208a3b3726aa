// The object-store abstraction. It knows nothing of barman: keys are plain strings relative to the
// bucket/container root (or to the root directory for the file store).
import type { Readable } from 'node:stream';
import type { ChunkedBody, PutBody } from './body.js';
import type { ProviderName } from './registry.js';

export type { ProviderName };

/** One stored object, as a listing or a HEAD reports it. */
export interface ObjectInfo {
  key: string;
  size: number;
  lastModified?: Date;
}

/** One entry of a listing: an object, or (with a delimiter) a common prefix ending with the delimiter. */
export type ListEntry =
  | ({ kind: 'object' } & ObjectInfo)
  | { kind: 'prefix'; prefix: string };

export interface ListOptions {
  /** Group keys on this delimiter (normally '/'): keys below a deeper level come back once as a prefix. */
  delimiter?: string;
  /** Page size asked of the provider (tests use it to force pagination). */
  pageSize?: number;
}

/** An object tag / metadata pair, order kept (barman sends them in the order given, docs/format.md#tags). */
export type Tag = [key: string, value: string];

export interface PutOptions {
  /** Tags (S3 object tags, Azure blob index tags, GCS custom metadata). */
  tags?: Tag[];
  /** Length of the body when known; a Buffer body knows its own. */
  contentLength?: number;
  /** Part / block / chunk size for a multipart upload of a stream. */
  partSize?: number;
  /** Parts uploaded at once for one object. */
  concurrency?: number;
  /** Azure: a body up to this size goes in one Put Blob (--max-single-put-size). */
  singlePutMax?: number;
  /** Refuse to overwrite: fail with PreconditionFailedError when the key exists. */
  ifNoneMatch?: boolean;
  /**
   * Only for stores with `holdsCommit`, and a ChunkedBody: the body's last byte is sent once this
   * settles. Until then the server cannot create the object; when it rejects, the upload is
   * abandoned (an S3 PUT with an incomplete body creates nothing) and put() rejects with its error.
   * Lets a check that must come before the create run while the bytes travel.
   */
  commitGate?: Promise<void>;
  signal?: AbortSignal;
}

export interface GetOptions {
  /** First byte, inclusive. */
  start?: number;
  /** Last byte, inclusive. */
  end?: number;
  signal?: AbortSignal;
  /**
   * getBuffer() only: an object larger than this is refused (ObjectTooLargeError) without more
   * than this much of it read into memory (docs/format.md#metadata-limits).
   */
  maxBytes?: number;
  /**
   * Size of the pieces a stream is handed on in, where the driver chooses it (lean S3 client, file
   * store): larger pieces cost less CPU per byte, smaller ones less memory. A hint; others ignore it.
   */
  pieceSize?: number;
}

export interface DeleteResult {
  deleted: string[];
  /** Keys that could not be deleted, with the provider's reason. */
  errors: { key: string; message: string }[];
}

/** The Object Lock state of one object: a retention date, a legal hold (docs/format.md#backup-delete). */
export interface ObjectLockState {
  retainUntil?: Date;
  legalHold: boolean;
}

/** What a connectivity test found (docs/format.md#connectivity-test). Unreachable endpoints throw a NetworkError instead. */
export type ConnectivityResult = 'ok' | 'bucket-missing';

/** An S3 multipart upload begun and never completed nor aborted. */
export interface IncompleteUpload {
  key: string;
  uploadId: string;
  initiated?: Date;
}

export interface ObjectStore {
  readonly provider: ProviderName;
  /** Whether put() honours PutOptions.commitGate (others must be called after the check instead). */
  readonly holdsCommit?: boolean;
  /**
   * Work put() will need for this body, done now: a caller calls it while other requests travel
   * (the lean S3 client's SHA-256 of a body it signs whole).
   */
  prepareBody?(body: ChunkedBody): void;
  /** Bucket / container name, or the root directory for the file store. */
  readonly bucket: string;
  /** Largest batch one bulk delete request takes (S3 1000, Azure 256, GCS 100; docs/format.md#provider-limits). */
  readonly maxDeleteBatch: number;

  /** HEAD-style probe of the bucket; throws NetworkError when the endpoint cannot be reached. */
  testConnectivity(): Promise<ConnectivityResult>;
  bucketExists(): Promise<boolean>;
  /** Create the bucket/container; succeeds if it already exists. */
  createBucket(): Promise<void>;

  /** Size and date of an object, or null when it does not exist. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Stream an object (optionally a byte range). Throws NotFoundError when missing. */
  get(key: string, options?: GetOptions): Promise<Readable>;
  /** Read a whole (small) object into memory. Throws NotFoundError when missing. */
  getBuffer(key: string, options?: GetOptions): Promise<Buffer>;
  /**
   * Store an object. A Buffer is sent in one request when small enough; a Readable of unknown length
   * is streamed with bounded memory (multipart / staged blocks / resumable) and an incomplete upload is
   * aborted when the stream or a request fails. A ChunkedBody (storage/body.ts) is read in chunks:
   * the lean S3 client sends it as it reads it, the other drivers take it whole.
   */
  put(key: string, body: PutBody, options?: PutOptions): Promise<void>;
  /** Every object (and prefix, with a delimiter) whose key starts with `prefix`, in key order, over all pages. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ListEntry>;
  /** Delete one object; a missing object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Delete many objects in batches of at most `batchSize` (default and ceiling: maxDeleteBatch).
   * Missing objects count as deleted. Falls back to one request per object where a store refuses the
   * bulk request (docs/format.md#credentials).
   */
  deleteMany(keys: string[], batchSize?: number): Promise<DeleteResult>;
  /** Tags / custom metadata of an object. Throws NotFoundError when missing. */
  getTags(key: string): Promise<Tag[]>;
  /**
   * Only stores with object immutability (S3 Object Lock): an object's lock state, so that a deletion
   * can refuse a locked backup before it removes any of its files. Absent elsewhere.
   */
  objectLock?(key: string): Promise<ObjectLockState>;
  /**
   * Only stores whose unfinished multipart uploads keep their parts, billed, until aborted (S3):
   * the uploads under `prefix` (backup-delete ends those of the backups it deletes), and their
   * abort, whose failure the store reports as a warning and never throws.
   */
  incompleteUploads?(prefix: string): AsyncIterable<IncompleteUpload>;
  abortIncompleteUpload?(upload: IncompleteUpload): Promise<void>;
  /** Release sockets and timers. */
  close(): Promise<void>;
}

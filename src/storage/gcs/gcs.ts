// Google Cloud Storage driver on @google-cloud/storage 7.x (loaded only through openObjectStore's
// dynamic import). Barman stores tags as custom object metadata on GCS (docs/format.md#tags), encrypts with a
// CMEK key name on every upload (docs/format.md#encryption) and deletes at most 100 objects per batch (docs/format.md#provider-limits).
//
// Client facts this file relies on (read in the 7.22 sources):
// - JSON requests, downloads and simple uploads go through teeny-request (node-fetch 2) on a
//   process-wide keep-alive agent; resumable sessions are opened through gaxios, which takes
//   `customRequestOptions` from request interceptors. There is no batch API: Bucket#deleteFiles
//   deletes one object per request.
// - Its multi-chunk upload loop is not used (see put()): chunks are sent by uploadChunks() below.
// - `retryOptions.maxRetries: 0` is silently replaced by the default 3; `autoRetry: false` is the way
//   to say "one attempt". When retry-request runs out of `totalTimeout` it never calls back (a hang),
//   so totalTimeout is kept out of the way and the attempts × per-request timeouts bound the time.
// - node-fetch's `timeout` only covers the time to response headers, so a download that stalls
//   mid-body is caught by our own idle watchdog.
import { subscribe } from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32c } from '@node-rs/crc32';
import { IdempotencyStrategy, Storage } from '@google-cloud/storage';
import type { Bucket, CRC32CValidator, File, FileMetadata, StorageOptions } from '@google-cloud/storage';
import type { RetryPolicy } from '../config.js';
import type { GcsStoreConfig } from './config.js';
import { pauseBeforeRetry } from '../retry.js';
import type {
  ConnectivityResult, DeleteResult, GetOptions, ListEntry, ListOptions, ObjectInfo, ObjectStore, PutOptions, Tag,
} from '../types.js';
import { chunkedToBuffer, isChunkedBody, readWhole, type PutBody } from '../body.js';
import {
  AccessDeniedError, BarmanCloudError, BucketNotFoundError, NetworkError, NotFoundError, PreconditionFailedError,
  SseCustomerKeyError, StorageError,
} from '../../errors.js';
import { mapBounded } from '../../concurrency.js';
import { PageChain } from '../pages.js';

/** Resumable chunks must be multiples of 256 KiB (GCS rule); the client's own default is one request. */
const CHUNK_UNIT = 256 * 1024;
const DEFAULT_CHUNK = 8 * 1024 * 1024;
/**
 * Largest Buffer sent as one multipart request (a 16 MiB WAL segment fits): the request timeout
 * covers the whole body, so bigger Buffers go through the resumable path in chunks.
 */
const SINGLE_REQUEST_MAX = 32 * 1024 * 1024;
/** Concurrent single-object deletes within one batch (the client has no batch request). */
const DELETE_CONCURRENCY = 16;
/** Project used against an emulator when none is configured (python-storage uses "<none>" too). */
const EMULATOR_PROJECT = '<none>';
/** See the header: only maxRetries and per-request timeouts should end a retry loop. */
const TOTAL_TIMEOUT_S = 24 * 60 * 60;

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT', 'CERT_HAS_EXPIRED', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const NETWORK_MESSAGE = /network timeout|socket hang up|premature close|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|certificate/i;
const BUCKET_MISSING = /specified bucket does not exist/i;
/** The flag that supplies a customer-supplied encryption key, named in messages. */
const CUSTOMER_KEY_FLAG = '--google-customer-key-file';
/** GCS's 400 answers about customer-supplied keys (missing, wrong, or given for a plain object). */
const CUSTOMER_KEY_MESSAGE = /customer-supplied encryption key|encryption key is incorrect|customerEncryption/i;

type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose => typeof v === 'object' && v !== null;

/** The HTTP status an error from either transport carries, if any. */
function statusOf(err: unknown): number | undefined {
  if (!isObject(err)) return undefined;
  if (typeof err.code === 'number' && err.code >= 100) return err.code; // ApiError, Upload errors, JSON error bodies
  const response = err.response;
  if (isObject(response)) {
    if (typeof response.status === 'number') return response.status; // GaxiosError
    if (typeof response.statusCode === 'number') return response.statusCode;
  }
  if (typeof err.status === 'number') return err.status;
  return undefined;
}

/** Walk an error, its causes and nested errors looking for a transport-level failure. */
function networkDetail(err: unknown, depth = 0): string | undefined {
  if (!isObject(err) || depth > 4) return undefined;
  const code = typeof err.code === 'string' ? err.code : undefined;
  const message = typeof err.message === 'string' ? err.message : '';
  if (code && NETWORK_CODES.has(code)) return `${code}${message && !message.includes(code) ? `: ${message}` : ''}`;
  if (err.type === 'request-timeout' || err.type === 'body-timeout') return message || 'request timed out';
  // Retry-exhausted resumable upload errors only keep the original cause in their text.
  if (statusOf(err) === undefined && NETWORK_MESSAGE.test(message)) return message;
  for (const nested of [err.cause, err.error, ...(Array.isArray(err.errors) ? err.errors : [])]) {
    const found = networkDetail(nested, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function messageOf(err: unknown): string {
  if (isObject(err) && typeof err.message === 'string' && err.message) {
    // The download path replaces the message with the raw JSON body: show its message instead.
    try {
      const body = JSON.parse(err.message) as { error?: { message?: string } };
      if (body.error?.message) return body.error.message;
    } catch { /* not JSON */ }
    return err.message;
  }
  return String(err);
}

function md5Base64(buf: Buffer): string {
  return createHash('md5').update(buf).digest('base64');
}

// CRC32C (Castagnoli) by @node-rs/crc32 (native, as for the snappy frames and backup_manifest). The
// client's own implementation walks a Buffer with an iterator at about 50 MB/s, which alone would
// cost ~300 ms per 16 MiB WAL segment and direction; this one is handed to it as its crc32cGenerator.
/** The client's CRC32C validator interface; toString() is GCS's base64 of the big-endian value. */
export class Crc32c implements CRC32CValidator {
  private value = 0;
  update(data: Buffer): void {
    this.value = crc32c(data, this.value);
  }
  validate(expected: string): boolean {
    return expected === this.toString();
  }
  toString(): string {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.value);
    return out.toString('base64');
  }
}

function crc32cBase64(buf: Buffer): string {
  const crc = new Crc32c();
  crc.update(buf);
  return crc.toString();
}

/** Round a part size to the 256 KiB multiple GCS requires. */
function chunkSizeFor(partSize: number | undefined): number {
  if (!partSize || partSize <= 0) return DEFAULT_CHUNK;
  return Math.max(CHUNK_UNIT, Math.ceil(partSize / CHUNK_UNIT) * CHUNK_UNIT);
}

function sanitizeEndpoint(url: string): string {
  const withScheme = /^\w+:\/\//.test(url) ? url : `https://${url}`;
  return withScheme.replace(/\/+$/, '');
}

// ---- redirects (docs/configuration.md#redirects) -----------------------------------------------
// teeny-request and gaxios both follow redirects through node-fetch, which keeps the CSEK headers
// (and, for the same host on another port, the bearer token) and offers no option to stop. Node
// publishes each response on this channel before the client's 'response' listeners run, so a
// redirect from a GCS endpoint to another origin loses its Location there: node-fetch then hands
// the 3xx back as the answer, and no request is made to that origin, through a proxy or not.

/** Origins (scheme, host, port) of the GCS endpoints this process opened. */
const endpointOrigins = new Set<string>();

function refuseRedirectsElsewhere(endpoint: string): void {
  if (endpointOrigins.size === 0) {
    subscribe('http.client.response.finish', (message) => {
      const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
      const location = response.headers.location;
      const status = response.statusCode ?? 0;
      if (location === undefined || status < 300 || status > 399) return;
      const from = `${request.protocol}//${String(request.getHeader('host') ?? request.host).toLowerCase()}`;
      if (!endpointOrigins.has(from)) return;
      let to: string | undefined;
      try {
        to = new URL(location, `${from}/`).origin;
      } catch { /* unparsable: refused as well */ }
      if (to === undefined || !endpointOrigins.has(to)) delete response.headers.location;
    });
  }
  endpointOrigins.add(new URL(endpoint).origin);
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  error?: unknown;
}

/** Worth another attempt: the transport failed, or the service asked for one (408, 429, 5xx). */
function isTransient(err: unknown): boolean {
  const status = statusOf(err);
  if (status !== undefined) return status === 408 || status === 429 || status >= 500;
  return networkDetail(err) !== undefined;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Bytes a resumable session has persisted, from a 308's `Range: bytes=0-N` (none when absent). */
function persistedBytes(res: RawResponse): number {
  const m = /bytes=0-(\d+)/.exec(String(res.headers.range ?? ''));
  return m ? Number(m[1]) + 1 : 0;
}

/**
 * What a chunk PUT (or status query) answer means: the object resource when complete, the new
 * offset when a non-final chunk is fully persisted, undefined when part of it is missing.
 */
function chunkOutcome(res: RawResponse, start: number, length: number, final: boolean): Loose | number | undefined {
  if (res.status === 200 || res.status === 201) {
    if (!final) throw new StorageError('resumable session completed before the last chunk');
    return isObject(res.body) ? res.body : {};
  }
  if (res.status === 308) {
    const persisted = persistedBytes(res);
    if (persisted < start) throw new StorageError(`resumable session lost data: it has ${persisted} bytes, ${start} were sent`);
    return !final && persisted >= start + length ? persisted : undefined;
  }
  throw res.error ?? Object.assign(new Error(`HTTP ${res.status}`), { code: res.status });
}

export class GcsObjectStore implements ObjectStore {
  readonly provider = 'google-cloud-storage' as const;
  readonly bucket: string;
  readonly maxDeleteBatch = 100;

  private readonly storage: Storage;
  private readonly gcsBucket: Bucket;
  private readonly endpoint: string;
  private readonly retry: RetryPolicy;
  private readonly kmsKeyName?: string;
  private readonly customerKey?: Buffer;
  /** The CSEK headers our own chunk requests carry, as the client adds them to its own. */
  private readonly customerKeyHeaders: Record<string, string>;
  /** Only when an extra CA is configured: the agent for gaxios (session creation, auth tokens). */
  private readonly agent?: https.Agent;
  /** teeny-request options for our own requests (the chunk loop), as the interceptor gives the client's. */
  private readonly transport: { timeout: number; pool?: https.AgentOptions };

  constructor(config: GcsStoreConfig) {
    this.bucket = config.bucket;
    this.retry = config.retry;
    this.kmsKeyName = config.kmsKeyName || undefined;
    this.customerKey = config.customerKey;
    this.customerKeyHeaders = config.customerKey
      ? {
        'x-goog-encryption-algorithm': 'AES256',
        'x-goog-encryption-key': config.customerKey.toString('base64'),
        'x-goog-encryption-key-sha256': createHash('sha256').update(config.customerKey).digest('base64'),
      }
      : {};
    const emulated = !!config.apiEndpoint;
    this.endpoint = emulated ? sanitizeEndpoint(config.apiEndpoint!) : 'https://storage.googleapis.com';
    refuseRedirectsElsewhere(this.endpoint);
    const timeout = Math.max(1, config.retry.readTimeoutMs);

    // Extra CA: Node replaces its bundled roots when `ca` is given, so pass both. teeny-request takes
    // agent options through `pool` (it builds one keep-alive agent per protocol for the process, so
    // the first store created decides); gaxios takes an agent directly.
    const ca = config.ca ? [...tls.rootCertificates, config.ca] : undefined;
    if (ca) this.agent = new https.Agent({ keepAlive: true, ca });
    const agent = this.agent;
    this.transport = { timeout, ...(ca && { pool: { maxSockets: Infinity, ca } }) };
    const transport = this.transport;
    const interceptor = {
      request: (reqOpts: object) => ({ ...reqOpts, ...transport, ...(agent && { agent }) }),
    };

    const maxAttempts = Math.max(1, Math.floor(config.retry.maxAttempts));
    const options: StorageOptions = {
      timeout,
      crc32cGenerator: () => new Crc32c(),
      retryOptions: {
        autoRetry: maxAttempts > 1,
        maxRetries: Math.max(1, maxAttempts - 1), // 0 would become the client's default of 3
        retryDelayMultiplier: 2,
        // The client's back-off starts at 1 s (multiplier^n × 1 s + up to 1 s jitter), and save()'s
        // async-retry refuses a cap below its 1 s minimum, so baseDelayMs has no equivalent here.
        maxRetryDelay: Math.max(1, config.retry.maxDelayMs / 1000),
        totalTimeout: TOTAL_TIMEOUT_S,
        // Our writes are idempotent (same key, same bytes) and deletes ignore "not found": retrying
        // them is safe, whereas the default strategy silently disables retries for them.
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
      },
      interceptors_: [interceptor] as StorageOptions['interceptors_'],
    };
    if (emulated) {
      // Emulators take no credentials: the client skips auth for a custom endpoint, and a key file
      // (possibly empty, as CloudNativePG mounts it) is deliberately not read.
      options.apiEndpoint = this.endpoint;
      options.projectId = config.projectId || EMULATOR_PROJECT;
      options.useAuthWithCustomEndpoint = false;
    } else {
      if (config.keyFilename) options.keyFilename = config.keyFilename;
      if (config.projectId) options.projectId = config.projectId;
      if (agent) options.clientOptions = { transporterOptions: { agent } };
    }
    this.storage = new Storage(options);
    // With STORAGE_EMULATOR_HOST in the environment the client uses that raw value as its JSON base
    // URL (no /storage/v1); pin it to the configured endpoint so both spellings behave alike.
    if (emulated) this.storage.baseUrl = `${this.endpoint}/storage/v1`;
    this.gcsBucket = this.storage.bucket(this.bucket);
  }

  // ---- errors ------------------------------------------------------------------------------------

  /** Map any client error onto the shared storage error classes. */
  private toError(err: unknown, what: string, key?: string, ifNoneMatch = false): Error {
    if (err instanceof BarmanCloudError) return err;
    if (isObject(err) && err.name === 'AbortError') return err as unknown as Error;
    const status = statusOf(err);
    const message = messageOf(err);
    const opts = { cause: err };
    if (status === 400 && key !== undefined && CUSTOMER_KEY_MESSAGE.test(message)) {
      return new SseCustomerKeyError(this.customerKey
        ? `cannot read object ${key} with the key of ${CUSTOMER_KEY_FLAG} (HTTP 400: ${message}): it was stored with another customer-supplied key or without one`
        : `object ${key} is encrypted with a customer-supplied encryption key (CSEK): give the key with ${CUSTOMER_KEY_FLAG}`, opts);
    }
    if (status === 404) {
      if (BUCKET_MISSING.test(message) || key === undefined) return new BucketNotFoundError(this.bucket, opts);
      return new NotFoundError(key, opts);
    }
    if (status === 412 && ifNoneMatch && key !== undefined) return new PreconditionFailedError(key, opts);
    if (status === 401 || status === 403) return new AccessDeniedError(`${what}: access denied: ${message}`, opts);
    // A 3xx only comes back when refuseRedirectsElsewhere() kept node-fetch from following it.
    if (status !== undefined && status >= 300 && status < 400) {
      return new StorageError(`${what}: HTTP ${status}: ${this.endpoint} redirected to another origin, which is not followed`, opts);
    }
    if (/Could not load the default credentials|invalid_grant|unauthorized_client/i.test(message)) {
      return new AccessDeniedError(`${what}: ${message}`, opts);
    }
    const net = networkDetail(err);
    if (net !== undefined) return new NetworkError(`${what}: cannot reach ${this.endpoint}: ${net}`, opts);
    return new StorageError(`${what}: ${status ? `HTTP ${status}: ` : ''}${message}`, opts);
  }

  private file(key: string, forUpload = false): File {
    // The client adds the CSEK headers to every request of such a File (upload, download, metadata).
    return this.gcsBucket.file(key, {
      ...(forUpload && this.kmsKeyName ? { kmsKeyName: this.kmsKeyName } : {}),
      ...(this.customerKey ? { encryptionKey: this.customerKey } : {}),
    });
  }

  // ---- bucket ------------------------------------------------------------------------------------

  async testConnectivity(): Promise<ConnectivityResult> {
    return (await this.bucketExists()) ? 'ok' : 'bucket-missing';
  }

  async bucketExists(): Promise<boolean> {
    try {
      const [exists] = await this.gcsBucket.exists();
      return exists;
    } catch (e) {
      throw this.toError(e, `checking bucket ${this.bucket}`);
    }
  }

  async createBucket(): Promise<void> {
    try {
      await this.storage.createBucket(this.bucket);
    } catch (e) {
      if (statusOf(e) === 409) return; // already exists (and, on GCS, already ours)
      throw this.toError(e, `creating bucket ${this.bucket}`);
    }
  }

  // ---- objects -----------------------------------------------------------------------------------

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const [md] = await this.file(key).getMetadata();
      return { key, size: Number(md.size ?? 0), ...(md.updated && { lastModified: new Date(md.updated) }) };
    } catch (e) {
      const err = this.toError(e, `reading metadata of ${key}`, key);
      if (err instanceof NotFoundError) return null;
      throw err;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const { start, end, signal } = options;
    const ranged = typeof start === 'number' || typeof end === 'number';
    signal?.throwIfAborted();
    // Whole objects are checked against the crc32c in x-goog-hash; ranges cannot be.
    const src = this.file(key).createReadStream({
      ...(typeof start === 'number' && { start }),
      ...(typeof end === 'number' && { end }),
      validation: ranged ? false : 'crc32c',
    });
    const idleMs = Math.max(1, this.retry.readTimeoutMs);
    const what = `downloading ${key}`;
    const onAbort = () => src.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const iterator = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    // Each read gets the idle limit: a server that goes silent mid-body fails instead of hanging.
    const next = (): Promise<IteratorResult<Buffer>> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        src.destroy(new NetworkError(`${what}: no data from ${this.endpoint} for ${idleMs} ms`));
      }, idleMs);
      iterator.next().then(
        (r) => { clearTimeout(timer); resolve(r); },
        (e: unknown) => { clearTimeout(timer); reject(e); },
      );
    });
    const cleanup = () => signal?.removeEventListener('abort', onAbort);
    let first: IteratorResult<Buffer>;
    try {
      first = await next(); // the request starts on the first read: a missing object fails here
    } catch (e) {
      cleanup();
      src.destroy();
      throw this.toError(e, what, key);
    }
    const toError = this.toError.bind(this);
    async function* relay(): AsyncGenerator<Buffer> {
      try {
        if (first.done) return;
        yield first.value;
        for (let r = await next(); !r.done; r = await next()) yield r.value;
      } catch (e) {
        throw toError(e, what, key);
      } finally {
        cleanup();
        if (!src.destroyed) src.destroy();
      }
    }
    return Readable.from(relay(), { objectMode: false });
  }

  async getBuffer(key: string, options: GetOptions = {}): Promise<Buffer> {
    return readWhole(await this.get(key, options), { key, maxBytes: options.maxBytes });
  }

  async put(key: string, input: PutBody, options: PutOptions = {}): Promise<void> {
    const body = isChunkedBody(input) ? chunkedToBuffer(input) : input;
    const metadata: FileMetadata = { contentType: 'application/octet-stream' };
    if (options.tags?.length) metadata.metadata = Object.fromEntries(options.tags); // dict(pairs): last wins
    const preconditionOpts = options.ifNoneMatch ? { ifGenerationMatch: 0 } : undefined;
    const file = this.file(key, true);
    const what = `uploading ${key}`;
    options.signal?.throwIfAborted();

    if (Buffer.isBuffer(body) && body.length <= SINGLE_REQUEST_MAX) {
      // One multipart request; the server checks the hashes we send and the client checks the
      // crc32c the server reports.
      metadata.md5Hash = md5Base64(body);
      metadata.crc32c = crc32cBase64(body);
      try {
        await file.save(body, { resumable: false, metadata, validation: 'crc32c', ...(preconditionOpts && { preconditionOpts }) });
      } catch (e) {
        throw this.toError(e, what, key, options.ifNoneMatch);
      }
      return;
    }

    // A stream: a resumable session (opened by the client, which handles auth, CMEK, metadata and
    // preconditions, so an ifNoneMatch conflict fails before any byte of the source is read), then
    // our own chunk loop. The client's own chunk loop is not used: in 7.22 an error after the source
    // has ended (e.g. the server dies during the last chunk) is lost and the upload never settles,
    // and a failed offset query is reported as an uncaught RangeError.
    const source = Buffer.isBuffer(body) ? Readable.from([body], { objectMode: false }) : body;
    let sessionUri: string;
    try {
      [sessionUri] = await file.createResumableUpload({ metadata, ...(preconditionOpts && { preconditionOpts }) });
    } catch (e) {
      throw this.toError(e, what, key, options.ifNoneMatch);
    }
    try {
      await this.uploadChunks(sessionUri, source, chunkSizeFor(options.partSize), key, options.signal);
    } catch (e) {
      if (!source.destroyed) source.destroy();
      await this.request('DELETE', sessionUri).catch(() => undefined); // cancel: GCS answers 499
      throw this.toError(e, what, key, options.ifNoneMatch);
    }
  }

  /** One request through the client's transport (auth, proxy, CA, timeout), without its retries. */
  private request(method: string, uri: string, headers: Record<string, string> = {}, body?: Buffer): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const reqOpts = { method, uri, headers, maxRetries: 0, ...this.transport, ...(body && { body }) };
      this.storage.makeAuthenticatedRequest(reqOpts, (err, respBody, resp) => {
        // Non-2xx answers (308 included) come back as an ApiError *with* the response.
        if (resp && typeof resp.statusCode === 'number') {
          resolve({ status: resp.statusCode, headers: (resp.headers ?? {}) as Record<string, string>, body: respBody, error: err ?? undefined });
        } else reject(err ?? new StorageError(`${method} ${uri}: no response`));
      });
    });
  }

  /**
   * Send `body` to a resumable session in `chunkSize` requests (GCS "chunked upload": every chunk but
   * the last is a 256 KiB multiple, answered 308 with the persisted `Range`; the last one carries the
   * total). Each request is retried per the RetryPolicy after asking the session how much it has.
   * Memory: about one chunk plus one source read.
   */
  private async uploadChunks(uri: string, body: Readable, chunkSize: number, key: string, signal?: AbortSignal): Promise<void> {
    const crc = new Crc32c();
    const source = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
    let pending: Buffer[] = [];
    let pendingLength = 0;
    let eof = false;
    let offset = 0; // bytes the session has persisted
    let resource: Loose | undefined;
    while (!resource) {
      while (!eof && pendingLength <= chunkSize) {
        const r = await source.next();
        if (r.done) eof = true;
        else {
          const buf = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
          if (buf.length) { pending.push(buf); pendingLength += buf.length; }
        }
      }
      signal?.throwIfAborted();
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLength);
      const last = eof && pendingLength <= chunkSize;
      const chunk = last ? all : all.subarray(0, chunkSize);
      const rest = last ? Buffer.alloc(0) : all.subarray(chunkSize);
      pending = rest.length ? [rest] : [];
      pendingLength = rest.length;
      crc.update(chunk);
      const result = await this.sendChunk(uri, chunk, offset, last ? offset + chunk.length : undefined, last ? crc.toString() : undefined);
      if (typeof result === 'number') offset = result;
      else resource = result;
    }
    if (typeof resource.crc32c === 'string' && resource.crc32c !== crc.toString()) {
      await this.file(key).delete({ ignoreNotFound: true }).catch(() => undefined); // as the client does
      throw new StorageError(`uploading ${key}: CRC32C mismatch (sent ${crc.toString()}, stored ${resource.crc32c}); object deleted`);
    }
  }

  /**
   * PUT one chunk at `start`; `total` only on the last one. Returns the new persisted offset, or
   * the object resource once the upload is complete.
   */
  private async sendChunk(uri: string, chunk: Buffer, start: number, total: number | undefined, crc32c: string | undefined): Promise<number | Loose> {
    const maxAttempts = Math.max(1, Math.floor(this.retry.maxAttempts));
    const final = total !== undefined;
    let sent = 0; // bytes of this chunk the session has
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      try {
        const data = chunk.subarray(sent);
        const first = start + sent;
        const range = data.length ? `bytes ${first}-${first + data.length - 1}/${total ?? '*'}` : `bytes */${total ?? '*'}`;
        const res = await this.request('PUT', uri, {
          'Content-Range': range, ...(crc32c && { 'X-Goog-Hash': `crc32c=${crc32c}` }), ...this.customerKeyHeaders,
        }, data);
        const outcome = chunkOutcome(res, start, chunk.length, final);
        if (outcome !== undefined) return outcome;
        const now = persistedBytes(res) - start;
        if (now > sent) { sent = now; attempt--; continue; } // kept part of it: send the rest
        failure = new StorageError(`resumable upload stalled at byte ${start + sent}`);
      } catch (e) {
        failure = e;
      }
      if (!isTransient(failure) || !(await pauseBeforeRetry({ ...this.retry, maxAttempts }, attempt))) throw failure;
      // Ask the session what it kept before resending (a status query: empty body).
      try {
        const res = await this.request('PUT', uri, { 'Content-Range': `bytes */${total ?? '*'}`, ...this.customerKeyHeaders });
        const outcome = chunkOutcome(res, start, chunk.length, final);
        if (outcome !== undefined) return outcome;
        sent = Math.max(0, persistedBytes(res) - start);
      } catch (e) {
        if (!isTransient(e) || attempt + 1 >= maxAttempts) throw e;
      }
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    let pageToken: string | undefined;
    const chain = new PageChain(`listing ${prefix || '/'}`);
    do {
      let resp: { items?: FileMetadata[]; prefixes?: string[]; nextPageToken?: string };
      try {
        const [, , apiResponse] = await this.gcsBucket.getFiles({
          prefix,
          autoPaginate: false,
          ...(options.delimiter && { delimiter: options.delimiter }),
          ...(options.pageSize && { maxResults: options.pageSize }),
          ...(pageToken && { pageToken }),
        });
        resp = (apiResponse ?? {}) as typeof resp;
      } catch (e) {
        throw this.toError(e, `listing ${prefix || '/'}`);
      }
      // Every page of objects.list says what it is: a web page or other JSON answered with 200 read
      // as "no objects" (docs/format.md#listing-answers).
      if (!isObject(resp) || (resp as Loose).kind !== 'storage#objects') {
        throw new StorageError(`listing ${prefix || '/'}: the answer is not a listing`);
      }
      // Objects and prefixes of one page cover the same key range: merge them in key order.
      const entries: ListEntry[] = [
        ...(resp.items ?? []).map((md): ListEntry => ({
          kind: 'object',
          key: md.name!,
          size: Number(md.size ?? 0),
          ...(md.updated && { lastModified: new Date(md.updated) }),
        })),
        ...(resp.prefixes ?? []).map((p): ListEntry => ({ kind: 'prefix', prefix: p })),
      ];
      const keyOf = (e: ListEntry) => (e.kind === 'object' ? e.key : e.prefix);
      entries.sort((a, b) => Buffer.compare(Buffer.from(keyOf(a)), Buffer.from(keyOf(b))));
      yield* entries;
      pageToken = chain.next(Boolean(resp.nextPageToken), resp.nextPageToken);
    } while (pageToken);
  }

  /**
   * Delete without catching: a missing object (404) counts as deleted. GCS answers a deletion 204
   * with no body; a web page answered with 200 deleted nothing (docs/format.md#result-answers).
   */
  private async deleteOne(key: string): Promise<void> {
    const [res] = await this.file(key).delete({ ignoreNotFound: true });
    const { statusCode: status, body } = (res ?? {}) as { statusCode?: number; body?: unknown };
    if (status !== undefined && status < 300 && typeof body === 'string' && body.trim() !== '' && !isJson(body)) {
      throw new StorageError(`deleting ${key}: the answer (HTTP ${status}) is not a deletion's, so the object is not known to be deleted`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.deleteOne(key);
    } catch (e) {
      throw this.toError(e, `deleting ${key}`, key);
    }
  }

  async deleteMany(keys: string[], batchSize: number = this.maxDeleteBatch): Promise<DeleteResult> {
    const size = Math.max(1, Math.min(Math.floor(batchSize) || this.maxDeleteBatch, this.maxDeleteBatch));
    const result: DeleteResult = { deleted: [], errors: [] };
    for (let i = 0; i < keys.length; i += size) {
      const batch = keys.slice(i, i + size);
      const outcomes = await mapBounded(batch, DELETE_CONCURRENCY, async (key) => {
        try {
          await this.deleteOne(key);
          return null;
        } catch (e) {
          return this.toError(e, `deleting ${key}`, key);
        }
      });
      let fatal: Error | undefined;
      outcomes.forEach((err, j) => {
        const key = batch[j]!;
        if (err === null) result.deleted.push(key);
        else {
          result.errors.push({ key, message: err.message });
          // An unreachable store is not a per-object failure: stop and let the caller see it.
          if (err instanceof NetworkError) fatal ??= err;
        }
      });
      if (fatal) throw fatal;
    }
    return result;
  }

  async getTags(key: string): Promise<Tag[]> {
    try {
      const [md] = await this.file(key).getMetadata();
      return Object.entries(md.metadata ?? {})
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]): Tag => [k, String(v)]);
    } catch (e) {
      throw this.toError(e, `reading metadata of ${key}`, key);
    }
  }

  async close(): Promise<void> {
    this.agent?.destroy();
  }
}

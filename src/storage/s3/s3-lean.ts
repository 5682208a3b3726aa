// A lean S3 client for the per-WAL hot path. Loading @aws-sdk/client-s3 costs ~120 ms of CPU per
// process on these machines (measured; more than the whole latency budget of an archive_command
// call), so with static or container (EKS Pod Identity) credentials the small requests the WAL commands make — HEAD, GET, single
// PUT, ListObjectsV2 — are signed here with `aws4` (SigV4, zero dependencies) and sent with our
// own HTTP/1.1 exchange (../http1.ts, lighter than node:http), and so are a backup's multipart uploads (the SDK cost a backup ~10 MB of peak RSS).
// Everything else (bulk delete, tags, bucket creation, Object Lock) is handed to the full SDK
// driver, loaded only then.
import { createHash, createHmac } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import {
  AccessDeniedError, BucketNotFoundError, NetworkError, NotFoundError, ObjectTooLargeError, PreconditionFailedError, StorageError,
} from '../../errors.js';
import { log, redact } from '../../log.js';
import type { S3StoreConfig } from './config.js';
import { mayRetry, pauseBeforeRetry } from '../retry.js';
import { ContainerCredentialsProvider, type TemporaryCredentials } from './container-credentials.js';
import {
  ACCESS_CODES, contentMd5, encodeTagging, networkFailure, networkMessage, notAListing, notStored, oneLine, rangeHeader, sseCustomerHeaders, sseCustomerKeyError, uriEncode,
  wantsContentMd5,
} from './s3-common.js';
import { chunkedToBuffer, exactChunks, isChunkedBody, readWhole, sha256Hex, type ChunkedBody, type PutBody } from '../body.js';
import { Http1Pool, type Http1Response } from '../http1.js';
import { uploadStream } from './multipart.js';
import { PageChain } from '../pages.js';
import type {
  ConnectivityResult, DeleteResult, GetOptions, IncompleteUpload, ListEntry, ListOptions, ObjectInfo, ObjectLockState, ObjectStore, PutOptions, Tag,
} from '../types.js';
import type { S3ObjectStore } from './s3.js';

// CommonJS, loaded with require: an import would have Node lex its source for export names, which
// costs start-up CPU and ~3 MB of a WAL call's peak RSS (src/compression/snappy.ts).
const aws4 = createRequire(import.meta.url)('aws4') as typeof import('aws4');

/**
 * Data bytes per signed chunk of a streamed-signed PUT (AWS: at least 8 KiB but the last). Each
 * chunk costs the server one HMAC and us one header line; chosen by measurement (docs/benchmarks-history.md).
 */
export const SIGNED_CHUNK = 256 * 1024;
const STREAMING_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** `;chunk-signature=` plus 64 hex digits plus CRLF, after the size in hex. */
const CHUNK_META = 17 + 64 + 2;

/** Bytes on the wire of an aws-chunked body carrying `length` data bytes. */
function awsChunkedLength(length: number, chunk = SIGNED_CHUNK): number {
  const full = Math.floor(length / chunk);
  const rest = length % chunk;
  const framed = (n: number) => n.toString(16).length + CHUNK_META + n + 2;
  return full * framed(chunk) + (rest > 0 ? framed(rest) : 0) + framed(0);
}

interface ChunkSigning {
  /** The request's X-Amz-Date. */
  datetime: string;
  /** date/region/s3/aws4_request */
  scope: string;
  signingKey: Buffer;
  /** The Authorization header's signature: the first chunk's "previous" one. */
  seed: string;
}

/**
 * A body sent as SigV4 streaming signed payload (aws-chunked): every chunk carries an HMAC chained
 * to the previous one and to the request's signature, so the server refuses a body changed on the
 * way, as with a signed SHA-256 of the whole body, but the hash is taken as the bytes go out: one
 * read of the body instead of a hashing pass before the request.
 */
function awsChunkedBody(body: ChunkedBody, signing: ChunkSigning, chunk = SIGNED_CHUNK): ChunkedBody {
  const sign = (previous: string, data: Buffer): string =>
    createHmac('sha256', signing.signingKey)
      .update(`AWS4-HMAC-SHA256-PAYLOAD\n${signing.datetime}\n${signing.scope}\n${previous}\n${EMPTY_SHA256}\n`)
      .update(createHash('sha256').update(data).digest('hex'))
      .digest('hex');
  function* framed(): Generator<Buffer> {
    // Room in front of the staged data for its size line (and the CRLF ending the previous chunk):
    // a staged chunk goes out as one write.
    const room = 2 + 8 + CHUNK_META;
    let stage: Buffer | undefined;
    let staged = 0;
    let previous = signing.seed;
    let read = 0;
    let first = true;
    const line = (n: number): string => {
      const text = `${first ? '' : '\r\n'}${n.toString(16)};chunk-signature=${previous}\r\n`;
      first = false;
      return text;
    };
    const flushStage = (): Buffer => {
      const data = stage!.subarray(room, room + staged);
      previous = sign(previous, data);
      const head = line(staged);
      const start = room - head.length;
      stage!.write(head, start, 'latin1');
      const out = stage!.subarray(start, room + staged);
      staged = 0;
      return out;
    };
    for (const piece of body.chunks()) {
      read += piece.length;
      if (read > body.length) throw new StorageError(`the body changed while it was read: more than ${body.length} bytes`);
      let at = 0;
      // A piece that is exactly the next chunk is signed where it lies (a file read in chunks of this size).
      if (staged === 0 && piece.length > 0 && piece.length === Math.min(chunk, body.length - (read - piece.length))) {
        previous = sign(previous, piece);
        yield Buffer.from(line(piece.length), 'latin1');
        yield piece;
        continue;
      }
      while (at < piece.length) {
        stage ??= Buffer.allocUnsafeSlow(room + chunk);
        const n = piece.copy(stage, room + staged, at, at + Math.min(chunk - staged, piece.length - at));
        staged += n;
        at += n;
        if (staged === chunk) yield flushStage();
      }
    }
    if (read !== body.length) throw new StorageError(`the body changed while it was read: ${read} bytes instead of ${body.length}`);
    if (staged > 0) yield flushStage();
    previous = sign(previous, Buffer.alloc(0));
    yield Buffer.from(`${first ? '' : '\r\n'}0;chunk-signature=${previous}\r\n\r\n`, 'latin1');
  }
  const length = awsChunkedLength(body.length, chunk);
  return {
    kind: 'chunked',
    length,
    // The last data byte, before its CRLF and the final chunk: RGW 16.2 stores the object once it
    // has every data byte, without waiting for the final chunk (a commit gate held only the last
    // byte of the final chunk, and RGW answered 200 before the gate opened).
    gateAt: length - (2 + 1 + CHUNK_META + 2) - 1,
    get sha256(): string {
      throw new Error('an aws-chunked body is signed chunk by chunk');
    },
    chunks: framed,
  };
}

/** Largest Buffer sent as one PUT; larger bodies and streams go through the SDK's multipart upload. */
const SINGLE_PUT_MAX = 1024 * 1024 * 1024;

type Response = Omit<Http1Response, 'stream'>;

function encodePath(key: string): string {
  return key
    .split('/')
    .map(uriEncode)
    .join('/');
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return XML_ENTITIES[e] ?? m;
  });
}
function xmlTag(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  // A copy, not a slice: a slice would keep the whole listing page alive as long as the key is
  // kept (a retention run holds 200,000 keys).
  return m ? Buffer.from(xmlText(m[1]!), 'utf8').toString('utf8') : undefined;
}
function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
function xmlBlocks(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1] ?? '');
}

interface SendOptions {
  query?: string;
  headers?: Record<string, string>;
  body?: Buffer | ChunkedBody;
  op: string;
  stream?: boolean;
  /** GetOptions.pieceSize, for a streamed body. */
  pieceSize?: number;
  signal?: AbortSignal;
  /** PutOptions.commitGate, for a chunked body. */
  gate?: Promise<void>;
  /** Send the chunked body as SigV4 streaming signed payload (awsChunkedBody). */
  streamSigned?: boolean;
}

export class LeanS3ObjectStore implements ObjectStore {
  readonly provider = 'aws-s3' as const;
  readonly holdsCommit = true;
  readonly bucket: string;
  readonly maxDeleteBatch = 1000;
  private readonly endpoint: URL;
  private region: string;
  private readonly pathStyle: boolean;
  private readonly pool: Http1Pool;
  private readonly credentials: () => Promise<TemporaryCredentials>;
  private readonly containerProvider?: ContainerCredentialsProvider;
  private fullStore?: Promise<S3ObjectStore>;
  /** SSE-C headers for every request that reads or writes an object body (HEAD included). */
  private readonly sseCustomer: Record<string, string>;
  /** Plain HTTP: a costly body is signed chunk by chunk as it is sent (awsChunkedBody). */
  private readonly streamsSignedPayload: boolean;
  /** Set once the bucket refused an upload for want of Content-MD5: every later upload sends it. */
  private sendContentMd5 = false;

  constructor(private readonly config: S3StoreConfig) {
    this.bucket = config.bucket;
    if (config.credentials) {
      const fixed = config.credentials;
      this.credentials = () => Promise.resolve(fixed);
    } else if (config.containerCredentials) {
      const provider = new ContainerCredentialsProvider(config.containerCredentials, config.retry);
      this.containerProvider = provider;
      this.credentials = () => provider.get();
    } else {
      throw new Error('the lean S3 client needs static or container credentials');
    }
    this.sseCustomer = config.sseCustomerKey ? sseCustomerHeaders(config.sseCustomerKey) : {};
    this.region = config.region ?? 'us-east-1';
    this.pathStyle = config.endpointUrl !== undefined;
    this.endpoint = new URL(config.endpointUrl ?? `https://s3.${this.region}.amazonaws.com`);
    const https = this.endpoint.protocol === 'https:';
    this.streamsSignedPayload = !https;
    // One origin per store: path-style requests go to the endpoint, virtual-hosted ones to the
    // bucket's host name on it. Kept-alive sockets: a restore's LIST and GET, a backup's parts.
    const hostname = (this.pathStyle ? this.endpoint.hostname : `${this.bucket}.${this.endpoint.hostname}`).replace(/^\[|\]$/g, '');
    // The CA only over TLS: hosts export AWS_CA_BUNDLE for every tool, plain-HTTP endpoints
    // included, and building the list loads node:tls (a few ms of a WAL call's CPU; docs/benchmarks-history.md).
    this.pool = new Http1Pool(
      { https, hostname, port: this.endpoint.port ? Number(this.endpoint.port) : https ? 443 : 80, ...(https && config.ca ? { ca: [...rootCertificates, config.ca] } : {}) },
      { maxSockets: 32, connectTimeoutMs: config.retry.connectTimeoutMs, readTimeoutMs: config.retry.readTimeoutMs },
    );
  }

  /** The SDK driver, for what the lean client does not do itself. */
  private full(): Promise<S3ObjectStore> {
    this.fullStore ??= import('./s3.js').then((m) => new m.S3ObjectStore(this.config, this.containerProvider));
    return this.fullStore;
  }

  private endpointLabel(): string {
    return this.endpoint.origin;
  }

  private target(key?: string, query = ''): { host: string; path: string } {
    const objectPath = key === undefined ? '' : encodePath(key);
    if (this.pathStyle) {
      return { host: this.endpoint.host, path: `${this.endpoint.pathname.replace(/\/$/, '')}/${this.bucket}${key === undefined ? '' : `/${objectPath}`}${query}` };
    }
    return { host: `${this.bucket}.${this.endpoint.host}`, path: `/${objectPath}${query}` };
  }

  /** One signed request with our retry policy; the body is buffered (these responses are small or one WAL). */
  private async send(
    method: string,
    key: string | undefined,
    options: SendOptions,
  ): Promise<Http1Response> {
    const policy = this.config.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.attempt(method, key, options, await this.credentials());
        if (res.status >= 500 && mayRetry(policy, attempt)) {
          res.stream?.destroy();
          await pauseBeforeRetry(policy, attempt);
          continue;
        }
        if (res.status === 301 && res.headers['x-amz-bucket-region'] && !this.pathStyle) {
          // boto3 follows a wrong-region answer; so do we, once.
          this.region = String(res.headers['x-amz-bucket-region']);
          if (attempt === 1) continue;
        }
        return res;
      } catch (e) {
        const failure = networkFailure(e)?.kind === 'timeout' ? 'stall' : 'transient';
        if (e instanceof NetworkError && !options.signal?.aborted && (await pauseBeforeRetry(policy, attempt, failure))) continue;
        throw e;
      }
    }
  }

  private async attempt(
    method: string,
    key: string | undefined,
    options: SendOptions,
    credentials: TemporaryCredentials,
  ): Promise<Http1Response> {
    const { host, path } = this.target(key, options.query ?? '');
    const https = this.endpoint.protocol === 'https:';
    const body = options.body;
    const headers: Record<string, string> = { ...options.headers };
    // Signed payload over plain HTTP, as boto3, unless the caller gave the hash (PUT); over TLS the
    // hash of an empty or small body is not needed.
    const streamed = options.streamSigned === true && isChunkedBody(body);
    if (streamed) {
      headers['X-Amz-Content-Sha256'] = STREAMING_PAYLOAD;
      headers['Content-Encoding'] = 'aws-chunked';
      headers['X-Amz-Decoded-Content-Length'] = String(body.length);
      headers['Content-Length'] = String(awsChunkedLength(body.length));
    } else {
      headers['X-Amz-Content-Sha256'] ??= https ? 'UNSIGNED-PAYLOAD' : sha256Hex(Buffer.isBuffer(body) ? [body] : []);
      if (body) headers['Content-Length'] = String(body.length);
    }
    const signed = aws4.sign({ host, path, method, headers, service: 's3', region: this.region }, credentials);
    const signedHeaders = signed.headers as Record<string, string>;
    // Signed anew on each attempt: a retry sends the whole body again, from its first byte.
    const sent = streamed ? awsChunkedBody(body, this.chunkSigning(signedHeaders, credentials)) : body;
    // Transport failures become our errors, for the caller and for a streamed body's reader alike.
    const failure = (e: unknown): Error => {
      const net = networkFailure(e);
      return net ? new NetworkError(networkMessage(net.kind, this.endpointLabel(), net.detail), { cause: e })
        : new StorageError(`S3 ${options.op} failed: ${oneLine(redact((e as Error).message ?? String(e)))}`, { cause: e });
    };
    try {
      return await this.pool.request({
        method,
        path: signed.path!,
        headers: { ...signedHeaders, Host: host },
        body: sent,
        gate: options.gate,
        signal: options.signal,
        stream: options.stream,
        pieceSize: options.pieceSize,
        streamError: failure,
      });
    } catch (e) {
      throw failure(e);
    }
  }

  /** What signs the chunks of a streamed body: the request's time, scope, key and signature. */
  private chunkSigning(headers: Record<string, string>, credentials: TemporaryCredentials): ChunkSigning {
    const datetime = headers['X-Amz-Date']!;
    const seed = /Signature=([0-9a-f]{64})/.exec(headers.Authorization ?? '')?.[1];
    if (!seed) throw new StorageError('S3 signing gave no request signature');
    const date = datetime.slice(0, 8);
    const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, date), this.region), 's3'), 'aws4_request');
    return { datetime, scope: `${date}/${this.region}/s3/aws4_request`, signingKey, seed };
  }

  /** S3 error answer → one of our storage errors. */
  private error(res: Response, op: string, key?: string): Error {
    const xml = res.body.toString('utf8');
    const code = xmlTag(xml, 'Code') ?? '';
    const message = oneLine(redact(xmlTag(xml, 'Message') ?? ''));
    if (code === 'NoSuchBucket') return new BucketNotFoundError(this.bucket);
    if (res.status === 404 && key !== undefined) return new NotFoundError(key);
    if (key !== undefined && (op === 'head' || op === 'get')) {
      const sse = sseCustomerKeyError(res.status, key, this.config.sseCustomerKey !== undefined);
      if (sse) return sse;
    }
    if (res.status === 412 || code === 'PreconditionFailed') return new PreconditionFailedError(key ?? '');
    if (res.status === 401 || res.status === 403 || ACCESS_CODES.has(code)) {
      return new AccessDeniedError(`${code || 'AccessDenied'}: ${message || `S3 ${op} refused`} (HTTP ${res.status})`);
    }
    return new StorageError(`${code ? `${code}: ` : ''}${message || `S3 ${op} failed`} (HTTP ${res.status})`);
  }

  async testConnectivity(): Promise<ConnectivityResult> {
    const res = await this.send('HEAD', undefined, { op: 'HeadBucket' });
    if (res.status === 404) return 'bucket-missing';
    if (res.status >= 300) throw this.error(res, 'HeadBucket');
    return 'ok';
  }

  async bucketExists(): Promise<boolean> {
    return (await this.testConnectivity()) === 'ok';
  }

  async createBucket(): Promise<void> {
    await (await this.full()).createBucket();
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const res = await this.send('HEAD', key, { op: 'head', headers: { ...this.sseCustomer } });
    if (res.status === 404) return null;
    if (res.status >= 300) throw this.error(res, 'head', key);
    return {
      key,
      size: Number(res.headers['content-length'] ?? 0),
      lastModified: res.headers['last-modified'] ? new Date(String(res.headers['last-modified'])) : undefined,
    };
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const range = rangeHeader(options);
    const res = await this.send('GET', key, {
      op: 'get', stream: true, pieceSize: options.pieceSize, signal: options.signal, headers: { ...this.sseCustomer, ...(range ? { Range: range } : {}) },
    });
    if (res.status >= 300) throw this.error(res, 'get', key);
    return res.stream!;
  }

  async getBuffer(key: string, options: GetOptions = {}): Promise<Buffer> {
    const range = rangeHeader(options);
    const { maxBytes } = options;
    // With a limit the body is streamed: read whole, it would first be given a Buffer of whatever
    // length the answer states (docs/format.md#metadata-limits).
    const res = await this.send('GET', key, {
      op: 'get', signal: options.signal, stream: maxBytes !== undefined, headers: { ...this.sseCustomer, ...(range ? { Range: range } : {}) },
    });
    if (res.status >= 300) throw this.error(res, 'get', key);
    if (!res.stream) return res.body;
    if (Number(res.headers['content-length'] ?? 0) > maxBytes!) {
      res.stream.destroy();
      throw new ObjectTooLargeError(key, maxBytes!);
    }
    return readWhole(res.stream, { key, maxBytes });
  }

  /** Headers of an object's creation (PutObject, CreateMultipartUpload), as barman sends them. */
  private creationHeaders(options: PutOptions): Record<string, string> {
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', ...this.sseCustomer };
    if (options.tags?.length) headers['x-amz-tagging'] = encodeTagging(options.tags);
    if (this.config.serverSideEncryption) headers['x-amz-server-side-encryption'] = this.config.serverSideEncryption;
    if (this.config.sseKmsKeyId) headers['x-amz-server-side-encryption-aws-kms-key-id'] = this.config.sseKmsKeyId;
    return headers;
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    if (body instanceof Readable) return this.putStream(key, body, options);
    if (body.length > SINGLE_PUT_MAX) return (await this.full()).put(key, isChunkedBody(body) ? chunkedToBuffer(body) : body, options);
    const single = body;
    const headers = this.creationHeaders(options);
    if (options.ifNoneMatch) headers['If-None-Match'] = '*';
    // The signed SHA-256 of the body, over HTTP and TLS alike: the server refuses a body that does
    // not match it (XAmzContentSHA256Mismatch), so bytes changed between hashing and sending, or on
    // the way, are never stored. SHA-256 is also the cheaper digest here (11 ms for 16 MiB with the
    // CPU's SHA extensions, MD5 25 ms). UNSIGNED-PAYLOAD with a signed Content-MD5 instead would
    // spare RGW its ~9 ms SHA-256 check but cost us ~20 ms more CPU before the request can start,
    // and moto checks neither (measured, docs/benchmarks-history.md "What our WAL PUT costs the server").
    // Over plain HTTP a costly body (an encrypted segment) is signed chunk by chunk as it is sent
    // instead (awsChunkedBody): as strong, without encrypting it once more just to hash it.
    const streamSigned = isChunkedBody(single) && this.signsAsSent(single);
    if (!streamSigned) headers['X-Amz-Content-Sha256'] = isChunkedBody(single) ? single.sha256 : sha256Hex([single]);
    const pieces = () => (isChunkedBody(single) ? exactChunks(single) : [single]);
    const res = await this.withContentMd5(headers, pieces, async () => {
      if (!(options.commitGate && isChunkedBody(single))) return this.send('PUT', key, { op: 'put', headers, body: single, signal: options.signal, streamSigned });
      // A refused gate aborts the request (no retry: the signal is aborted) and is put()'s error.
      const abort = new AbortController();
      let refusal: { error: unknown } | undefined;
      const gate = options.commitGate.catch((e: unknown) => {
        refusal = { error: e };
        abort.abort(e);
        throw e;
      });
      gate.catch(() => {}); // observed here; sendChunks may have stopped waiting for it
      const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
      let answer: Response;
      try {
        answer = await this.send('PUT', key, { op: 'put', headers, body: single, signal, gate, streamSigned });
      } catch (e) {
        if (refusal) throw refusal.error;
        throw e;
      }
      // An answer that came before the last byte (412, 403): the gate's own failure still wins.
      if (answer.status >= 300) await gate;
      return answer;
    });
    if (res.status >= 300) throw this.error(res, 'put', key);
    if (!res.headers.etag) throw notStored('put', key, res.status);
    log.debug(`PUT ${key} (${single.length} bytes)`);
  }

  /**
   * Whether a single PUT of this body is signed chunk by chunk as it is sent rather than with its
   * SHA-256 taken first. Only over plain HTTP (over TLS the whole-body hash is kept), and only for
   * a body whose passes are costly (an encrypted segment: its ciphertext is then made once, ~6 ms
   * of CPU less per lz4+age segment). A plain file is hashed first: the hash then runs while the
   * pre-check's LIST travels, and moto and RGW spend 1-15 ms more CPU decoding aws-chunked
   * (measured, docs/benchmarks-history.md "Streamed signed payload").
   */
  private signsAsSent(body: ChunkedBody): boolean {
    // Not an empty body: RGW 16.2 refuses an aws-chunked body of only the final chunk
    // (XAmzContentSHA256Mismatch), and there is nothing to hash anyway.
    return this.streamsSignedPayload && body.costlyPasses === true && body.length > 0;
  }

  prepareBody(body: ChunkedBody): void {
    if (!this.signsAsSent(body)) void body.sha256;
  }

  /**
   * An upload, sent again once with Content-MD5 when the bucket refuses it for want of one (Object
   * Lock): not sent up front, as MD5 costs ~25 ms of CPU per 16 MiB segment and most buckets do
   * not ask (docs/configuration.md#object-lock-buckets).
   */
  private async withContentMd5(headers: Record<string, string>, pieces: () => Iterable<Uint8Array>, upload: () => Promise<Response>): Promise<Response> {
    // Whether this upload sent it, not the flag now: another upload (the encryption record) may
    // learn that the bucket wants it while this one is on its way, which must then be sent again.
    const sent = this.sendContentMd5;
    if (sent) headers['Content-MD5'] = contentMd5(pieces());
    const res = await upload();
    if (sent || res.status !== 400) return res;
    const xml = res.body.toString('utf8');
    if (!wantsContentMd5(xmlTag(xml, 'Code') ?? '', xmlTag(xml, 'Message') ?? '')) return res;
    log.debug('The bucket wants Content-MD5 on uploads (Object Lock): sending it from now on');
    this.sendContentMd5 = true;
    headers['Content-MD5'] = contentMd5(pieces());
    return upload();
  }

  /**
   * A stream (a backup's parts): the shared part uploader with requests signed here. Each part is
   * signed with its SHA-256, as a single PUT is, so a part changed on the way is refused.
   */
  private async putStream(key: string, body: Readable, options: PutOptions): Promise<void> {
    const { signal } = options;
    const upload = (id: string) => `uploadId=${encodeURIComponent(id)}`;
    await uploadStream(body, options, {
      putObject: (data) => this.put(key, data, { ...options, partSize: undefined }),
      create: async () => {
        // Without the caller's signal (MultipartCalls.create).
        const res = await this.send('POST', key, { op: 'create-multipart-upload', query: '?uploads=', headers: this.creationHeaders(options) });
        if (res.status >= 300) throw this.error(res, 'create-multipart-upload', key);
        const id = xmlTag(res.body.toString('utf8'), 'UploadId');
        if (!id) throw new StorageError(`S3 create-multipart-upload ${key}: no upload id in the answer`);
        return id;
      },
      uploadPart: async (uploadId, partNumber, data) => {
        const headers: Record<string, string> = { ...this.sseCustomer, 'X-Amz-Content-Sha256': sha256Hex([data]) };
        const res = await this.withContentMd5(headers, () => [data], () =>
          this.send('PUT', key, { op: 'upload-part', query: `?partNumber=${partNumber}&${upload(uploadId)}`, headers, body: data, signal }));
        if (res.status >= 300) throw this.error(res, 'upload-part', key);
        return String(res.headers.etag ?? '');
      },
      complete: async (uploadId, parts) => {
        const xml = `<CompleteMultipartUpload>${parts.map((p) => `<Part><PartNumber>${p.PartNumber}</PartNumber><ETag>${xmlEscape(p.ETag)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
        const headers: Record<string, string> = { 'Content-Type': 'application/xml', ...this.sseCustomer };
        if (options.ifNoneMatch) headers['If-None-Match'] = '*';
        const res = await this.send('POST', key, { op: 'complete-multipart-upload', query: `?${upload(uploadId)}`, headers, body: Buffer.from(xml, 'utf8'), signal });
        // S3 may answer 200 and then an error in the body (it failed after the headers were sent).
        if (res.status >= 300) throw this.error(res, 'complete-multipart-upload', key);
        const answer = res.body.toString('utf8');
        if (/<Error>/.test(answer)) throw this.error({ ...res, status: 500 }, 'complete-multipart-upload', key);
        // A web page answered with 200 completed nothing: the result carries the object's ETag
        // (its root element's name varies: moto says CompleteMultipartUploadResponse; docs/format.md#result-answers).
        if (xmlTag(answer, 'ETag') === undefined) throw notStored('complete-multipart-upload', key, res.status);
      },
      abort: async (uploadId) => {
        try {
          const res = await this.send('DELETE', key, { op: 'abort-multipart-upload', query: `?${upload(uploadId)}` });
          if (res.status >= 300 && res.status !== 404) throw this.error(res, 'abort-multipart-upload', key);
          log.debug(`S3 aborted incomplete multipart upload of ${key}`);
        } catch (e) {
          log.warning(`Could not abort the incomplete multipart upload of ${key} (upload id ${uploadId}): ${(e as Error).message}`);
        }
      },
    }, (err) => err as Error);
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    let token: string | undefined;
    const chain = new PageChain('S3 list');
    do {
      const params = new URLSearchParams({ 'list-type': '2', prefix });
      if (options.delimiter) params.set('delimiter', options.delimiter);
      if (options.pageSize) params.set('max-keys', String(options.pageSize));
      if (token) params.set('continuation-token', token);
      const res = await this.send('GET', undefined, { op: 'list', query: `?${params.toString()}` });
      if (res.status >= 300) throw this.error(res, 'list');
      const xml = res.body.toString('utf8');
      if (xmlTag(xml, 'IsTruncated') === undefined) throw notAListing(res.status, xml);
      const entries: ListEntry[] = [
        ...xmlBlocks(xml, 'CommonPrefixes').map((b): ListEntry => ({ kind: 'prefix', prefix: xmlTag(b, 'Prefix') ?? '' })),
        ...xmlBlocks(xml, 'Contents').map((b): ListEntry => ({
          kind: 'object',
          key: xmlTag(b, 'Key') ?? '',
          size: Number(xmlTag(b, 'Size') ?? 0),
          lastModified: xmlTag(b, 'LastModified') ? new Date(xmlTag(b, 'LastModified')!) : undefined,
        })),
      ];
      const name = (e: ListEntry) => (e.kind === 'object' ? e.key : e.prefix);
      entries.sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
      yield* entries;
      token = chain.next(xmlTag(xml, 'IsTruncated') === 'true', xmlTag(xml, 'NextContinuationToken'));
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const res = await this.send('DELETE', key, { op: 'delete' });
    if (res.status >= 300 && res.status !== 404) throw this.error(res, 'delete', key);
  }

  async deleteMany(keys: string[], batchSize?: number): Promise<DeleteResult> {
    return (await this.full()).deleteMany(keys, batchSize);
  }

  async getTags(key: string): Promise<Tag[]> {
    return (await this.full()).getTags(key);
  }

  async objectLock(key: string): Promise<ObjectLockState> {
    return (await this.full()).objectLock(key);
  }

  async *incompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    yield* (await this.full()).incompleteUploads(prefix);
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    await (await this.full()).abortIncompleteUpload(upload);
  }

  async close(): Promise<void> {
    this.pool.destroy();
    if (this.fullStore) await (await this.fullStore).close();
  }
}

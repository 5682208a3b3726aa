// Azure Blob Storage driver (@azure/storage-blob). Loaded only through openObjectStore's dynamic
// import; @azure/identity is loaded later still, on the first token request, and only when a
// token credential (--credential / DefaultAzureCredential) was chosen.
//
// Transport: the SDK's own HTTP client is kept, but every blob request goes through an agent of
// ours (passed as the pipeline's `agent`), which adds the extra CA to Node's roots, bounds connection
// set-up and socket silence, and can be destroyed on close(). The identity requests (token endpoint,
// often plain http on loopback or IMDS) get the same CA list through `tlsOptions`.
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions, type RequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { PassThrough, Readable } from 'node:stream';
import { createSecureContext, rootCertificates } from 'node:tls';
import {
  AnonymousCredential,
  ContainerClient,
  StorageSharedKeyCredential,
  type BlobItem,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import type { RetryPolicy } from '../config.js';
import type { AzureCredentialKind, AzureStoreConfig } from './config.js';
import type {
  ConnectivityResult, DeleteResult, GetOptions, ListEntry, ListOptions, ObjectInfo, ObjectStore, PutOptions, Tag,
} from '../types.js';
import { chunkedToBuffer, isChunkedBody, readWhole, type PutBody } from '../body.js';
import {
  AccessDeniedError, BarmanCloudError, BucketNotFoundError, NetworkError, NotFoundError, PreconditionFailedError,
  SseCustomerKeyError, StorageError,
} from '../../errors.js';
import { log, redact, registerSecret } from '../../log.js';
import { mapBounded } from '../../concurrency.js';
import { PageChain } from '../pages.js';
import { proxyAgent } from '../proxy-agent.js';
import { proxyFor, registerProxySecrets } from '../proxy.js';

const MiB = 1024 * 1024;
/** Blob batch limit (docs/format.md#provider-limits). */
const MAX_BATCH = 256;
/** A Buffer up to this size goes in one Put Blob (barman's max_single_put_size for wal-archive). */
const SINGLE_PUT_MAX = 64 * MiB;
const DEFAULT_BLOCK = 4 * MiB;
const DEFAULT_CONCURRENCY = 4;
/** Parallel single deletes when the batch endpoint is refused. */
const FALLBACK_DELETE_CONCURRENCY = 8;

// ---- TLS trust --------------------------------------------------------------------------------

/**
 * Node's trust store plus the configured CA, or undefined when none is configured. An explicit `ca`
 * replaces Node's roots (NODE_EXTRA_CA_CERTS included), so the bundled roots and Node's own extra
 * file (read by the CLI into `nodeExtraCa`) are listed again before the configured CA.
 */
function trustedCAs(config: AzureStoreConfig): string[] | undefined {
  if (!config.ca) return undefined;
  return [...rootCertificates, ...(config.nodeExtraCa ? [config.nodeExtraCa] : []), config.ca];
}

// ---- agents: connect timeout, silence timeout, destroyable -------------------------------------

function timeoutError(what: string, ms: number): Error {
  return Object.assign(new Error(`${what} (${ms} ms)`), { code: 'ETIMEDOUT' });
}

/**
 * A stall: the connected server moved no byte for the read timeout. Final, as in every retry loop of
 * ours (src/storage/retry.ts): the SDK's own retry policy retries any error whose code, name or
 * message contains ETIMEDOUT or TIMEOUT, so neither word may appear here.
 */
const STALL_CODE = 'BARMAN_CLOUD_STALLED';
function stallError(ms: number): Error {
  return Object.assign(new Error(`the server moved no data for ${ms} ms`), { code: STALL_CODE });
}

/** Give a new socket the connect limit first, then the silence limit once it is connected. */
function armSocket(socket: Duplex | null | undefined, retry: RetryPolicy, tls: boolean): void {
  if (!socket || !('setTimeout' in socket)) return;
  const s = socket as Duplex & { setTimeout(ms: number): void };
  let connected = false;
  s.setTimeout(retry.connectTimeoutMs);
  s.once(tls ? 'secureConnect' : 'connect', () => {
    connected = true;
    s.setTimeout(retry.readTimeoutMs);
  });
  s.on('timeout', () => {
    s.destroy(connected ? stallError(retry.readTimeoutMs) : timeoutError('connection to the server timed out', retry.connectTimeoutMs));
  });
}

class TimedHttpAgent extends HttpAgent {
  constructor(options: AgentOptions, private readonly retry: RetryPolicy) {
    super(options);
  }
  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    armSocket(socket, this.retry, false);
    return socket;
  }
}

class TimedHttpsAgent extends HttpsAgent {
  constructor(options: HttpsAgentOptions, private readonly retry: RetryPolicy) {
    super(options);
  }
  override createConnection(
    options: RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    armSocket(socket, this.retry, true);
    return socket;
  }
}

/** A socket the proxy agent has connected (tunnel open, TLS done): only the silence limit is left to arm. */
function armConnected(socket: Duplex, retry: RetryPolicy): void {
  if (!('setTimeout' in socket)) return;
  const s = socket as Duplex & { setTimeout(ms: number): void };
  s.setTimeout(retry.readTimeoutMs);
  s.on('timeout', () => s.destroy(stallError(retry.readTimeoutMs)));
}

function makeAgent(endpoint: string, config: AzureStoreConfig): HttpAgent {
  const { retry } = config;
  const ca = trustedCAs(config);
  const secure = new URL(endpoint).protocol === 'https:';
  // Our own agent turns off the SDK's proxy support, so the proxy is ours to apply, with the same
  // rules as for S3 (docs/configuration.md#proxies). The SDK loads the proxy agents' packages anyway.
  const proxy = proxyFor(endpoint, config.proxyEnv ?? {});
  if (proxy) {
    registerProxySecrets(proxy);
    return proxyAgent(secure, proxy.url, { keepAlive: true, maxFreeSockets: 32, ca, onConnected: (s) => armConnected(s, retry) });
  }
  // barman's requests session keeps a pool of 32 connections.
  // `timeout` makes the agent re-arm the silence limit on every reused socket (it resets a socket's
  // timeout to its own option when the socket goes back to the pool) and drop idle pooled sockets.
  const base = { keepAlive: true, maxFreeSockets: 32, scheduling: 'lifo' as const, timeout: retry.readTimeoutMs };
  return secure
    ? // One secure context for every connection: a `ca` list would be parsed again per TLS handshake.
      new TimedHttpsAgent({ ...base, ...(ca ? { secureContext: createSecureContext({ ca }) } : {}) }, retry)
    : new TimedHttpAgent(base, retry);
}

// ---- token credentials, loaded on first use ----------------------------------------------------

/** A TokenCredential that imports @azure/identity and builds the real credential on the first token request. */
class LazyCredential implements TokenCredential {
  private inner?: Promise<TokenCredential>;
  constructor(
    private readonly kind: AzureCredentialKind,
    private readonly retry: RetryPolicy,
    private readonly ca: string[] | undefined,
  ) {}

  getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    this.inner ??= this.load();
    return this.inner.then((c) => c.getToken(scopes, options));
  }

  private async load(): Promise<TokenCredential> {
    const identity = await import('@azure/identity');
    const common = {
      // Managed identity uses this as its own retry count (its delays start at 800 ms).
      retryOptions: { maxRetries: Math.max(0, this.retry.maxAttempts - 1) },
      // The token endpoint is often plain http (IMDS, App Service); TLS settings only apply to https.
      ...(this.ca ? { tlsOptions: { ca: this.ca } } : {}),
    };
    switch (this.kind) {
      case 'azure-cli':
        return new identity.AzureCliCredential(common);
      case 'managed-identity':
        return new identity.ManagedIdentityCredential(common);
      case 'default':
        return new identity.DefaultAzureCredential(common);
    }
  }
}

// ---- error mapping -----------------------------------------------------------------------------

interface ErrorContext {
  /** The blob the request was about (absent for container-level requests). */
  key?: string;
  /** A put with ifNoneMatch: 409/412 mean "already there". */
  conditional?: boolean;
  signal?: AbortSignal;
  /** A read of the blob's data or properties (where a customer-provided key matters); `true` when we sent one. */
  read?: { customerKey: boolean };
}

/** The flag that supplies a customer-provided key, named in messages. */
const CUSTOMER_KEY_FLAG = '--azure-customer-key-file';

const NETWORK_CODES = new Set([
  'REQUEST_SEND_ERROR', 'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ENOTFOUND',
  'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EPROTO', 'TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH', STALL_CODE,
]);

const CREDENTIAL_ERRORS = new Set([
  'CredentialUnavailableError', 'AuthenticationError', 'AggregateAuthenticationError', 'AuthenticationRequiredError',
]);

interface SdkError {
  name?: string;
  message?: string;
  code?: string | number;
  statusCode?: number;
  details?: { errorCode?: string; [k: string]: unknown };
}

/** One line, no query strings (SAS `sig=`), no registered secrets. */
function clean(message: string | undefined): string {
  const first = (message ?? '').split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
  return redact(first.replace(/(\bhttps?:\/\/[^\s?'"]*)\?[^\s'"]*/gi, '$1')).trim();
}

function errorCodeOf(e: SdkError): string | undefined {
  const detail = e.details?.errorCode;
  if (typeof detail === 'string' && detail) return detail;
  return typeof e.code === 'string' ? e.code : undefined;
}

function isNetworkFailure(e: SdkError): boolean {
  const code = typeof e.code === 'string' ? e.code : '';
  if (NETWORK_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('CERT_')) return true;
  const msg = e.message ?? '';
  // RetriableReadableStream gives up on a body cut short with a plain Error.
  if (/received less data than required/i.test(msg)) return true;
  return e.statusCode === undefined && /socket hang up|ECONNRESET|ECONNREFUSED|ETIMEDOUT|certificate/i.test(msg);
}

/**
 * What we keep as `cause`. An SDK RestError carries the request (authorization header, SAS query)
 * and the response; keep only its name, codes and cleaned first message line.
 */
function safeCause(err: unknown): unknown {
  if (typeof err !== 'object' || err === null || !('request' in err || 'response' in err)) return err;
  const e = err as SdkError;
  const copy = new Error(clean(e.message));
  copy.name = e.name ?? 'Error';
  return Object.assign(copy, {
    ...(e.code !== undefined ? { code: e.code } : {}),
    ...(e.statusCode !== undefined ? { statusCode: e.statusCode } : {}),
    ...(e.details?.errorCode ? { errorCode: e.details.errorCode } : {}),
  });
}

/** Turn anything the SDK throws into the project's storage errors. */
function mapAzureError(err: unknown, bucket: string, ctx: ErrorContext = {}): Error {
  if (err instanceof BarmanCloudError) return err;
  if (ctx.signal?.aborted) return ctx.signal.reason instanceof Error ? ctx.signal.reason : (err as Error);
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkError;
  const cause = safeCause(err);
  const status = e.statusCode;
  const code = errorCodeOf(e);
  const where = ctx.key !== undefined ? `${bucket}/${ctx.key}` : bucket;

  if (e.name && CREDENTIAL_ERRORS.has(e.name)) {
    // A chained credential explains each link on its own line: keep them all, on one line.
    const why = (e.message ?? '').split(/\r?\n/).map(clean).filter(Boolean).join(' ').slice(0, 1000);
    return new AccessDeniedError(`Azure credential could not get a token: ${why}`, { cause });
  }
  if (status === undefined && isNetworkFailure(e)) {
    const what = /received less data than required/i.test(e.message ?? '')
      ? 'connection lost during the transfer'
      : clean(e.message) || String(code ?? 'network error');
    return new NetworkError(`Azure Blob Storage unreachable (${where}): ${what}`, { cause });
  }
  if (e.name === 'AbortError') {
    // Not the caller's signal: the transport gave up (socket closed under a streamed body).
    return new NetworkError(`Azure Blob Storage connection lost (${where})`, { cause });
  }
  if (code === 'ContainerNotFound') return new BucketNotFoundError(bucket, { cause });
  if (status === 404 || code === 'BlobNotFound') {
    return ctx.key !== undefined ? new NotFoundError(ctx.key, { cause }) : new BucketNotFoundError(bucket, { cause });
  }
  if (ctx.read && ctx.key !== undefined && (status === 409 || code === 'BlobUsesCustomerSpecifiedEncryption')) {
    // Azure answers 409 to a read of a blob stored with a customer-provided key that lacks it; with a
    // key in hand, a 409 on a read can only be about that key too.
    return new SseCustomerKeyError(ctx.read.customerKey
      ? `cannot read blob ${where} with the key of ${CUSTOMER_KEY_FLAG} (HTTP 409${code ? ` ${code}` : ''}): it was stored with another customer-provided key or without one`
      : `blob ${where} is encrypted with a customer-provided key (CPK): give the key with ${CUSTOMER_KEY_FLAG}`, { cause });
  }
  if (ctx.conditional && ctx.key !== undefined && (status === 409 || status === 412 || code === 'BlobAlreadyExists' || code === 'ConditionNotMet')) {
    return new PreconditionFailedError(ctx.key, { cause });
  }
  const label = [status !== undefined ? `HTTP ${status}` : undefined, code].filter(Boolean).join(' ');
  const text = clean(e.message);
  const detail = `${label}${label && text ? ': ' : ''}${text}` || 'unknown error';
  if (status === 401 || status === 403) {
    return new AccessDeniedError(`Azure Blob Storage refused access to ${where}: ${detail}`, { cause });
  }
  if (status === undefined && e.name === 'RangeError') return new StorageError(`Azure request invalid: ${detail}`, { cause });
  return new StorageError(`Azure Blob Storage error on ${where}: ${detail}`, { cause });
}

// ---- helpers -----------------------------------------------------------------------------------

/** Order of keys as the service sorts them: by UTF-8 bytes. */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function objectEntry(b: BlobItem): ListEntry {
  return {
    kind: 'object',
    key: b.name,
    size: b.properties.contentLength ?? 0,
    ...(b.properties.lastModified ? { lastModified: b.properties.lastModified } : {}),
  };
}

function entryKey(e: ListEntry): string {
  return e.kind === 'object' ? e.key : e.prefix;
}

// ---- the driver --------------------------------------------------------------------------------

export class AzureObjectStore implements ObjectStore {
  readonly provider = 'azure-blob-storage' as const;
  readonly bucket: string;
  readonly maxDeleteBatch = MAX_BATCH;

  private readonly container: ContainerClient;
  private readonly agent: HttpAgent;
  private batchRefused = false;

  /** The customer-provided key for every blob write and read, when configured. */
  private readonly customerProvidedKey?: { encryptionKey: string; encryptionKeySha256: string };

  /**
   * The SDK option carrying the customer-provided key: a new object per call, because the SDK
   * writes into the options it is given (getProperties sets `conditions` on them), and a shared
   * one would carry that into the next put and override its If-None-Match.
   */
  private get cpk(): { customerProvidedKey?: { encryptionKey: string; encryptionKeySha256: string } } {
    return this.customerProvidedKey ? { customerProvidedKey: { ...this.customerProvidedKey } } : {};
  }

  constructor(private readonly config: AzureStoreConfig) {
    this.bucket = config.bucket;
    const key = config.customerKey;
    if (key) this.customerProvidedKey = { encryptionKey: key.toString('base64'), encryptionKeySha256: createHash('sha256').update(key).digest('base64') };
    const auth = config.auth;
    const retry = config.retry;
    const pipeline = (agent: HttpAgent): StoragePipelineOptions & { agent: HttpAgent } => ({
      retryOptions: {
        maxTries: Math.max(1, retry.maxAttempts),
        retryDelayInMs: retry.baseDelayMs,
        maxRetryDelayInMs: retry.maxDelayMs,
        // Sent as the service-side `timeout` (whole seconds); the client side is bounded by the agent.
        tryTimeoutInMs: Math.max(1000, retry.readTimeoutMs),
      },
      keepAliveOptions: { enable: true },
      // Not in StoragePipelineOptions' type, but handed on to core-rest-pipeline, which honours it.
      agent,
    });

    if (auth.kind === 'connection-string') {
      registerSecret(auth.connectionString);
      for (const m of auth.connectionString.matchAll(/(?:AccountKey|SharedAccessSignature)=([^;]+)/gi)) registerSecret(m[1]);
      let probe: ContainerClient;
      try {
        // Built once without options only to learn the endpoint's scheme (no I/O).
        probe = new ContainerClient(auth.connectionString, config.bucket);
      } catch (e) {
        throw new StorageError(`invalid Azure storage connection string: ${clean((e as Error).message)}`);
      }
      this.agent = makeAgent(probe.url, config);
      this.container = new ContainerClient(auth.connectionString, config.bucket, pipeline(this.agent));
      return;
    }

    const accountUrl = config.accountUrl?.replace(/\/+$/, '');
    if (!accountUrl) throw new StorageError(`an Azure account URL is required for ${auth.kind} authentication`);
    const containerUrl = `${accountUrl}/${encodeURIComponent(config.bucket)}`;
    try {
      new URL(containerUrl);
    } catch {
      throw new StorageError(`invalid Azure account URL: ${clean(accountUrl)}`);
    }
    this.agent = makeAgent(containerUrl, config);
    const options = pipeline(this.agent);
    switch (auth.kind) {
      case 'sas': {
        const sas = auth.sasToken.replace(/^\?/, '');
        registerSecret(sas);
        const sig = /(?:^|&)sig=([^&]+)/.exec(sas);
        if (sig?.[1]) {
          registerSecret(sig[1]);
          try {
            registerSecret(decodeURIComponent(sig[1]));
          } catch {
            // not percent-encoded
          }
        }
        this.container = new ContainerClient(`${containerUrl}?${sas}`, new AnonymousCredential(), options);
        break;
      }
      case 'shared-key':
        registerSecret(auth.accountKey);
        this.container = new ContainerClient(
          containerUrl,
          new StorageSharedKeyCredential(auth.accountName, auth.accountKey),
          options,
        );
        break;
      case 'token-credential':
        this.container = new ContainerClient(containerUrl, new LazyCredential(auth.credential, retry, trustedCAs(config)), options);
        break;
    }
  }

  private fail(err: unknown, ctx?: ErrorContext): Error {
    return mapAzureError(err, this.bucket, ctx);
  }

  async testConnectivity(): Promise<ConnectivityResult> {
    // As barman: list the container (first item only). Missing → bucket-missing; any other HTTP
    // error counts as "can't connect" there (HttpResponseError), hence a NetworkError here.
    try {
      await this.container.listBlobsFlat().byPage({ maxPageSize: 1 }).next();
      return 'ok';
    } catch (e) {
      const mapped = this.fail(e);
      if (mapped instanceof BucketNotFoundError) return 'bucket-missing';
      if (mapped instanceof NetworkError) throw mapped;
      throw new NetworkError(mapped.message, { cause: mapped });
    }
  }

  async bucketExists(): Promise<boolean> {
    try {
      return await this.container.exists();
    } catch (e) {
      const mapped = this.fail(e);
      if (!(mapped instanceof AccessDeniedError)) throw mapped;
      // A container SAS may list blobs without being allowed to read the container's properties.
      try {
        await this.container.listBlobsFlat().byPage({ maxPageSize: 1 }).next();
        return true;
      } catch (e2) {
        const m2 = this.fail(e2);
        if (m2 instanceof BucketNotFoundError) return false;
        throw m2;
      }
    }
  }

  async createBucket(): Promise<void> {
    try {
      await this.container.createIfNotExists();
    } catch (e) {
      throw this.fail(e);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const p = await this.container.getBlobClient(key).getProperties(this.cpk);
      return { key, size: p.contentLength ?? 0, ...(p.lastModified ? { lastModified: p.lastModified } : {}) };
    } catch (e) {
      const mapped = this.fail(e, { key, read: { customerKey: this.config.customerKey !== undefined } });
      if (mapped instanceof NotFoundError) return null;
      throw mapped;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const offset = options.start ?? 0;
    let count: number | undefined;
    if (options.end !== undefined) {
      if (options.end < offset) throw new StorageError(`invalid byte range ${offset}-${options.end} for ${key}`);
      count = options.end - offset + 1;
    }
    let body: NodeJS.ReadableStream | undefined;
    try {
      const res = await this.container.getBlobClient(key).download(offset, count, {
        ...this.cpk,
        abortSignal: options.signal,
        // Resume a body cut short from where it stopped, as often as the policy allows retries.
        maxRetryRequests: Math.max(0, this.config.retry.maxAttempts - 1),
      });
      body = res.readableStreamBody;
    } catch (e) {
      throw this.fail(e, { key, signal: options.signal, read: { customerKey: this.config.customerKey !== undefined } });
    }
    if (!body) throw new StorageError(`Azure returned no body for ${this.bucket}/${key}`);
    const src = body as Readable;
    const out = new PassThrough({ highWaterMark: 256 * 1024 });
    src.on('error', (e) => {
      if (!out.destroyed) out.destroy(this.fail(e, { key, signal: options.signal }));
    });
    out.once('close', () => {
      if (!src.readableEnded && !src.destroyed) src.destroy();
    });
    src.pipe(out);
    return out;
  }

  async getBuffer(key: string, options: GetOptions = {}): Promise<Buffer> {
    return readWhole(await this.get(key, options), { key, maxBytes: options.maxBytes });
  }

  async put(key: string, input: PutBody, options: PutOptions = {}): Promise<void> {
    const body = isChunkedBody(input) ? chunkedToBuffer(input) : input;
    const blob = this.container.getBlockBlobClient(key);
    const common = {
      abortSignal: options.signal,
      // Blob index tags: dict(pairs), later duplicates win (docs/format.md#tags).
      ...(options.tags?.length ? { tags: Object.fromEntries(options.tags) } : {}),
      ...(options.ifNoneMatch ? { conditions: { ifNoneMatch: '*' } } : {}),
      ...(this.config.encryptionScope ? { encryptionScope: this.config.encryptionScope } : {}),
      ...this.cpk,
    };
    const blockSize = options.partSize ?? DEFAULT_BLOCK;
    const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
    try {
      if (Buffer.isBuffer(body)) {
        const singlePutMax = options.singlePutMax ?? SINGLE_PUT_MAX;
        if (body.length <= singlePutMax) {
          await blob.upload(body, body.length, common);
        } else {
          await blob.uploadData(body, { ...common, blockSize, concurrency, maxSingleShotSize: singlePutMax });
        }
      } else {
        // Staged blocks of blockSize, committed only once the whole stream has been read: a stream
        // that fails leaves uncommitted blocks (collected by the service), never a committed blob.
        // The SDK does not hand the signal to its block uploads, so an abort ends the source instead.
        const signal = options.signal;
        const onAbort = (): void => {
          body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('upload aborted'));
        };
        if (signal?.aborted) {
          body.destroy();
          throw signal.reason instanceof Error ? signal.reason : new Error('upload aborted');
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
          await blob.uploadStream(body, blockSize, concurrency, common);
        } finally {
          signal?.removeEventListener('abort', onAbort);
        }
      }
    } catch (e) {
      if (!Buffer.isBuffer(body) && !body.destroyed) body.destroy();
      throw this.fail(e, { key, conditional: options.ifNoneMatch === true, signal: options.signal });
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    const pageOptions = options.pageSize ? { maxPageSize: options.pageSize } : {};
    const listOptions = prefix ? { prefix } : {};
    // The SDK asks for the next page while its marker is not empty, once we ask for that page.
    const chain = new PageChain(`Azure list ${prefix || '/'}`);
    try {
      if (options.delimiter) {
        const pages = this.container.listBlobsByHierarchy(options.delimiter, listOptions).byPage(pageOptions);
        for await (const page of pages) {
          const entries: ListEntry[] = [
            ...(page.segment.blobPrefixes ?? []).map((p): ListEntry => ({ kind: 'prefix', prefix: p.name })),
            ...page.segment.blobItems.map(objectEntry),
          ];
          entries.sort((a, b) => byteCompare(entryKey(a), entryKey(b)));
          yield* entries;
          chain.next(Boolean(page.continuationToken), page.continuationToken);
        }
      } else {
        for await (const page of this.container.listBlobsFlat(listOptions).byPage(pageOptions)) {
          yield* page.segment.blobItems.map(objectEntry);
          chain.next(Boolean(page.continuationToken), page.continuationToken);
        }
      }
    } catch (e) {
      throw this.fail(e);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.container.getBlobClient(key).deleteIfExists();
    } catch (e) {
      throw this.fail(e, { key });
    }
  }

  async deleteMany(keys: string[], batchSize?: number): Promise<DeleteResult> {
    const size = Math.max(1, Math.min(batchSize ?? MAX_BATCH, MAX_BATCH));
    const result: DeleteResult = { deleted: [], errors: [] };
    for (let i = 0; i < keys.length; i += size) {
      const chunk = keys.slice(i, i + size);
      if (!this.batchRefused && (await this.deleteBatch(chunk, result))) continue;
      await this.deleteOneByOne(chunk, result);
    }
    return result;
  }

  /** One Blob Batch request; false when the service refused the batch itself. */
  private async deleteBatch(keys: string[], result: DeleteResult): Promise<boolean> {
    let res;
    try {
      const clients = keys.map((k) => this.container.getBlobClient(k));
      res = await this.container.getBlobBatchClient().deleteBlobs(clients);
    } catch (e) {
      const mapped = this.fail(e);
      if (mapped instanceof NetworkError || mapped instanceof BucketNotFoundError) throw mapped;
      log.debug(`Azure batch delete refused (${mapped.message}); deleting blobs one by one`);
      this.batchRefused = true;
      return false;
    }
    keys.forEach((key, i) => {
      const sub = res.subResponses[i];
      if (!sub) {
        result.errors.push({ key, message: 'no response for this blob in the batch' });
      } else if ((sub.status >= 200 && sub.status < 300) || (sub.status === 404 && sub.errorCode !== 'ContainerNotFound')) {
        result.deleted.push(key);
      } else {
        const text = clean(sub.statusMessage);
        result.errors.push({ key, message: [sub.errorCode ?? `HTTP ${sub.status}`, text].filter(Boolean).join(': ') });
      }
    });
    return true;
  }

  private async deleteOneByOne(keys: string[], result: DeleteResult): Promise<void> {
    const failed = new Map<string, string>();
    const done = new Set<string>();
    let fatal: Error | undefined;
    await mapBounded(keys, FALLBACK_DELETE_CONCURRENCY, async (key) => {
      if (fatal) return;
      try {
        await this.container.getBlobClient(key).deleteIfExists();
        done.add(key);
      } catch (e) {
        const mapped = this.fail(e, { key });
        if (mapped instanceof NetworkError || mapped instanceof BucketNotFoundError) fatal ??= mapped;
        else failed.set(key, mapped.message);
      }
    });
    if (fatal) throw fatal;
    for (const key of keys) {
      if (done.has(key)) result.deleted.push(key);
      else if (failed.has(key)) result.errors.push({ key, message: failed.get(key)! });
    }
  }

  async getTags(key: string): Promise<Tag[]> {
    try {
      const res = await this.container.getBlobClient(key).getTags();
      return Object.entries(res.tags);
    } catch (e) {
      throw this.fail(e, { key });
    }
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

// The S3 driver (aws-s3): AWS SDK v3 client, multipart uploads through multipart.ts, our retry/timeout policy
// and one error mapping onto the storage error classes. Loaded only through openObjectStore().
import { PassThrough, Readable } from 'node:stream';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  S3Client,
  type BucketLocationConstraint,
  type PutObjectCommandInput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
  createCredentialChain, fromContainerMetadata, fromIni, fromInstanceMetadata, fromNodeProviderChain, fromTokenFile,
} from '@aws-sdk/credential-providers';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { proxyAgent } from '../proxy-agent.js';
import { ContainerCredentialsProvider } from './container-credentials.js';
import {
  AccessDeniedError,
  BarmanCloudError,
  BucketNotFoundError,
  NetworkError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
} from '../../errors.js';
import { isEnabled, log, redact, registerSecret } from '../../log.js';
import { mapBounded } from '../../concurrency.js';
import { abortErrorOf, uploadStream } from './multipart.js';
import type { RetryPolicy } from '../config.js';
import type { S3StoreConfig } from './config.js';
import { backoffDelayMs, mayRetryAfter } from '../retry.js';
import {
  ACCESS_CODES, OBJECT_404_CODES, contentMd5, encodeTagging, networkFailure, networkMessage, notAListing, notStored, oneLine, rangeHeader,
  sseCustomerKeyError, wantsContentMd5, type SdkErrorLike,
} from './s3-common.js';
export { encodeTagging, networkMessage } from './s3-common.js';
import type {
  ConnectivityResult,
  DeleteResult,
  GetOptions,
  IncompleteUpload,
  ListEntry,
  ListOptions,
  ObjectInfo,
  ObjectLockState,
  ObjectStore,
  PutOptions,
  Tag,
} from '../types.js';
import { chunkedToBuffer, isChunkedBody, readWhole, type PutBody } from '../body.js';
import { PageChain } from '../pages.js';
import { commonPrefix, justBefore } from './key-order.js';

const MAX_DELETE_BATCH = 1000;
/** Pages of 1,000 keys the check after a quiet DeleteObjects reads before it starts again just before the next key of the batch. */
const CHECK_PAGES_BEFORE_SEEK = 4;
/** DeleteObjects requests one deleteMany() keeps in flight. */
const DELETE_BATCHES_IN_FLIGHT = 4;
const MAX_SOCKETS = 50;

// ---- the SDK's Node-version notice ---------------------------------------------------------------
// @aws-sdk/core announces, once per process through process.emitWarning(), that future releases
// will need Node 22. Node prints that on stderr, which callers (PostgreSQL, CNPG) read. Drop exactly
// that warning; every other warning reaches Node's normal handling untouched. The filter stays in
// place because the SDK may build nested clients (STS for web identity, SSO) lazily, later on.
const FILTER_INSTALLED = Symbol.for('barman-cloud-ts.sdkNodeVersionWarningFilter');

export function isSdkNodeVersionWarning(warning: unknown): boolean {
  const text =
    typeof warning === 'string' ? warning : warning instanceof Error ? `${warning.name}: ${warning.message}` : '';
  return text.includes('NodeVersionSupportWarning') && text.includes('AWS SDK for JavaScript');
}

function installSdkWarningFilter(): void {
  const proc = process as NodeJS.Process & { [FILTER_INSTALLED]?: true };
  if (proc[FILTER_INSTALLED]) return;
  proc[FILTER_INSTALLED] = true;
  const original = process.emitWarning;
  const filtered = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    if (isSdkNodeVersionWarning(warning)) return;
    (original as (...args: unknown[]) => void).call(process, warning, ...rest);
  };
  process.emitWarning = filtered as typeof process.emitWarning;
}

installSdkWarningFilter();

// ---- error mapping -------------------------------------------------------------------------------

export interface S3ErrorContext {
  bucket: string;
  /** Endpoint named in network errors. */
  endpoint: string;
  /** What was being done, for messages ("get", "list", …). */
  op: string;
  /** Object key for object operations; absent for bucket operations. */
  key?: string;
  /** Whether requests carry an SSE-C key (a refused read then names the key). */
  sseCustomerKey?: boolean;
  /** The proxy requests go through, as shown in messages (no credentials). */
  proxy?: string;
}

/**
 * The one place an SDK (or transport) error becomes one of our storage errors. Messages are one line,
 * carry no credential (the SDK never puts keys in them, and redact() strips anything registered).
 * An AbortError (the caller's own signal) is returned unchanged.
 */
export function mapS3Error(err: unknown, ctx: S3ErrorContext): Error {
  if (err instanceof BarmanCloudError) return err;
  if (!err || typeof err !== 'object') return new StorageError(`S3 ${ctx.op} failed: ${String(err)}`);
  const e = err as SdkErrorLike;
  if (e.name === 'AbortError') return err as Error;
  const status = e.$metadata?.httpStatusCode;
  const code = e.Code ?? e.name ?? '';
  const message = oneLine(redact(e.message ?? ''));
  const cause = { cause: err };

  if (status === undefined) {
    const net = networkFailure(err);
    if (net) return new NetworkError(networkMessage(net.kind, ctx.endpoint, ctx.proxy ? `${net.detail}; through the proxy ${ctx.proxy}` : net.detail), cause);
    if (code === 'CredentialsProviderError') {
      return new AccessDeniedError(`No usable AWS credentials: ${message}`, cause);
    }
  }
  if (code === 'NoSuchBucket') return new BucketNotFoundError(ctx.bucket, cause);
  if (ctx.key !== undefined && (code === 'NoSuchKey' || (status === 404 && OBJECT_404_CODES.has(code)))) {
    return new NotFoundError(ctx.key, cause);
  }
  if (ctx.key !== undefined && status !== undefined && (ctx.op === 'head' || ctx.op === 'get')) {
    const sse = sseCustomerKeyError(status, ctx.key, ctx.sseCustomerKey === true);
    if (sse) return Object.assign(sse, cause);
  }
  if (ctx.key === undefined && status === 404 && OBJECT_404_CODES.has(code)) {
    return new BucketNotFoundError(ctx.bucket, cause);
  }
  if (status === 412 || code === 'PreconditionFailed') return new PreconditionFailedError(ctx.key ?? '', cause);
  if (status === 401 || status === 403 || ACCESS_CODES.has(code)) {
    return new AccessDeniedError(`Access denied (${code || `HTTP ${status}`}): ${message || 'no detail'}`, cause);
  }
  const generic = !code || code === 'Error' || code === 'UnknownError';
  let text = message && message !== 'UnknownError' ? message : '';
  if (!generic && !text.startsWith(code)) text = text ? `${code}: ${text}` : code;
  if (!text) text = `S3 ${ctx.op} failed`;
  if (status !== undefined && status >= 300) text += ` (HTTP ${status})`;
  return new StorageError(text, cause);
}

// ---- helpers -------------------------------------------------------------------------------------

/** UTF-8 byte order, the order S3 lists keys in. */
function byKey(a: { sort: Buffer }, b: { sort: Buffer }): number {
  return Buffer.compare(a.sort, b.sort);
}

type RetryStrategyV2 = Extract<NonNullable<S3ClientConfig['retryStrategy']>, { acquireInitialRetryToken: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>;

/**
 * Our RetryPolicy as an SDK retry strategy: maxAttempts in all, full-jitter exponential back-off,
 * retrying what the SDK classifies as transient (network errors, connect timeouts, 500/502/503/504)
 * or throttling, but never a stall (retry.ts says why). Streaming request bodies are never retried by the SDK; we only send Buffers.
 */
function retryStrategyFor(policy: RetryPolicy): RetryStrategyV2 {
  const token = (count: number, delay: number): RetryToken => ({
    getRetryCount: () => count,
    getRetryDelay: () => delay,
  });
  return {
    acquireInitialRetryToken: async () => token(0, 0),
    refreshRetryTokenForRetry: async (previous, info) => {
      const attemptsMade = previous.getRetryCount() + 1;
      const retryable = info.errorType === 'TRANSIENT' || info.errorType === 'THROTTLING';
      const failure = networkFailure(info.error)?.kind === 'timeout' ? 'stall' : 'transient';
      if (!retryable || !mayRetryAfter(policy, attemptsMade, failure)) throw new Error('No retry token available');
      const delay = backoffDelayMs(policy, attemptsMade);
      const e = info.error as SdkErrorLike | undefined;
      log.debug(
        `S3 request failed (${e?.name ?? 'error'}${e?.$metadata?.httpStatusCode ? ` HTTP ${e.$metadata.httpStatusCode}` : ''}), ` +
          `retry ${attemptsMade}/${policy.maxAttempts - 1} in ${delay} ms`,
      );
      return token(attemptsMade, delay);
    },
    recordSuccess: () => {},
  };
}

/** SDK log lines go to our debug level only (never JSON dumps of request inputs, which hold bodies). */
function sdkLogger() {
  const forward =
    (level: string) =>
    (...content: unknown[]) => {
      const text = content.filter((c) => typeof c === 'string').join(' ');
      if (text) log.debug(`aws-sdk ${level}: ${oneLine(text)}`);
    };
  const ignore = () => {};
  return { trace: ignore, debug: ignore, info: ignore, warn: forward('warning'), error: forward('error') };
}

/** Map the SDK's credential-feature markers onto a readable source name. */
function describeCredentialSource(features: Record<string, unknown>): string {
  const has = (name: string) => Object.prototype.hasOwnProperty.call(features, name);
  const any = (re: RegExp) => Object.keys(features).some((k) => re.test(k));
  if (has('CREDENTIALS_CODE')) return 'static';
  if (any(/WEB_ID/)) return 'web-identity';
  if (any(/SSO/)) return 'sso';
  if (any(/PROCESS/)) return 'process';
  if (any(/^CREDENTIALS_PROFILE/)) return 'profile';
  if (has('CREDENTIALS_ENV_VARS')) return 'env';
  if (has('CREDENTIALS_HTTP')) return 'container';
  if (has('CREDENTIALS_IMDS')) return 'instance-metadata';
  return 'unknown';
}

// ---- the driver ----------------------------------------------------------------------------------

export class S3ObjectStore implements ObjectStore {
  readonly provider = 'aws-s3' as const;
  readonly bucket: string;
  readonly maxDeleteBatch = MAX_DELETE_BATCH;
  /** The SDK client (exposed for tests and diagnostics). */
  readonly client: S3Client;
  /** Endpoint as named in messages. */
  readonly endpoint: string;
  private readonly config: S3StoreConfig;
  /** SSE-C parameters for every command that reads or writes an object body (HEAD included). */
  private readonly sseCustomer?: { SSECustomerAlgorithm: 'AES256'; SSECustomerKey: string };
  /** Set once the bucket refused an upload for want of Content-MD5: every later upload sends it. */
  private sendContentMd5 = false;

  /** `container`: the lean client's provider, shared so that one process asks the endpoint once. */
  constructor(config: S3StoreConfig, container?: ContainerCredentialsProvider) {
    this.config = config;
    this.bucket = config.bucket;
    if (config.sseCustomerKey) {
      // Base64, which the SDK sends as it is and hashes for the key-MD5 header.
      const base64 = config.sseCustomerKey.toString('base64');
      registerSecret(base64);
      this.sseCustomer = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: base64 };
    }
    const region = config.region ?? 'us-east-1';
    this.endpoint = config.endpointUrl ?? `https://s3.${region}.amazonaws.com`;
    const retry = config.retry;
    const logger = sdkLogger();

    // Through a proxy (config.proxy), an agent that tunnels (https, CONNECT) or forwards (http);
    // the CA still checks the endpoint's certificate at the end of the tunnel.
    const agents = () => {
      const ca = config.ca ? { ca: [...rootCertificates, config.ca] } : {};
      const proxy = config.proxy?.url;
      return {
        httpAgent: proxy
          ? proxyAgent(false, proxy, { keepAlive: true, maxSockets: MAX_SOCKETS })
          : new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        httpsAgent: proxy
          ? proxyAgent(true, proxy, { keepAlive: true, maxSockets: MAX_SOCKETS, ...ca })
          : new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...ca }),
      };
    };
    const handlerOptions = () => ({
      connectionTimeout: retry.connectTimeoutMs,
      // socketTimeout is the inactivity limit on an open request (barman's --read-timeout). The
      // handler's requestTimeout is a whole-request limit, which a long upload must not hit.
      socketTimeout: retry.readTimeoutMs,
      // Agent instances, not options: given options, the handler sends each `Expect: 100-continue`
      // request (every UploadPart) through a fresh agent of its own, without our CA.
      ...agents(),
      logger,
    });

    if (config.credentials) {
      registerSecret(config.credentials.secretAccessKey);
      registerSecret(config.credentials.sessionToken);
    }
    const clientConfig = {
      region,
      logger,
      ...(config.ca || config.proxy ? { requestHandler: new NodeHttpHandler(handlerOptions()) } : {}),
    };
    const credentials: S3ClientConfig['credentials'] = config.credentials
      ? { ...config.credentials }
      : config.containerCredentials
        ? (container ?? new ContainerCredentialsProvider(config.containerCredentials, config.retry)).provider
      : config.inheritFromIamRole
        ? // s3Credentials.inheritFromIAMRole: the ambient role only, never static keys from the
          // environment: web identity (IRSA), then container, then instance metadata.
          createCredentialChain(
            fromTokenFile({ clientConfig }),
            fromContainerMetadata({ maxRetries: 1 }),
            fromInstanceMetadata({ maxRetries: 1 }),
          )
        : config.profileOverEnvKeys
          ? // A named profile while environment keys are set: the profile only, as boto3 (the
            // default chain would do the same, with a multi-line warning on stderr).
            fromIni({ profile: config.profile, clientConfig })
          : // The SDK default chain: env keys, SSO, web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE),
            // shared files with AWS_PROFILE or the given profile, credential_process, container and
            // instance metadata. Its STS/SSO clients get our CA too.
            fromNodeProviderChain({ ...(config.profile ? { profile: config.profile } : {}), clientConfig });

    const toSdk = (v: 'when_supported' | 'when_required' | undefined) =>
      v === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';

    this.client = new S3Client({
      region,
      ...(config.endpointUrl ? { endpoint: config.endpointUrl, forcePathStyle: true } : {}),
      ...(config.profile ? { profile: config.profile } : {}),
      credentials,
      // S3-compatible stores often reject the flexible checksums; only send them where required.
      requestChecksumCalculation: toSdk(config.requestChecksumCalculation),
      responseChecksumValidation: toSdk(config.responseChecksumValidation),
      maxAttempts: Math.max(1, retry.maxAttempts),
      retryStrategy: retryStrategyFor(retry),
      requestHandler: new NodeHttpHandler(handlerOptions()),
      // boto3 follows a 301 to the bucket's region by itself; barman users rely on that.
      followRegionRedirects: true,
      // Through http-proxy-agent, a request with `Expect: 100-continue` sent its body twice and the
      // proxy answered 400 (seen with a 16 MiB PutObject): no such header through a proxy.
      ...(config.proxy ? { expectContinueHeader: false } : {}),
      logger,
    });
    this.installDebugLog();
    this.installDeleteObjectsMd5();
    this.installDeleteResultCheck();
  }

  /**
   * A 2xx answer to DeleteObjects must be a DeleteResult: a quiet one names no deleted key, so a web
   * page answered with 200 would read as a deletion without failures (docs/format.md#result-answers).
   * The SDK's parser keeps no root element's name, so the raw answer is looked at here, before it.
   */
  private installDeleteResultCheck(): void {
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        const res = result.response as { statusCode?: number; body?: unknown } | undefined;
        if (context.commandName !== 'DeleteObjectsCommand' || !res || !res.statusCode || res.statusCode < 200 || res.statusCode >= 300) return result;
        const body = res.body instanceof Uint8Array ? Buffer.from(res.body) : res.body ? await readWhole(res.body as AsyncIterable<unknown>) : Buffer.alloc(0);
        res.body = body;
        if (!DELETE_RESULT.test(body.subarray(0, 1024).toString('utf8'))) {
          throw new StorageError(noneDeleted(res.statusCode, 'is not a DeleteResult and names none of the objects'));
        }
        return result;
      },
      { step: 'deserialize', name: 'barmanCloudDeleteResult', priority: 'low' },
    );
  }

  /**
   * DeleteObjects also carries Content-MD5, as SDKs sent it before 2025: the SDK now sends only a
   * CRC checksum there, which stores of that era do not know (they answer MissingContentMD5 and
   * every key would then cost a request of its own). S3 accepts both headers together.
   */
  private installDeleteObjectsMd5(): void {
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const req = args.request as { headers?: Record<string, string>; body?: unknown } | undefined;
        if (context.commandName === 'DeleteObjectsCommand' && req?.headers && (typeof req.body === 'string' || req.body instanceof Uint8Array)) {
          req.headers['content-md5'] = contentMd5([typeof req.body === 'string' ? Buffer.from(req.body) : req.body]);
        }
        return next(args);
      },
      { step: 'build', name: 'barmanCloudDeleteObjectsMd5', priority: 'low' },
    );
  }

  /** One debug line per HTTP attempt: command, method, path, status, time. */
  private installDebugLog(): void {
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (!isEnabled('DEBUG')) return next(args);
        const req = args.request as { method?: string; path?: string } | undefined;
        const what = `S3 ${context.commandName ?? 'request'} ${req?.method ?? ''} ${req?.path ?? ''}`;
        const started = Date.now();
        try {
          const result = await next(args);
          const res = result.response as { statusCode?: number } | undefined;
          log.debug(`${what} -> ${res?.statusCode ?? '?'} (${Date.now() - started} ms)`);
          return result;
        } catch (err) {
          const e = err as SdkErrorLike;
          log.debug(`${what} -> ${e?.code ?? e?.name ?? 'error'} (${Date.now() - started} ms)`);
          throw err;
        }
      },
      { step: 'deserialize', name: 'barmanCloudDebugLog', priority: 'low' },
    );
  }

  private fail(err: unknown, op: string, key?: string): Error {
    const mapped = mapS3Error(err, { bucket: this.bucket, endpoint: this.endpoint, op, key, sseCustomerKey: this.sseCustomer !== undefined, proxy: this.config.proxy?.shown });
    if (mapped !== err) log.debug(`S3 ${op}${key !== undefined ? ` ${key}` : ''} failed: ${mapped.name}: ${mapped.message}`);
    return mapped;
  }

  private async call<T>(op: string, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.fail(err, op, key);
    }
  }

  /** Where the credentials in use come from ('static', 'env', 'profile', 'web-identity', …). */
  async credentialSource(): Promise<string> {
    const provider = this.client.config.credentials;
    const creds = (await provider()) as { $source?: Record<string, unknown> };
    return describeCredentialSource(creds.$source ?? {});
  }

  // ---- bucket ----

  async testConnectivity(): Promise<ConnectivityResult> {
    return (await this.bucketExists()) ? 'ok' : 'bucket-missing';
  }

  async bucketExists(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (err) {
      const mapped = this.fail(err, 'head-bucket');
      if (mapped instanceof BucketNotFoundError) return false;
      throw mapped;
    }
  }

  async createBucket(): Promise<void> {
    const region = this.config.region ?? 'us-east-1';
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          ...(region !== 'us-east-1'
            ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }
            : {}),
        }),
      );
    } catch (err) {
      if ((err as SdkErrorLike)?.name === 'BucketAlreadyOwnedByYou') return;
      throw this.fail(err, 'create-bucket');
    }
  }

  // ---- objects ----

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ...this.sseCustomer }));
      return { key, size: out.ContentLength ?? 0, ...(out.LastModified ? { lastModified: out.LastModified } : {}) };
    } catch (err) {
      const mapped = this.fail(err, 'head', key);
      if (mapped instanceof NotFoundError) return null;
      throw mapped;
    }
  }

  async objectLock(key: string): Promise<ObjectLockState> {
    const out = await this.call('head', key, () =>
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ...this.sseCustomer })));
    return {
      ...(out.ObjectLockRetainUntilDate ? { retainUntil: out.ObjectLockRetainUntilDate } : {}),
      legalHold: out.ObjectLockLegalHoldStatus === 'ON',
    };
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const range = rangeHeader(options);
    const out = await this.call('get', key, () =>
      this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...this.sseCustomer, ...(range ? { Range: range } : {}) }),
        options.signal ? { abortSignal: options.signal } : {},
      ),
    );
    const body = out.Body as unknown;
    if (!(body instanceof Readable)) throw new StorageError(`S3 get ${key}: the response has no readable body`);
    return this.wrapBody(body, key);
  }

  /**
   * Hand the caller a stream whose errors are already our errors (a dropped connection becomes a
   * NetworkError), and that releases the socket when the caller stops reading early.
   */
  private wrapBody(body: Readable, key: string): Readable {
    const out = new PassThrough();
    body.once('error', (err) => {
      if (!out.destroyed) out.destroy(this.fail(err, 'get', key));
    });
    body.once('close', () => {
      if (!body.readableEnded && !out.destroyed) {
        out.destroy(new NetworkError(networkMessage('closed', this.endpoint, `stream ended early while reading ${key}`)));
      }
    });
    out.once('close', () => {
      if (!body.destroyed) body.destroy();
    });
    body.pipe(out);
    return out;
  }

  async getBuffer(key: string, options: GetOptions = {}): Promise<Buffer> {
    return readWhole(await this.get(key, options), { key, maxBytes: options.maxBytes });
  }

  async put(key: string, input: PutBody, options: PutOptions = {}): Promise<void> {
    const body = isChunkedBody(input) ? chunkedToBuffer(input) : input;
    const { signal } = options;
    if (signal?.aborted) throw abortErrorOf(signal);
    const common: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: key,
      ...(options.tags && options.tags.length > 0 ? { Tagging: encodeTagging(options.tags) } : {}),
      ...(this.config.serverSideEncryption ? { ServerSideEncryption: this.config.serverSideEncryption } : {}),
      ...(this.config.sseKmsKeyId ? { SSEKMSKeyId: this.config.sseKmsKeyId } : {}),
      ...this.sseCustomer,
      // Conditional write. moto 5.2 honours it on PutObject and CompleteMultipartUpload, as S3 does.
      ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
    };
    if (Buffer.isBuffer(body)) {
      await this.call('put', key, () => this.putObject(key, common, body, signal ? { abortSignal: signal } : {}));
      return;
    }
    await this.putStream(key, body, options, common);
  }

  /** One PutObject; an answer without an ETag stored nothing we know of (docs/format.md#listing-answers). */
  private async putObject(key: string, common: PutObjectCommandInput, data: Buffer, sendOptions: { abortSignal?: AbortSignal }): Promise<void> {
    const out = await this.withContentMd5(data, (md5) => this.client.send(new PutObjectCommand({ ...common, Body: data, ContentLength: data.length, ...md5 }), sendOptions));
    if (!out.ETag) throw notStored('put', key, out.$metadata.httpStatusCode);
  }

  /**
   * An upload, sent again once with Content-MD5 when the bucket refuses it for want of one (Object
   * Lock; the SDK sends no checksum on uploads unless AWS_REQUEST_CHECKSUM_CALCULATION says so).
   * From then on every upload of this process sends it (docs/configuration.md#object-lock-buckets).
   */
  private async withContentMd5<T>(body: Buffer, upload: (md5: { ContentMD5?: string }) => Promise<T>): Promise<T> {
    if (this.sendContentMd5) return upload({ ContentMD5: contentMd5([body]) });
    try {
      return await upload({});
    } catch (err) {
      const e = err as SdkErrorLike;
      if (this.sendContentMd5 || !wantsContentMd5(e?.Code ?? e?.name ?? '', e?.message ?? '')) throw err;
      log.debug('The bucket wants Content-MD5 on uploads (Object Lock): sending it from now on');
      this.sendContentMd5 = true;
      return upload({ ContentMD5: contentMd5([body]) });
    }
  }

  /** A stream: the shared part uploader (multipart.ts) with SDK requests. */
  private async putStream(key: string, body: Readable, options: PutOptions, common: PutObjectCommandInput): Promise<void> {
    const sendOptions = options.signal ? { abortSignal: options.signal } : {};
    await uploadStream(body, options, {
      putObject: (data) => this.putObject(key, common, data, sendOptions),
      create: async () => {
        // Without the caller's signal (MultipartCalls.create).
        const r = await this.client.send(new CreateMultipartUploadCommand({ ...common, ContentType: 'application/octet-stream' }));
        if (!r.UploadId) throw new StorageError(`S3 create-multipart-upload ${key}: no upload id in the answer`);
        return r.UploadId;
      },
      uploadPart: async (uploadId, partNumber, data) => {
        const r = await this.withContentMd5(data, (md5) => this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber,
            Body: data, ContentLength: data.length, ...this.sseCustomer, ...md5,
          }),
          sendOptions,
        ));
        return r.ETag ?? '';
      },
      complete: async (uploadId, parts) => {
        // The SDK fails on an <Error> sent with 200; a web page answered with 200 parses as a
        // result without the ETag every real one carries (docs/format.md#result-answers).
        const r = await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts }, ...this.sseCustomer,
            ...(common.IfNoneMatch ? { IfNoneMatch: common.IfNoneMatch } : {}),
          }),
          sendOptions,
        );
        // (RGW 16.2 sends it empty after streamed parts: present is what counts)
        if (r.ETag === undefined) throw notStored('complete-multipart-upload', key, r.$metadata.httpStatusCode);
      },
      abort: (uploadId) => this.abortUpload(key, uploadId),
    }, (err) => this.fail(err, 'put', key));
  }

  async *incompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    const chain = new PageChain('S3 list-multipart-uploads');
    for (;;) {
      const out = await this.call('list-multipart-uploads', undefined, () => this.client.send(new ListMultipartUploadsCommand({
        Bucket: this.bucket, Prefix: prefix, ...(keyMarker ? { KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker } : {}),
      })));
      for (const u of out.Uploads ?? []) {
        if (u.Key && u.UploadId) yield { key: u.Key, uploadId: u.UploadId, ...(u.Initiated ? { initiated: u.Initiated } : {}) };
      }
      // The two markers together are the next page's token (docs/format.md#listing-pages).
      if (!chain.next(out.IsTruncated === true, out.NextKeyMarker && `${out.NextKeyMarker}\n${out.NextUploadIdMarker ?? ''}`)) return;
      [keyMarker, uploadIdMarker] = [out.NextKeyMarker, out.NextUploadIdMarker];
    }
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    await this.abortUpload(upload.key, upload.uploadId);
  }

  /** Abort an incomplete multipart upload; a failure to abort is logged with the upload id. */
  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      log.debug(`S3 aborted incomplete multipart upload of ${key}`);
    } catch (err) {
      if ((err as SdkErrorLike)?.name === 'NoSuchUpload') return;
      const mapped = this.fail(err, 'abort-multipart-upload', key);
      log.warning(`Could not abort the incomplete multipart upload of ${key} (upload id ${uploadId}): ${mapped.message}`);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    let token: string | undefined;
    const chain = new PageChain('S3 list');
    do {
      const page = await this.call('list', undefined, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            ...(prefix ? { Prefix: prefix } : {}),
            ...(options.delimiter ? { Delimiter: options.delimiter } : {}),
            ...(options.pageSize ? { MaxKeys: options.pageSize } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      if (page.IsTruncated === undefined) throw notAListing(page.$metadata.httpStatusCode, '');
      const entries: { sort: Buffer; entry: ListEntry }[] = [];
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix !== undefined) entries.push({ sort: Buffer.from(p.Prefix), entry: { kind: 'prefix', prefix: p.Prefix } });
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        entries.push({
          sort: Buffer.from(o.Key),
          entry: { kind: 'object', key: o.Key, size: o.Size ?? 0, ...(o.LastModified ? { lastModified: o.LastModified } : {}) },
        });
      }
      entries.sort(byKey);
      for (const { entry } of entries) yield entry;
      token = chain.next(page.IsTruncated === true, page.NextContinuationToken);
    } while (token);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      const mapped = this.fail(err, 'delete', key);
      if (mapped instanceof NotFoundError) return;
      throw mapped;
    }
  }

  async deleteMany(keys: string[], batchSize?: number): Promise<DeleteResult> {
    const size = Math.max(1, Math.min(Math.floor(batchSize ?? MAX_DELETE_BATCH), MAX_DELETE_BATCH));
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += size) batches.push(keys.slice(i, i + size));
    // A few batches in flight: a server may spend half a second on one (RGW: ~0.5 s per 1,000 keys).
    // No further batch starts after a failed request.
    const failures = await mapBounded(batches, DELETE_BATCHES_IN_FLIGHT, (batch) => this.deleteBatch(batch));
    const result: DeleteResult = { deleted: [], errors: [] };
    batches.forEach((batch, i) => {
      const failedKeys = new Set(failures[i]!.map((f) => f.key));
      for (const key of batch) if (!failedKeys.has(key)) result.deleted.push(key);
      result.errors.push(...failures[i]!);
    });
    return result;
  }

  /** One DeleteObjects request (or one DELETE per key where the store refuses it): the keys that failed. */
  private async deleteBatch(batch: string[]): Promise<{ key: string; message: string }[]> {
    let failed: { key: string; message: string }[];
    try {
      // A directory bucket lists neither in order nor from a given key: there the answer must name each.
      if (isDirectoryBucket(this.bucket)) return await this.deleteNamed(batch);
      // Quiet, then a listing must show that none of the keys is left (docs/format.md#result-answers).
      failed = (await this.sendDelete(batch, true)).failed;
    } catch (err) {
      if (!refusesBulkDelete(err)) throw this.fail(err, 'delete-objects');
      log.debug(`S3 bulk delete refused (${(err as SdkErrorLike).name}); deleting ${batch.length} objects one by one`);
      const failed: { key: string; message: string }[] = [];
      for (const key of batch) {
        try {
          await this.delete(key);
        } catch (e) {
          if (e instanceof NetworkError || e instanceof BucketNotFoundError) throw e;
          failed.push({ key, message: (e as Error).message });
        }
      }
      return failed;
    }
    const named = new Set(failed.map((f) => f.key));
    const left = (await this.stillListed(batch)).filter((key) => !named.has(key));
    if (left.length === 0) return failed;
    // A store whose listings lag behind its deletions shows keys that are gone: those are asked
    // for again, not quietly, and count as deleted only where that answer names them.
    log.debug(`S3 delete-objects: ${left.length} of ${batch.length} objects still listed after the request; deleting them again, not quietly`);
    try {
      return [...failed, ...(await this.deleteNamed(left))];
    } catch (err) {
      throw this.fail(err, 'delete-objects');
    }
  }

  /** A DeleteObjects request whose answer must name every key as deleted (or missing): the keys that failed. */
  private async deleteNamed(keys: string[]): Promise<{ key: string; message: string }[]> {
    const { failed, answered, status } = await this.sendDelete(keys, false);
    if (answered.size === 0) throw new StorageError(noneDeleted(status, 'names none of the objects'));
    return [...failed, ...keys.filter((key) => !answered.has(key)).map((key) => ({ key, message: 'the DeleteObjects answer does not name this object' }))];
  }

  /** One DeleteObjects request: the keys its answer names (deleted or failed) and those that failed. */
  private async sendDelete(keys: string[], quiet: boolean): Promise<{ failed: { key: string; message: string }[]; answered: Set<string>; status?: number }> {
    const out = await this.client.send(
      new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: quiet } }),
    );
    // (an answer that is not a DeleteResult at all was refused by installDeleteResultCheck)
    const answered = new Set<string>();
    for (const d of out.Deleted ?? []) if (d.Key !== undefined) answered.add(d.Key);
    const failed = (out.Errors ?? [])
      .filter((e) => e.Key !== undefined && (answered.add(e.Key), e.Code !== 'NoSuchKey'))
      .map((e) => ({ key: e.Key as string, message: oneLine(`${e.Code ?? 'Error'}: ${e.Message ?? ''}`) }));
    return { failed, answered, status: out.$metadata.httpStatusCode };
  }

  /**
   * The keys of `batch` that a listing shows after their deletion (docs/format.md#result-answers).
   * A listing within the keys' common prefix starts just before the smallest and goes on to the
   * first key past the largest, or to its end: one key in the common case, where the batch was a
   * run of the listing. Where more than a few pages lie between two of the batch's keys, it starts
   * again just before the next one not yet passed, so the requests are bounded by the batch's size
   * and not by what the store holds between its keys.
   */
  private async stillListed(batch: string[]): Promise<string[]> {
    const sorted = batch.map((key) => Buffer.from(key)).sort(Buffer.compare);
    const last = sorted.at(-1)!;
    const wanted = new Set(batch);
    const prefix = commonPrefix(batch);
    const left = new Set<string>();
    let next = 0; // the smallest batch key the listing has not passed
    while (next < sorted.length) {
      const startAfter = justBefore(sorted[next]!.toString());
      const chain = new PageChain('S3 delete-objects check');
      let token: string | undefined;
      let passed: Buffer | undefined; // the last key seen
      for (let pages = 1; ; pages++) {
        const page = await this.call('list', undefined, () =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              ...(prefix ? { Prefix: prefix } : {}),
              // one key first (the common case needs no more), then whole pages
              MaxKeys: token ? MAX_DELETE_BATCH : 1,
              ...(token ? { ContinuationToken: token } : startAfter ? { StartAfter: startAfter } : {}),
            }),
          ),
        );
        if (page.IsTruncated === undefined) throw notAListing(page.$metadata.httpStatusCode, '');
        for (const o of page.Contents ?? []) {
          if (o.Key === undefined) continue;
          passed = Buffer.from(o.Key);
          if (Buffer.compare(passed, last) > 0) return [...left];
          if (wanted.has(o.Key)) left.add(o.Key);
        }
        token = chain.next(page.IsTruncated === true, page.NextContinuationToken);
        if (!token) return [...left];
        // (only once past the next batch key: starting again there would not move on)
        if (pages >= CHECK_PAGES_BEFORE_SEEK && passed && Buffer.compare(passed, sorted[next]!) >= 0) break;
      }
      while (next < sorted.length && Buffer.compare(sorted[next]!, passed!) <= 0) next++;
    }
    return [...left];
  }

  async getTags(key: string): Promise<Tag[]> {
    const out = await this.call('get-tags', key, () =>
      this.client.send(new GetObjectTaggingCommand({ Bucket: this.bucket, Key: key })),
    );
    return (out.TagSet ?? []).map((t) => [t.Key ?? '', t.Value ?? ''] as Tag);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** The start of a DeleteObjects result: an XML declaration and comments may come before its root element. */
const DELETE_RESULT = /^\uFEFF?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--[\s\S]*?-->\s*)*<(?:[\w.-]+:)?DeleteResult[\s/>]/;

/** One line for a DeleteObjects request none of whose keys is known to be deleted. */
function noneDeleted(status: number | undefined, what: string): string {
  return `S3 delete-objects: the answer (HTTP ${status ?? '?'}) ${what}, so none is known to be deleted`;
}

/**
 * S3 Express directory buckets (named `…--x-s3`) list keys in no particular order and take no
 * start-after, so no listing there can show that a batch is gone.
 */
function isDirectoryBucket(bucket: string): boolean {
  return bucket.endsWith('--x-s3');
}

/**
 * A store that will not take DeleteObjects as we send it, so that deleting key by key is the way:
 * it lacks the operation (NotImplemented, HTTP 501), or it wants the Content-MD5 that older SDKs
 * sent where the SDK now sends a CRC checksum (MissingContentMD5; InvalidRequest or InvalidArgument
 * naming Content-MD5 or the checksum). barman 3.17 falls back on the MD5 answers (docs/format.md#credentials).
 */
function refusesBulkDelete(err: unknown): boolean {
  const e = err as SdkErrorLike | undefined;
  if (!e || typeof e !== 'object') return false;
  const code = e.Code ?? e.name ?? '';
  const message = e.message ?? '';
  if (e.$metadata?.httpStatusCode === 501 || code === 'NotImplemented') return true;
  return wantsContentMd5(code, message);
}

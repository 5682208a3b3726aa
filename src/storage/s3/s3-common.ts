// Pure S3 helpers shared by the SDK driver (s3.ts) and the lean hot-path client (s3-lean.ts):
// transport-failure classification, botocore-style messages, tag encoding. No SDK import here.
import { createHash } from 'node:crypto';
import { redact } from '../../log.js';
import { SseCustomerKeyError, StorageError } from '../../errors.js';
import type { GetOptions, Tag } from '../types.js';

export interface SdkErrorLike {
  name?: string;
  message?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
  errors?: unknown[];
}

/** Transport failures before any connection was made. */
const CONNECT_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);
/** Transport failures on an open connection. */
const CLOSED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|EPROTO$|CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE)/;
export const ACCESS_CODES = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden', 'ExpiredToken',
  'InvalidToken', 'AllAccessDisabled', 'AccountProblem', 'InvalidSecurity', 'TokenRefreshRequired',
]);
/** Codes a 404 on an object operation carries when the object itself is missing. */
export const OBJECT_404_CODES = new Set(['NoSuchKey', 'NotFound', 'UnknownError', '']);

/**
 * The store refused an upload for want of Content-MD5 (or a flexible checksum, which we do not
 * send by default): S3 and moto do so on a bucket with Object Lock (default retention), older
 * stores on DeleteObjects. botocore before 1.36 sent Content-MD5 on every PutObject and UploadPart,
 * so barman-cloud 3.4 never met this (docs/configuration.md#object-lock-buckets).
 */
export function wantsContentMd5(code: string, message: string): boolean {
  if (code === 'MissingContentMD5' || code === 'MissingUploadObjectWithObjectLockHeaders') return true;
  if (/content-md5/i.test(message)) return true;
  return (code === 'InvalidRequest' || code === 'InvalidArgument') && /checksum/i.test(message);
}

export function contentMd5(pieces: Iterable<Uint8Array>): string {
  const h = createHash('md5');
  for (const p of pieces) h.update(p);
  return h.digest('base64');
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

export type NetworkKind = 'connect' | 'timeout' | 'closed';

/** When `err` is a transport failure (no HTTP answer), what kind and a short description; else undefined. */
export function networkFailure(err: unknown, depth = 0): { kind: NetworkKind; detail: string } | undefined {
  if (!err || typeof err !== 'object' || depth > 6) return undefined;
  const e = err as SdkErrorLike;
  if (e.$metadata?.httpStatusCode !== undefined) return undefined;
  const message = oneLine(e.message ?? '');
  const code = typeof e.code === 'string' ? e.code : '';
  const detail = code && !message.includes(code) ? [code, message].filter(Boolean).join(': ') : message || code;
  // Codes first: the SDK's HTTP handler renames ECONNRESET/EPIPE/ETIMEDOUT errors to TimeoutError.
  if (CONNECT_CODES.has(code) || TLS_CODE.test(code)) return { kind: 'connect', detail };
  if (CLOSED_CODES.has(code)) return { kind: 'closed', detail };
  if (code === 'ETIMEDOUT' || e.name === 'TimeoutError') {
    return { kind: /establish a connection|connect/i.test(message) ? 'connect' : 'timeout', detail: detail || 'timed out' };
  }
  if (/socket hang up/i.test(message)) return { kind: 'closed', detail };
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const found = networkFailure(inner, depth + 1);
      if (found) return found;
    }
  }
  if (e.cause !== undefined && e.cause !== err) return networkFailure(e.cause, depth + 1);
  return undefined;
}

/** botocore's wording for the three kinds of transport failure, naming the endpoint. */
export function networkMessage(kind: NetworkKind, endpoint: string, detail: string): string {
  const head =
    kind === 'connect'
      ? `Could not connect to the endpoint URL: "${endpoint}"`
      : kind === 'timeout'
        ? `Read timeout on endpoint URL: "${endpoint}"`
        : `Connection was closed before we received a valid response from endpoint URL: "${endpoint}"`;
  return `${head} (${oneLine(redact(detail))})`;
}


/**
 * The pairs as a query string, order kept, as Python's urlencode() (docs/format.md#tags) except that a space
 * is sent as %20, not '+': S3 decodes both to a space, but Ceph RGW (16.x) keeps a '+' literally
 * and would store "test+value".
 */
export function encodeTagging(tags: Tag[]): string {
  return tags.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join('&');
}

/** RFC 3986 percent-encoding, as SigV4 signs it: encodeURIComponent plus the five it leaves alone. */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}


export function rangeHeader(options: GetOptions): string | undefined {
  const { start, end } = options;
  if (start === undefined && end === undefined) return undefined;
  return `bytes=${start ?? 0}-${end ?? ''}`;
}


/** The flag that supplies an SSE-C key, named in messages. */
const SSE_CUSTOMER_KEY_FLAG = '--sse-customer-key-file';

/** The three SSE-C request headers for `key` (32 bytes): algorithm, key and key MD5, both base64. */
export function sseCustomerHeaders(key: Buffer): Record<string, string> {
  return {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-MD5': createHash('md5').update(key).digest('base64'),
  };
}

/**
 * A HEAD or GET of an object refused because of its SSE-C state, as one of our errors, or
 * undefined when the answer is about something else. Without a key, S3 and RGW answer 400 for an
 * SSE-C object (HEAD has no body, hence no code). With one, a wrong key is 403 on S3 and 400
 * InvalidArgument on RGW, and a key sent for an object stored without one is 400: with a key in
 * hand, a 400 or 403 on an object read names the key first, since the same credential could list.
 */
export function sseCustomerKeyError(status: number, key: string, haveKey: boolean): StorageError | undefined {
  if (!haveKey && status === 400) {
    return new SseCustomerKeyError(`object ${key} is encrypted with a customer-provided key (SSE-C): give the key with ${SSE_CUSTOMER_KEY_FLAG}`);
  }
  if (haveKey && (status === 400 || status === 403)) {
    return new SseCustomerKeyError(
      `cannot read object ${key} with the key of ${SSE_CUSTOMER_KEY_FLAG} (HTTP ${status}): ` +
        'it was stored with another customer key or without one, or this credential may not read it',
    );
  }
  return undefined;
}

/**
 * A 2xx answer to ListObjectsV2 without `IsTruncated`, which every listing carries: a web page or an
 * <Error> document sent with 200. Read as an empty listing it was "no such WAL" (wal-restore exit 1)
 * and an empty archive (docs/format.md#listing-answers).
 */
export function notAListing(status: number | undefined, body: string): StorageError {
  const start = body ? `: ${JSON.stringify(oneLine(body).slice(0, 60))}` : '';
  return new StorageError(`S3 list: the answer (HTTP ${status ?? '?'}) is not a listing${start}`);
}

/**
 * A 2xx answer to an upload without the ETag every S3 upload answer carries: a web page answered
 * with 200 took the object, and the command exited 0 with nothing stored (docs/format.md#listing-answers).
 */
export function notStored(op: string, key: string, status: number | undefined): StorageError {
  return new StorageError(`S3 ${op} ${key}: the answer (HTTP ${status ?? '?'}) has no ETag, so nothing is known to be stored`);
}

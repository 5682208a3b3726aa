// A small in-memory Google Cloud Storage JSON-API server for tests (only node: built-ins).
// It speaks the subset that @google-cloud/storage 7.x uses: bucket get/create/delete, object
// list/metadata/patch/delete, `alt=media` downloads with Range, and media, multipart and resumable
// uploads, with real md5Hash/crc32c values (the client checks them) and generation preconditions.
// The client never uses the JSON batch endpoint (Bucket#deleteFiles issues one DELETE per object),
// so /batch/storage/v1 answers 501.
// Customer-supplied encryption keys (CSEK) are enforced as GCS documents them: an object written
// with the `x-goog-encryption-*` headers keeps the key's SHA-256, and a media download of it without
// that key (or with another) is refused with HTTP 400; its metadata stays readable without the key,
// minus md5Hash/crc32c. A resumable session remembers its key and refuses chunks sent without it.
//
//   import { startGcsServer } from './gcs-server.mjs';
//   const gcs = await startGcsServer();          // { url, port, close(), faults, events, log, buckets }
//   new Storage({ apiEndpoint: gcs.url, projectId: 'test' });
//
// Run directly: `node test/servers/gcs-server.mjs --port 4443` prints `listening <url>`.
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';

// ---- checksums -----------------------------------------------------------------------------------

const CRC32C_TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1; // Castagnoli, reflected
  CRC32C_TABLE[n] = c >>> 0;
}

/** CRC32C of a buffer, as GCS reports it: base64 of the 4 big-endian bytes. */
export function crc32cBase64(buf) {
  let crc = 0xffffffff;
  for (let i = 0; i < buf.length; i++) crc = CRC32C_TABLE[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

const md5Base64 = (buf) => crypto.createHash('md5').update(buf).digest('base64');

// ---- helpers -------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(code, reason, message) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}
const notFoundBucket = () => new HttpError(404, 'notFound', 'The specified bucket does not exist.');
const notFoundObject = (b, o) => new HttpError(404, 'notFound', `No such object: ${b}/${o}`);
const conditionNotMet = () =>
  new HttpError(412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
const badRequest = (message) => new HttpError(400, 'invalid', message);

/**
 * The CSEK a request carries: the base64 SHA-256 of its key, or null without one. The three headers
 * go together; the key must be 32 bytes and the hash must be the hash of that key.
 */
function requestKeySha(req) {
  const alg = req.headers['x-goog-encryption-algorithm'];
  const key = req.headers['x-goog-encryption-key'];
  const sha = req.headers['x-goog-encryption-key-sha256'];
  if (alg === undefined && key === undefined && sha === undefined) return null;
  if (alg !== 'AES256') throw badRequest('Missing or invalid x-goog-encryption-algorithm header: only AES256 is supported.');
  const raw = Buffer.from(String(key ?? ''), 'base64');
  if (raw.length !== 32) throw badRequest('Missing or invalid x-goog-encryption-key header: a base64 AES-256 key is required.');
  if (crypto.createHash('sha256').update(raw).digest('base64') !== sha) {
    throw badRequest('The provided encryption key hash does not match the provided encryption key.');
  }
  return sha;
}

/** GCS's refusals of a data read whose key does not fit the object's (all HTTP 400). */
function checkObjectKey(obj, sha) {
  if (obj.keySha256 && sha === null) {
    throw new HttpError(400, 'resourceIsEncryptedWithCustomerEncryptionKey', 'The target object is encrypted by a customer-supplied encryption key.');
  }
  if (obj.keySha256 && sha !== obj.keySha256) {
    throw new HttpError(400, 'customerEncryptionKeyIsIncorrect', 'The provided encryption key is incorrect.');
  }
  if (!obj.keySha256 && sha !== null) {
    throw new HttpError(400, 'resourceNotEncryptedWithCustomerEncryptionKey', 'The target object is not encrypted by a customer-supplied encryption key.');
  }
}

function sendJson(res, status, body, headers = {}) {
  const data = Buffer.from(JSON.stringify(body));
  // Real GCS spells the charset in upper case; the client copes with both.
  res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': data.length, ...headers });
  res.end(data);
}

function sendError(res, err) {
  const code = err.code ?? 500;
  const message = err.message || 'Internal error';
  sendJson(res, code, { error: { code, message, errors: [{ domain: 'global', reason: err.reason ?? 'backendError', message }] } });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const parseJson = (buf) => {
  if (buf.length === 0) return {};
  try { return JSON.parse(buf.toString('utf8')); } catch { throw badRequest('Invalid JSON payload'); }
};

/** Buffer compare gives GCS's lexicographic (UTF-8 byte) order. */
const byKey = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Split a multipart/related body (the client's multipart upload) into its parts. */
function parseMultipart(body, contentType) {
  const m = /boundary="?([^";]+)"?/i.exec(contentType ?? '');
  if (!m) throw badRequest('multipart upload without boundary');
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts = [];
  let pos = body.indexOf(delimiter);
  while (pos !== -1) {
    let start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break; // closing delimiter
    start += 2; // CRLF after the delimiter
    const next = body.indexOf(delimiter, start);
    if (next === -1) throw badRequest('unterminated multipart body');
    const part = body.subarray(start, next - 2); // drop the CRLF before the next delimiter
    const headerEnd = part.indexOf('\r\n\r\n');
    const rawHeaders = part.subarray(0, headerEnd).toString('latin1');
    const headers = Object.fromEntries(
      rawHeaders.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    parts.push({ headers, data: part.subarray(headerEnd + 4) });
    pos = next;
  }
  return parts;
}

/** Check ifGeneration(Not)Match / ifMetageneration(Not)Match against an object (or its absence). */
function checkPreconditions(q, obj) {
  const gen = obj ? obj.generation : '0';
  const g = q.get('ifGenerationMatch');
  if (g !== null && g !== gen) throw conditionNotMet();
  const gn = q.get('ifGenerationNotMatch');
  if (gn !== null && gn === gen) throw conditionNotMet();
  const mg = q.get('ifMetagenerationMatch');
  if (mg !== null && (!obj || String(obj.metageneration) !== mg)) throw conditionNotMet();
  const mgn = q.get('ifMetagenerationNotMatch');
  if (mgn !== null && obj && String(obj.metageneration) === mgn) throw conditionNotMet();
}

/** Parse `X-Goog-Hash: crc32c=...,md5=...` (client-supplied hashes of the whole object). */
function parseGoogHash(header) {
  const out = {};
  for (const pair of String(header ?? '').split(',')) {
    const i = pair.indexOf('=');
    if (i > 0) out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return out;
}

// ---- the server ----------------------------------------------------------------------------------

/**
 * @typedef {object} Faults
 * @property {{status: number, count: number, method?: string, reason?: string, message?: string} | null} [failNext]
 * @property {number | null} [stallDownloadAfter]
 * @property {number | null} [stallUploadAfterChunks]
 */

/**
 * @param {{host?: string, port?: number, tls?: {key: string, cert: string}, faults?: Faults}} [options]
 * `tls` serves HTTPS with that key and certificate.
 * `faults` (also mutable on the returned handle) make requests fail or hang, so tests can kill the server
 * mid-way: `failNext: {status, count, method?}` answers the next `count` requests (of that method) with
 * that HTTP error;
 * `stallDownloadAfter: n` sends n body bytes of each media download, then goes silent;
 * `stallUploadAfterChunks: n` accepts n chunks of each resumable session, then swallows further chunks
 * without answering.
 * The handle's `events` emits 'stall' when that happens.
 */
export async function startGcsServer({ host = '127.0.0.1', port = 0, tls, faults = {} } = {}) {
  const scheme = tls ? 'https' : 'http';
  /** @type {Map<string, {meta: object, objects: Map<string, object>}>} */
  const buckets = new Map();
  const sessions = new Map(); // upload_id -> resumable session
  const events = new EventEmitter();
  const log = [];
  let lastGeneration = 0;

  const now = () => new Date().toISOString();
  // Generations are microsecond timestamps on GCS; keep them strictly increasing here.
  const nextGeneration = () => String((lastGeneration = Math.max(Date.now() * 1000, lastGeneration + 1)));

  function getBucket(name) {
    const b = buckets.get(name);
    if (!b) throw notFoundBucket();
    return b;
  }

  /** `sha`: the key the request carried; an object stored with a CSEK shows its hashes only with it. */
  function objectResource(bucket, o, origin, sha = null) {
    const enc = encodeURIComponent(o.name);
    const hashes = !o.keySha256 || sha === o.keySha256;
    return {
      kind: 'storage#object',
      id: `${bucket}/${o.name}/${o.generation}`,
      selfLink: `${origin}/storage/v1/b/${bucket}/o/${enc}`,
      mediaLink: `${origin}/download/storage/v1/b/${bucket}/o/${enc}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket,
      generation: o.generation,
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      storageClass: 'STANDARD',
      size: String(o.data.length),
      ...(hashes && { md5Hash: o.md5Hash, crc32c: o.crc32c }),
      ...(o.keySha256 && { customerEncryption: { encryptionAlgorithm: 'AES256', keySha256: o.keySha256 } }),
      etag: o.etag,
      timeCreated: o.timeCreated,
      updated: o.updated,
      timeStorageClassUpdated: o.timeCreated,
      ...(o.metadata && { metadata: o.metadata }),
      ...(o.kmsKeyName && { kmsKeyName: `${o.kmsKeyName}/cryptoKeyVersions/1` }),
    };
  }

  /** Store a finished upload after checking preconditions and any client-supplied hashes. */
  function storeObject(bucketName, name, data, meta, q, hashes = {}, keySha256 = null) {
    const b = getBucket(bucketName);
    if (!name) throw new HttpError(400, 'required', 'Required parameter: name');
    checkPreconditions(q, b.objects.get(name));
    const md5Hash = md5Base64(data);
    const crc32c = crc32cBase64(data);
    const wantMd5 = meta.md5Hash ?? hashes.md5;
    const wantCrc = meta.crc32c ?? hashes.crc32c;
    if (wantMd5 && wantMd5 !== md5Hash) throw badRequest(`Provided MD5 hash "${wantMd5}" doesn't match calculated MD5 hash "${md5Hash}".`);
    if (wantCrc && wantCrc !== crc32c) throw badRequest(`Provided CRC32C "${wantCrc}" doesn't match calculated CRC32C "${crc32c}".`);
    const generation = nextGeneration();
    const t = now();
    const obj = {
      name, data, generation, metageneration: 1, md5Hash, crc32c,
      contentType: meta.contentType ?? 'application/octet-stream',
      metadata: meta.metadata && Object.keys(meta.metadata).length ? { ...meta.metadata } : undefined,
      kmsKeyName: q.get('kmsKeyName') ?? meta.kmsKeyName,
      keySha256,
      etag: Buffer.from(`${generation}/1`).toString('base64'),
      timeCreated: t, updated: t,
    };
    b.objects.set(name, obj);
    return obj;
  }

  // -- object listing: items and collapsed prefixes share one ordered sequence and `maxResults`
  function listObjects(res, bucketName, q) {
    const b = getBucket(bucketName);
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const maxResults = Math.min(Number(q.get('maxResults') ?? 1000) || 1000, 1000);
    const after = q.get('pageToken') ? Buffer.from(q.get('pageToken'), 'base64url').toString('utf8') : null;
    const entries = []; // { key, obj? }
    const seenPrefixes = new Set();
    for (const name of [...b.objects.keys()].sort(byKey)) {
      if (!name.startsWith(prefix)) continue;
      const i = delimiter ? name.indexOf(delimiter, prefix.length) : -1;
      if (i === -1) entries.push({ key: name, obj: b.objects.get(name) });
      else {
        const p = name.slice(0, i + delimiter.length);
        if (!seenPrefixes.has(p)) { seenPrefixes.add(p); entries.push({ key: p }); }
      }
    }
    const remaining = after === null ? entries : entries.filter((e) => byKey(e.key, after) > 0);
    const page = remaining.slice(0, maxResults);
    const origin = `${scheme}://${res.req.headers.host}`;
    const body = { kind: 'storage#objects' };
    const items = page.filter((e) => e.obj).map((e) => objectResource(bucketName, e.obj, origin));
    const prefixes = page.filter((e) => !e.obj).map((e) => e.key);
    if (prefixes.length) body.prefixes = prefixes;
    if (items.length) body.items = items;
    if (remaining.length > page.length) body.nextPageToken = Buffer.from(page.at(-1).key).toString('base64url');
    sendJson(res, 200, body);
  }

  // -- media download, with Range and the x-goog-hash header the client validates
  function download(req, res, bucketName, o) {
    const total = o.data.length;
    let start = 0;
    let end = total - 1;
    let status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && (range[1] !== '' || range[2] !== '')) {
      if (range[1] === '') { start = Math.max(0, total - Number(range[2])); } // suffix range
      else { start = Number(range[1]); if (range[2] !== '') end = Math.min(Number(range[2]), total - 1); }
      if (start >= total || start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${total}`, 'Content-Length': 0 });
        return res.end();
      }
      status = 206;
    }
    const body = o.data.subarray(start, end + 1);
    const headers = {
      'Content-Type': o.contentType,
      'Content-Length': body.length,
      'Accept-Ranges': 'bytes',
      ETag: o.etag,
      'Last-Modified': new Date(o.updated).toUTCString(),
      'x-goog-generation': o.generation,
      'x-goog-metageneration': String(o.metageneration),
      'x-goog-hash': `crc32c=${o.crc32c},md5=${o.md5Hash}`,
      'x-goog-stored-content-encoding': 'identity',
      'x-goog-stored-content-length': String(total),
      'x-goog-storage-class': 'STANDARD',
    };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${total}`;
    res.writeHead(status, headers);
    const stallAt = faults.stallDownloadAfter;
    if (typeof stallAt === 'number' && stallAt < body.length) {
      res.write(body.subarray(0, stallAt)); // ... and never finish: only close() ends this socket
      events.emit('stall', { kind: 'download', name: o.name });
      return;
    }
    res.end(body);
  }

  // -- resumable uploads: POST creates a session, PUTs carry chunks (spec: cloud.google.com
  //    "Perform resumable uploads"); 308 + `Range: bytes=0-N` while incomplete
  function createSession(req, res, bucketName, q, meta) {
    const b = getBucket(bucketName);
    const keySha256 = requestKeySha(req);
    const name = q.get('name') ?? meta.name;
    if (!name) throw new HttpError(400, 'required', 'Required parameter: name');
    checkPreconditions(q, b.objects.get(name)); // GCS checks preconditions at start and at the end
    const id = crypto.randomBytes(16).toString('hex');
    sessions.set(id, { bucket: bucketName, name, meta, q, keySha256, chunks: [], received: 0, chunksAccepted: 0, result: null });
    const location = `${scheme}://${req.headers.host}/upload/storage/v1/b/${bucketName}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
    res.writeHead(200, { Location: location, 'X-GUploader-UploadID': id, 'Content-Length': 0 });
    res.end();
  }

  async function putChunk(req, res, q) {
    const s = sessions.get(q.get('upload_id') ?? '');
    if (!s) throw new HttpError(404, 'notFound', 'No such upload session');
    if (requestKeySha(req) !== s.keySha256) {
      req.resume();
      throw badRequest('The encryption key headers of this request do not match those the upload session was started with.');
    }
    const stallAfter = faults.stallUploadAfterChunks;
    if (typeof stallAfter === 'number' && s.chunksAccepted >= stallAfter) {
      req.resume(); // swallow the chunk and never answer
      events.emit('stall', { kind: 'upload', name: s.name });
      return;
    }
    const body = await readBody(req);
    const sendProgress = () => {
      const headers = { 'Content-Length': 0 };
      if (s.received > 0) headers.Range = `bytes=0-${s.received - 1}`;
      res.writeHead(308, headers); // no Location header, or fetch would treat it as a redirect
      res.end();
    };
    if (s.result) return sendJson(res, 200, s.result); // already finalised
    // Content-Range: `bytes a-b/*` | `bytes a-b/total` | `bytes */total` | `bytes */*` (status query)
    // | `bytes a-*/*` (the rest of the object in this one request); absent = whole object.
    const cr = req.headers['content-range'];
    let first = s.received;
    let total = null;
    let rest = false;
    if (cr === undefined) rest = true;
    else {
      const m = /^bytes (?:(\d+)-(\d+|\*|-1)|\*)\/(\d+|\*)$/.exec(String(cr).trim());
      if (!m) throw badRequest(`Failed to parse Content-Range header: ${cr}`);
      if (m[1] !== undefined) first = Number(m[1]);
      if (m[2] === '*') rest = true;
      if (m[3] !== '*') total = Number(m[3]);
      if (m[1] === undefined && total === null) return sendProgress(); // status query
      if (m[1] !== undefined && m[2] !== '*' && Number(m[2]) - first + 1 !== body.length && body.length > 0) {
        throw badRequest('Content-Range does not match the request body length');
      }
    }
    if (first > s.received) throw badRequest(`Invalid request: expected offset ${s.received}, got ${first}`);
    const fresh = body.subarray(Math.min(body.length, s.received - first)); // overlap is ignored, as GCS does
    const final = rest || total !== null;
    if (!final && body.length % (256 * 1024) !== 0) {
      throw badRequest('Invalid request. The number of bytes uploaded is required to be a multiple of 262144 bytes.');
    }
    s.chunks.push(fresh);
    s.received += fresh.length;
    s.chunksAccepted++;
    if (!final || (total !== null && s.received < total)) return sendProgress();
    if (total !== null && s.received !== total) throw badRequest(`Upload size ${s.received} does not match declared total ${total}`);
    const data = Buffer.concat(s.chunks);
    try {
      const obj = storeObject(s.bucket, s.name, data, s.meta, s.q, parseGoogHash(req.headers['x-goog-hash']), s.keySha256);
      s.result = objectResource(s.bucket, obj, `${scheme}://${req.headers.host}`, s.keySha256);
    } finally {
      s.chunks = [];
    }
    sendJson(res, 200, s.result);
  }

  // -- routing ------------------------------------------------------------------------------------
  async function route(req, res) {
    const url = new URL(req.url, 'http://x');
    const q = url.searchParams;
    const method = req.method;
    log.push({
      method, path: url.pathname, query: Object.fromEntries(q), contentRange: req.headers['content-range'],
      encryptionKeySha256: req.headers['x-goog-encryption-key-sha256'],
    });
    const origin = `${scheme}://${req.headers.host}`;
    const fail = faults.failNext;
    if (fail && fail.count > 0 && (!fail.method || fail.method === method)) {
      fail.count--;
      req.resume();
      throw new HttpError(fail.status, fail.reason ?? 'injected', fail.message ?? `injected HTTP ${fail.status}`);
    }
    let path = url.pathname;
    let kind = 'json';
    if (path.startsWith('/upload/storage/v1/')) { kind = 'upload'; path = path.slice('/upload/storage/v1'.length); }
    else if (path.startsWith('/download/storage/v1/')) { kind = 'download'; path = path.slice('/download/storage/v1'.length); }
    else if (path.startsWith('/batch/')) throw new HttpError(501, 'notImplemented', 'batch requests are not supported by this test server');
    else if (path.startsWith('/storage/v1/')) path = path.slice('/storage/v1'.length);
    // (without the /storage/v1 prefix too: the client uses STORAGE_EMULATOR_HOST verbatim as its base URL)
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (seg[0] !== 'b') throw new HttpError(404, 'notFound', `Not Found: ${url.pathname}`);
    const [, bucketName, o, ...objParts] = seg;
    const objectName = objParts.length ? objParts.join('/') : undefined;

    if (kind === 'upload') {
      if (!bucketName || o !== 'o') throw new HttpError(404, 'notFound', 'Not Found');
      if (method === 'PUT' || method === 'POST' && q.has('upload_id')) return putChunk(req, res, q);
      if (method === 'DELETE' && q.has('upload_id')) {
        // cancelling a session answers 499, as GCS does
        if (!sessions.delete(q.get('upload_id'))) throw new HttpError(404, 'notFound', 'No such upload session');
        return sendJson(res, 499, { error: { code: 499, message: 'Client Closed Request', errors: [] } });
      }
      if (method !== 'POST') throw new HttpError(405, 'methodNotAllowed', 'Method not allowed');
      const body = await readBody(req);
      const uploadType = q.get('uploadType') ?? 'media';
      if (uploadType === 'resumable') {
        const meta = parseJson(body);
        meta.contentType ??= req.headers['x-upload-content-type'];
        return createSession(req, res, bucketName, q, meta);
      }
      let meta = {};
      let data = body;
      if (uploadType === 'multipart') {
        const parts = parseMultipart(body, req.headers['content-type']);
        if (parts.length !== 2) throw badRequest('multipart upload needs exactly 2 parts');
        meta = parseJson(parts[0].data);
        meta.contentType ??= parts[1].headers['content-type'];
        data = parts[1].data;
      } else if (uploadType === 'media') {
        meta.contentType = req.headers['content-type'];
      } else throw badRequest(`Unknown uploadType: ${uploadType}`);
      const sha = requestKeySha(req);
      const obj = storeObject(bucketName, q.get('name') ?? meta.name, data, meta, q, parseGoogHash(req.headers['x-goog-hash']), sha);
      return sendJson(res, 200, objectResource(bucketName, obj, origin, sha));
    }

    // buckets
    if (!bucketName) {
      if (method !== 'POST') throw new HttpError(405, 'methodNotAllowed', 'Method not allowed');
      const meta = parseJson(await readBody(req));
      const name = meta.name;
      if (!name || !/^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/.test(name)) throw badRequest('Invalid bucket name');
      if (buckets.has(name)) throw new HttpError(409, 'conflict', 'Your previous request to create the named bucket succeeded and you already own it.');
      const t = now();
      const bucketMeta = {
        kind: 'storage#bucket', id: name, selfLink: `${origin}/storage/v1/b/${name}`, name,
        projectNumber: '0', metageneration: '1', location: meta.location ?? 'US', storageClass: meta.storageClass ?? 'STANDARD',
        etag: 'CAE=', timeCreated: t, updated: t,
      };
      buckets.set(name, { meta: bucketMeta, objects: new Map() });
      return sendJson(res, 200, bucketMeta);
    }
    if (o === undefined) {
      const b = getBucket(bucketName);
      if (method === 'GET') return sendJson(res, 200, b.meta);
      if (method === 'DELETE') {
        if (b.objects.size) throw new HttpError(409, 'conflict', 'The bucket you tried to delete is not empty.');
        buckets.delete(bucketName);
        res.writeHead(204).end();
        return;
      }
      throw new HttpError(405, 'methodNotAllowed', 'Method not allowed');
    }
    if (o !== 'o') throw new HttpError(404, 'notFound', `Not Found: ${url.pathname}`);
    if (objectName === undefined) {
      if (method === 'GET') return listObjects(res, bucketName, q);
      throw new HttpError(405, 'methodNotAllowed', 'Method not allowed');
    }

    // objects
    const b = getBucket(bucketName);
    const obj = b.objects.get(objectName);
    if (method === 'GET') {
      if (!obj) throw notFoundObject(bucketName, objectName);
      checkPreconditions(q, obj);
      const sha = requestKeySha(req);
      if (kind === 'download' || q.get('alt') === 'media') {
        checkObjectKey(obj, sha);
        return download(req, res, bucketName, obj);
      }
      return sendJson(res, 200, objectResource(bucketName, obj, origin, sha));
    }
    if (method === 'DELETE') {
      if (!obj) throw notFoundObject(bucketName, objectName);
      checkPreconditions(q, obj);
      b.objects.delete(objectName);
      res.writeHead(204).end();
      return;
    }
    if (method === 'PATCH' || method === 'PUT') {
      if (!obj) throw notFoundObject(bucketName, objectName);
      checkPreconditions(q, obj);
      const patch = parseJson(await readBody(req));
      if ('metadata' in patch) {
        // PATCH merges custom metadata; a null value removes a key; PUT replaces it
        const merged = method === 'PATCH' ? { ...obj.metadata } : {};
        for (const [k, v] of Object.entries(patch.metadata ?? {})) {
          if (v === null) delete merged[k];
          else merged[k] = String(v);
        }
        obj.metadata = patch.metadata === null || Object.keys(merged).length === 0 ? undefined : merged;
      }
      if (patch.contentType) obj.contentType = patch.contentType;
      obj.metageneration++;
      obj.updated = now();
      obj.etag = Buffer.from(`${obj.generation}/${obj.metageneration}`).toString('base64');
      return sendJson(res, 200, objectResource(bucketName, obj, origin));
    }
    throw new HttpError(405, 'methodNotAllowed', 'Method not allowed');
  }

  const handler = (req, res) => {
    route(req, res).catch((err) => {
      if (res.headersSent || res.destroyed) return;
      if (!(err instanceof HttpError)) err = new HttpError(500, 'backendError', String(err?.message ?? err));
      req.resume();
      sendError(res, err);
    });
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${scheme}://${urlHost}:${actualPort}`,
    port: actualPort,
    /** Mutable fault switches (see above). */
    faults,
    /** 'stall' events. */
    events,
    /** Every request seen: { method, path, query, contentRange }. */
    log,
    /** Direct access to the stored data, for assertions. */
    buckets,
    /** Stop listening and destroy every open socket, as a crashed server would. */
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---- CLI -----------------------------------------------------------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i === -1 ? dflt : process.argv[i + 1];
  };
  const srv = await startGcsServer({ host: arg('--host', '127.0.0.1'), port: Number(arg('--port', '0')) });
  process.stdout.write(`listening ${srv.url}\n`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

// Client-side encryption in the age format (age-encryption.org/v1, docs/encryption.md). Every
// stored object is one standard age file, so `age -d -i IDENTITY` reads it without this tool.
//
// Split of the work: reading (identity parsing, header authentication, key unwrapping) is done by
// `age-encryption`, the reference TypeScript implementation. Writing needs only X25519, HKDF, HMAC
// and ChaCha20-Poly1305, done here with node:crypto: the library's pure-JavaScript cipher ran at
// ~28 MB/s here against ~450 MB/s for OpenSSL, and importing it cost more than a WAL upload. The
// payload (the STREAM construction, 64 KiB chunks) is sealed and opened here in both directions.
// Recipients are decoded with @scure/base (bech32). Plain runs load none of this.
import {
  createCipheriv, createDecipheriv, createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { EncryptedDataError, EncryptionKeyError } from '../errors.js';
import { sha256Hex, type ChunkedBody } from '../storage/body.js';

export { AGE_SUFFIX, isEncryptedName, stripAgeSuffix } from './names.js';

const CHUNK = 64 * 1024;
const TAG = 16;
const NONCE = 16;
/** No header of ours comes near this (a stanza is ~100 bytes); it bounds what a hostile object costs. */
const MAX_HEADER = 64 * 1024;

type AgeModule = typeof import('age-encryption');
let ageModule: Promise<AgeModule> | undefined;
const loadAge = (): Promise<AgeModule> => (ageModule ??= import('age-encryption'));

/**
 * Short public fingerprint of a recipient (16 hex digits of the SHA-256 of its `age1…` string),
 * recorded in backup.info: enough to tell keys apart, without copying key material around.
 */
export function recipientFingerprint(recipient: string): string {
  return createHash('sha256').update(recipient).digest('hex').slice(0, 16);
}

/**
 * Lines of an age recipients or identity file: blank lines and `#` comments are skipped, as age
 * does. `kind` only words the message; the line's content is never quoted (it may be a secret).
 */
function keyLines(text: string, source: string, accept: (line: string) => boolean, kind: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!accept(line)) throw new EncryptionKeyError(`${source}, line ${i + 1}: not an age ${kind}`);
    out.push(line);
  }
  if (out.length === 0) throw new EncryptionKeyError(`${source} holds no age ${kind}`);
  return out;
}

/** Recipients (`age1…`, X25519), decoded now so that a typo fails before anything is uploaded. */
export async function parseRecipients(text: string, source: string): Promise<string[]> {
  const recipients = keyLines(text, source, (l) => l.startsWith('age1'), 'recipient (age1…)');
  for (let i = 0; i < recipients.length; i++) {
    if (!(await x25519Recipient(recipients[i]!))) throw new EncryptionKeyError(`${source}: recipient ${i + 1} is not a valid age X25519 recipient`);
  }
  return recipients;
}

/** The 32-byte X25519 public key of an `age1…` recipient (bech32, checksum checked), or undefined. */
async function x25519Recipient(recipient: string): Promise<Buffer | undefined> {
  const { bech32 } = await import('@scure/base');
  try {
    const { prefix, bytes } = bech32.decodeToBytes(recipient);
    return prefix === 'age' && bytes.length === 32 ? Buffer.from(bytes) : undefined;
  } catch {
    return undefined;
  }
}

/** Identities (`AGE-SECRET-KEY-1…`), several allowed (old keys kept for reading after a rotation). */
export async function parseIdentities(text: string, source: string): Promise<AgeIdentities> {
  const identities = keyLines(text, source, (l) => l.startsWith('AGE-SECRET-KEY-'), 'identity (AGE-SECRET-KEY-1…)');
  const { identityToRecipient } = await loadAge();
  const fingerprints: string[] = [];
  for (let i = 0; i < identities.length; i++) {
    try {
      fingerprints.push(recipientFingerprint(await identityToRecipient(identities[i]!)));
    } catch {
      throw new EncryptionKeyError(`${source}: identity ${i + 1} is not a valid age identity`);
    }
  }
  return { identities, fingerprints, source };
}

export interface AgeIdentities {
  identities: string[];
  /** Fingerprints of the recipients these identities decrypt for. */
  fingerprints: string[];
  /** Where they came from, for messages (a file name, never a key). */
  source: string;
}

/** One object's age header plus the key its payload is sealed with. */
interface SealKey {
  head: Buffer;
  streamKey: Buffer;
}

// The X25519 recipient stanza and the header MAC, written with node:crypto (age-encryption.org/v1):
// importing the library and its pure-JavaScript X25519 cost more than the whole WAL upload (see
// docs/benchmarks.md). Checked by the unit tests, which decrypt what this writes with the age program.
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

function x25519Stanza(recipientKey: Buffer, fileKey: Buffer): string {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const share = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const shared = diffieHellman({
    privateKey,
    publicKey: createPublicKey({ key: Buffer.concat([SPKI_X25519, recipientKey]), format: 'der', type: 'spki' }),
  });
  // a low-order recipient key gives an all-zero secret: refused, as age does
  if (shared.every((b) => b === 0)) throw new EncryptionKeyError('an age recipient is a low-order X25519 point');
  const wrapKey = Buffer.from(hkdfSync('sha256', shared, Buffer.concat([share, recipientKey]), 'age-encryption.org/v1/X25519', 32));
  const c = createCipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
  const body = Buffer.concat([c.update(fileKey), c.final(), c.getAuthTag()]);
  return `-> X25519 ${b64(share)}\n${b64(body)}\n`;
}

async function newSealKey(recipients: readonly string[]): Promise<SealKey> {
  const fileKey = randomBytes(16);
  let header = 'age-encryption.org/v1\n';
  for (const r of recipients) {
    const key = await x25519Recipient(r);
    if (!key) throw new EncryptionKeyError('an age recipient is not a valid X25519 recipient');
    header += x25519Stanza(key, fileKey);
  }
  header += '---';
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
  const mac = createHmac('sha256', macKey).update(header).digest();
  const nonce = randomBytes(NONCE);
  return { head: Buffer.concat([Buffer.from(`${header} ${b64(mac)}\n`), nonce]), streamKey: payloadKey(fileKey, nonce) };
}

function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 11-byte big-endian counter; 2^48 chunks (16 EiB) is more than any object here
  n.writeUIntBE(counter, 5, 6);
  n[11] = last ? 1 : 0;
  return n;
}

function seal(key: Buffer, counter: number, last: boolean, plain: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG });
  const body = c.update(plain);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

function open(key: Buffer, counter: number, last: boolean, sealed: Buffer, what: string): Buffer {
  const d = createDecipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  const plain = d.update(sealed.subarray(0, sealed.length - TAG));
  try {
    d.final();
  } catch {
    throw new EncryptedDataError(`${what} is damaged or truncated (age: chunk ${counter} fails authentication)`);
  }
  return plain;
}

/**
 * Encrypts whatever passes through into one age file for `recipients`. The header is made on the
 * first write (one X25519 exchange per recipient), then 64 KiB chunks are sealed as they fill; only
 * one chunk is held back (the last must be flagged as such).
 */
export function encryptStream(recipients: readonly string[]): Transform {
  let key: SealKey | undefined;
  let counter = 0;
  let pending = Buffer.allocUnsafe(CHUNK);
  let used = 0;
  const ready = async (t: Transform) => {
    if (key) return key;
    key = await newSealKey(recipients);
    t.push(key.head);
    return key;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      ready(this).then((k) => {
        let at = 0;
        while (at < chunk.length) {
          if (used === CHUNK) {
            this.push(seal(k.streamKey, counter++, false, pending));
            pending = Buffer.allocUnsafe(CHUNK);
            used = 0;
          }
          const n = Math.min(CHUNK - used, chunk.length - at);
          chunk.copy(pending, used, at, at + n);
          used += n;
          at += n;
        }
        done();
      }, done);
    },
    flush(done: TransformCallback) {
      ready(this).then((k) => {
        this.push(seal(k.streamKey, counter, true, pending.subarray(0, used)));
        done();
      }, done);
    },
  });
}

/**
 * `inner` as one age file for `recipients`, the same bytes on every pass (one header, sealed again
 * from the same key): upload bodies are read more than once (hashed, then sent).
 */
export async function encryptedBody(inner: ChunkedBody, recipients: readonly string[]): Promise<ChunkedBody> {
  const k = await newSealKey(recipients);
  function* sealed(): Generator<Buffer> {
    yield k.head;
    let counter = 0;
    const pending = Buffer.allocUnsafe(CHUNK);
    let used = 0;
    for (const piece of inner.chunks()) {
      let at = 0;
      while (at < piece.length) {
        if (used === CHUNK) {
          yield seal(k.streamKey, counter++, false, pending);
          used = 0;
        }
        const n = Math.min(CHUNK - used, piece.length - at);
        piece.copy(pending, used, at, at + n);
        used += n;
        at += n;
      }
    }
    yield seal(k.streamKey, counter, true, pending.subarray(0, used));
  }
  let digest: string | undefined;
  return {
    kind: 'chunked',
    length: k.head.length + inner.length + TAG * Math.max(1, Math.ceil(inner.length / CHUNK)),
    get sha256() {
      return (digest ??= sha256Hex(sealed()));
    },
    chunks: sealed,
  };
}

/** Where the header ends: after the `--- <MAC>` line. -1 while not complete. */
function headerEnd(buf: Buffer): number {
  let from = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, from);
    if (nl < 0) return -1;
    if (buf[from] === 0x2d && buf.subarray(from, from + 4).toString('latin1') === '--- ') return nl + 1;
    from = nl + 1;
  }
}

/**
 * Decrypts one age file. `what` names the object in messages. No identity matching the file is an
 * EncryptionKeyError (exit 1, the key is what is missing); a damaged header or chunk is an
 * EncryptedDataError (exit 4). Nothing is passed on before the header is authenticated, and a chunk
 * only once it is.
 */
export function decryptStream(ids: AgeIdentities, what: string): Transform {
  let header: Buffer | undefined = Buffer.alloc(0) as Buffer;
  let key: Buffer | undefined;
  let nonceBuf: Buffer = Buffer.alloc(0);
  let counter = 0;
  let buf: Buffer = Buffer.alloc(0);
  const start = async (): Promise<void> => {
    const end = headerEnd(header!);
    if (end < 0) {
      if (header!.length > MAX_HEADER) throw new EncryptedDataError(`${what} is not an age file (no header end in ${MAX_HEADER} bytes)`);
      return;
    }
    if (!header!.subarray(0, 22).toString('latin1').startsWith('age-encryption.org/v1\n')) {
      throw new EncryptedDataError(`${what} is not an age file`);
    }
    const { Decrypter } = await loadAge();
    const d = new Decrypter();
    for (const id of ids.identities) d.addIdentity(id);
    let fileKey: Uint8Array;
    try {
      fileKey = await d.decryptHeader(header!.subarray(0, end));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/no identity matched/.test(msg)) {
        throw new EncryptionKeyError(`${what} is encrypted for none of the identities in ${ids.source}`);
      }
      throw new EncryptedDataError(`${what} has a damaged age header (${msg})`);
    }
    const rest = header!.subarray(end);
    header = undefined;
    nonceBuf = Buffer.alloc(0);
    take(rest, fileKey);
  };
  let fileKeyHeld: Uint8Array | undefined;
  const take = (data: Buffer, fileKey?: Uint8Array) => {
    if (fileKey) fileKeyHeld = fileKey;
    if (!key) {
      nonceBuf = Buffer.concat([nonceBuf, data]);
      if (nonceBuf.length < NONCE) return;
      key = payloadKey(fileKeyHeld!, nonceBuf.subarray(0, NONCE));
      data = nonceBuf.subarray(NONCE);
    }
    buf = buf.length ? Buffer.concat([buf, data]) : data;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const go = async () => {
        if (header) {
          header = Buffer.concat([header, chunk]);
          await start();
        } else {
          take(chunk);
        }
        // a full chunk followed by more bytes is not the last one
        let at = 0;
        while (key && buf.length - at > CHUNK + TAG) {
          this.push(open(key, counter++, false, buf.subarray(at, at + CHUNK + TAG), what));
          at += CHUNK + TAG;
        }
        if (at) buf = buf.subarray(at);
      };
      go().then(() => done(), done);
    },
    flush(done: TransformCallback) {
      try {
        if (header) {
          throw new EncryptedDataError(header.length === 0 ? `${what} is empty` : `${what} is truncated (age: incomplete header)`);
        }
        if (!key || buf.length < TAG) throw new EncryptedDataError(`${what} is truncated (age: no final chunk)`);
        const plain = open(key, counter, true, buf, what);
        if (plain.length === 0 && counter > 0) throw new EncryptedDataError(`${what} is damaged (age: empty final chunk)`);
        this.push(plain);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}

/** A whole buffer through decryptStream (WAL comparisons, history files). */
export async function decryptBuffer(ids: AgeIdentities, data: Buffer, what: string): Promise<Buffer> {
  const out: Buffer[] = [];
  const t = decryptStream(ids, what);
  t.on('data', (c: Buffer) => out.push(c));
  await new Promise<void>((resolve, reject) => {
    t.on('end', resolve);
    t.on('error', reject);
    t.end(data);
  });
  return Buffer.concat(out);
}

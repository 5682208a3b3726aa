// Client-side encryption in the age format (age-encryption.org/v1, docs/encryption.md). Every
// stored object is one standard age file, so `age -d -i IDENTITY` reads it without this tool.
//
// The format needs only X25519, HKDF-SHA-256, HMAC-SHA-256 and ChaCha20-Poly1305, all done here with
// node:crypto (OpenSSL); keys are bech32, decoded with @scure/base. The reference TypeScript library
// `age-encryption` is the tests' second oracle beside the age program, not a runtime dependency: its
// pure-JavaScript cipher ran at ~28 MB/s here against ~450 MB/s for OpenSSL, and importing it took
// longer than a whole WAL upload (docs/encryption.md). Plain runs load none of this.
import {
  createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync,
  createSecretKey, randomBytes, timingSafeEqual, type KeyObject,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { bech32 } from '@scure/base';
import { EncryptedDataError, EncryptionKeyError } from '../errors.js';
import { bytesMoved } from '../reclaim.js';
import { sha256Hex, type ChunkedBody } from '../storage/body.js';

export { AGE_SUFFIX, isEncryptedName, stripAgeSuffix } from './names.js';

const CHUNK = 64 * 1024;
const TAG = 16;
const NONCE = 16;
/** No header of ours comes near this (a stanza is ~100 bytes); it bounds what a hostile object costs. */
const MAX_HEADER = 64 * 1024;


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
    if (!x25519Recipient(recipients[i]!)) throw new EncryptionKeyError(`${source}: recipient ${i + 1} is not a valid age X25519 recipient`);
  }
  return recipients;
}

/** The 32-byte X25519 public key of an `age1…` recipient (bech32, checksum checked), or undefined. */
function x25519Recipient(recipient: string): Buffer | undefined {
  try {
    const { prefix, bytes } = bech32.decodeToBytes(recipient);
    return prefix === 'age' && bytes.length === 32 ? Buffer.from(bytes) : undefined;
  } catch {
    return undefined;
  }
}

/** Identities (`AGE-SECRET-KEY-1…`), several allowed (old keys kept for reading after a rotation). */
/** `allowUnencrypted`: the reader's --allow-unencrypted, kept with the keys it goes with. */
export async function parseIdentities(text: string, source: string, allowUnencrypted = false): Promise<AgeIdentities> {
  const lines = keyLines(text, source, (l) => l.startsWith('AGE-SECRET-KEY-'), 'identity (AGE-SECRET-KEY-1…)');
  const keys: X25519Identity[] = [];
  for (let i = 0; i < lines.length; i++) {
    try {
      const { prefix, bytes } = bech32.decodeToBytes(lines[i]!.toLowerCase());
      if (prefix !== 'age-secret-key-' || bytes.length !== 32) throw new Error('not X25519');
      keys.push(new X25519Identity(x25519PrivateKey(bytes)));
    } catch {
      throw new EncryptionKeyError(`${source}: identity ${i + 1} is not a valid age X25519 identity`);
    }
  }
  return new Identities(keys, source, allowUnencrypted);
}

/**
 * One X25519 identity. Its public key and `age1…` recipient are derived on first use: a WAL restore
 * needs the public key only for the stanzas it opens and the recipient never (a one-shot call pays
 * for every step; docs/benchmarks-history.md).
 */
class X25519Identity {
  private pub?: Buffer;
  private rcpt?: string;

  constructor(readonly privateKey: KeyObject) {}

  get publicKey(): Buffer {
    return (this.pub ??= rawPublicKey(createPublicKey(this.privateKey)));
  }

  get recipient(): string {
    return (this.rcpt ??= bech32.encodeFromBytes('age', this.publicKey));
  }
}

class Identities implements AgeIdentities {
  private prints?: string[];

  constructor(readonly keys: X25519Identity[], readonly source: string, readonly allowUnencrypted: boolean) {}

  get fingerprints(): string[] {
    return (this.prints ??= this.keys.map((k) => recipientFingerprint(k.recipient)));
  }
}

export interface AgeIdentities {
  readonly keys: readonly X25519Identity[];
  /** Fingerprints of the recipients these identities decrypt for. */
  readonly fingerprints: readonly string[];
  /** Where they came from, for messages (a file name, never a key). */
  readonly source: string;
  /** --allow-unencrypted: plain objects are accepted beside encrypted ones (else refused, exit 4). */
  readonly allowUnencrypted?: boolean;
}

/**
 * Raw X25519 keys imported as JWK, which node:crypto hands to OpenSSL as raw bytes: the DER
 * (PKCS#8, SPKI) imports go through OpenSSL 3's decoder framework, measured ~0.6 ms per private
 * key and ~0.1 ms per public key here, each call of a one-shot WAL restore paying for both.
 * A private JWK's `x` is not read by node:crypto (the public key is derived from `d`), and the
 * unit tests check this derivation against age's own keys.
 */
function x25519PrivateKey(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(raw).toString('base64url'), x: '' }, format: 'jwk' });
}

function x25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/**
 * The 32 raw bytes of an X25519 public key. Exported as JWK, which OpenSSL gives as the raw key:
 * a DER export went through OpenSSL 3's encoder, ~0.7 ms of CPU per call here.
 */
function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}
const B64 = /^[A-Za-z0-9+/]*$/;

/** Canonical unpadded base64 (age's encoding) or an error. */
function unb64(text: string, what: string): Buffer {
  const out = Buffer.from(text, 'base64');
  if (!B64.test(text) || b64(out) !== text) throw new EncryptedDataError(`${what} has a damaged age header (bad base64)`);
  return out;
}

/**
 * Parses an age v1 header (`end` bytes, through the MAC line), unwraps the file key with the first
 * identity an X25519 stanza opens for, and checks the header MAC. Unknown stanza types are skipped,
 * as age does; a malformed header is EncryptedDataError, no fitting identity EncryptionKeyError.
 */
function openHeader(header: Buffer, ids: AgeIdentities, what: string): Buffer {
  const damaged = (why: string) => new EncryptedDataError(`${what} has a damaged age header (${why})`);
  const lines = header.toString('latin1').split('\n');
  if (lines[0] !== 'age-encryption.org/v1' || lines.at(-1) !== '') throw damaged('no version line');
  let i = 1;
  let fileKey: Buffer | undefined;
  while (lines[i]?.startsWith('-> ')) {
    const args = lines[i]!.slice(3).split(' ');
    if (args.some((a) => a === '')) throw damaged('empty stanza argument');
    const body: Buffer[] = [];
    for (;;) {
      const line = lines[++i];
      if (line === undefined) throw damaged('stanza without body');
      body.push(unb64(line, what));
      if (line.length > 64) throw damaged('stanza line too long');
      if (line.length < 64) break;
    }
    i++;
    if (args[0] !== 'X25519' || fileKey) continue;
    if (args.length !== 2) throw damaged('X25519 stanza arguments');
    const share = unb64(args[1]!, what);
    const sealed = Buffer.concat(body);
    if (share.length !== 32 || sealed.length !== 32) throw damaged('X25519 stanza size');
    const sharePub = x25519PublicKey(share);
    for (const id of ids.keys) {
      const shared = diffieHellman({ privateKey: id.privateKey, publicKey: sharePub });
      if (shared.every((b) => b === 0)) throw damaged('low-order X25519 share');
      const wrapKey = hkdf32(shared, Buffer.concat([share, id.publicKey]), 'age-encryption.org/v1/X25519');
      const d = createDecipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
      d.setAuthTag(sealed.subarray(16));
      const key = d.update(sealed.subarray(0, 16));
      try {
        d.final();
      } catch {
        continue; // another recipient's stanza
      }
      fileKey = key;
      break;
    }
  }
  const macLine = lines[i];
  if (macLine === undefined || !macLine.startsWith('--- ') || i !== lines.length - 2) throw damaged('no MAC line');
  if (!fileKey) throw new EncryptionKeyError(`${what} is encrypted for none of the identities in ${ids.source}`);
  const macInput = header.subarray(0, header.length - macLine.length - 1 + 3);
  const mac = unb64(macLine.slice(4), what);
  const macKey = hkdf32(fileKey, Buffer.alloc(0), 'header');
  const want = createHmac('sha256', macKey).update(macInput).digest();
  if (mac.length !== want.length || !timingSafeEqual(mac, want)) throw damaged('MAC mismatch');
  return fileKey;
}

/** One object's age header plus the key its payload is sealed with. */
interface SealKey {
  head: Buffer;
  streamKey: KeyObject;
}

// The X25519 recipient stanza and the header MAC, written with node:crypto (age-encryption.org/v1):
// importing the library and its pure-JavaScript X25519 cost more than the whole WAL upload (see
// docs/benchmarks-history.md). Checked by the unit tests, which decrypt what this writes with the age program.
const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

function x25519Stanza(recipientKey: Buffer, fileKey: Buffer): string {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const share = rawPublicKey(publicKey);
  const shared = diffieHellman({
    privateKey,
    publicKey: x25519PublicKey(recipientKey),
  });
  // a low-order recipient key gives an all-zero secret: refused, as age does
  if (shared.every((b) => b === 0)) throw new EncryptionKeyError('an age recipient is a low-order X25519 point');
  const wrapKey = hkdf32(shared, Buffer.concat([share, recipientKey]), 'age-encryption.org/v1/X25519');
  const c = createCipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
  const body = Buffer.concat([c.update(fileKey), c.final(), c.getAuthTag()]);
  return `-> X25519 ${b64(share)}\n${b64(body)}\n`;
}

function newSealKey(recipients: readonly string[]): SealKey {
  const fileKey = randomBytes(16);
  let header = 'age-encryption.org/v1\n';
  for (const r of recipients) {
    const key = x25519Recipient(r);
    if (!key) throw new EncryptionKeyError('an age recipient is not a valid X25519 recipient');
    header += x25519Stanza(key, fileKey);
  }
  header += '---';
  const macKey = hkdf32(fileKey, Buffer.alloc(0), 'header');
  const mac = createHmac('sha256', macKey).update(header).digest();
  const nonce = randomBytes(NONCE);
  return { head: Buffer.concat([Buffer.from(`${header} ${b64(mac)}\n`), nonce]), streamKey: payloadKey(fileKey, nonce) };
}

/**
 * HKDF-SHA-256 (RFC 5869) for one 32-byte output block: extract, then expand with counter 1. Two
 * HMACs, where node:crypto's hkdfSync made OpenSSL fetch its KDF on the first call of every
 * process (~0.5 ms of a one-shot WAL call, measured); the header MAC needs HMAC anyway. An empty
 * salt is HMAC's zero-padded key, which is RFC 5869's default salt.
 */
function hkdf32(ikm: Uint8Array, salt: Uint8Array, info: string): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  return createHmac('sha256', prk).update(info).update(ONE).digest();
}
const ONE = Buffer.from([1]);

/** A KeyObject, made once: a Buffer key is checked and copied again by every chunk's cipher. */
function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): KeyObject {
  return createSecretKey(hkdf32(fileKey, nonce, 'payload'));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 11-byte big-endian counter; 2^48 chunks (16 EiB) is more than any object here
  n.writeUIntBE(counter, 5, 6);
  n[11] = last ? 1 : 0;
  return n;
}

/**
 * One sealed chunk as its ciphertext and its tag, handed on as two pieces: joining them would copy
 * every byte once more (measured: a third of the encryption's CPU time beside the cipher itself).
 */
function seal(key: KeyObject, counter: number, last: boolean, plain: Buffer): [Buffer, Buffer] {
  const c = createCipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG });
  const body = c.update(plain);
  c.final();
  return [body, c.getAuthTag()];
}

function open(key: KeyObject, counter: number, last: boolean, sealed: Buffer, what: string): Buffer {
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
 * age's payload cut into 64 KiB chunks and sealed as they fill, for both the stream and the
 * re-readable body. Only one chunk is held back (the last must be flagged as such); a whole chunk
 * inside a larger input piece is sealed where it lies, without a copy.
 */
class ChunkSealer {
  private counter = 0;
  // Reused: the cipher writes its output to a buffer of its own.
  private readonly pending = Buffer.allocUnsafe(CHUNK);
  private used = 0;

  constructor(private readonly key: KeyObject) {}

  *take(piece: Buffer): Generator<Buffer> {
    let at = 0;
    while (at < piece.length) {
      if (this.used === CHUNK) {
        yield* seal(this.key, this.counter++, false, this.pending);
        this.used = 0;
      }
      if (this.used === 0 && piece.length - at > CHUNK) {
        yield* seal(this.key, this.counter++, false, piece.subarray(at, at + CHUNK));
        at += CHUNK;
        continue;
      }
      const n = Math.min(CHUNK - this.used, piece.length - at);
      piece.copy(this.pending, this.used, at, at + n);
      this.used += n;
      at += n;
    }
  }

  finish(): [Buffer, Buffer] {
    return seal(this.key, this.counter, true, this.pending.subarray(0, this.used));
  }
}

/**
 * Encrypts whatever passes through into one age file for `recipients`. The header is made on the
 * first write (one X25519 exchange per recipient).
 */
export function encryptStream(recipients: readonly string[]): Transform {
  let sealer: ChunkSealer | undefined;
  const started = (t: Transform): ChunkSealer => {
    if (sealer) return sealer;
    const k = newSealKey(recipients);
    t.push(k.head);
    return (sealer = new ChunkSealer(k.streamKey));
  };
  const sealing = (t: Transform, pieces: () => Iterable<Buffer>, done: TransformCallback) => {
    try {
      for (const b of pieces()) t.push(b);
    } catch (e) {
      done(e as Error);
      return;
    }
    done();
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      sealing(this, () => started(this).take(chunk), done);
    },
    flush(done: TransformCallback) {
      sealing(this, () => started(this).finish(), done);
    },
  });
}

/**
 * `inner` as one age file for `recipients`, the same bytes on every pass (one header, sealed again
 * from the same key): upload bodies are read more than once (hashed, then sent).
 */
export async function encryptedBody(inner: ChunkedBody, recipients: readonly string[]): Promise<ChunkedBody> {
  const k = newSealKey(recipients);
  function* sealed(): Generator<Buffer> {
    yield k.head;
    const sealer = new ChunkSealer(k.streamKey);
    for (const piece of inner.chunks()) {
      // Each chunk's ciphertext is a new Buffer, dead once hashed or sent: counted, so that the
      // WAL call's scavenges free it as it goes (src/reclaim.ts) instead of letting it pile up.
      for (const b of sealer.take(piece)) {
        yield b;
        bytesMoved(b.length);
      }
    }
    yield* sealer.finish();
  }
  let digest: string | undefined;
  return {
    kind: 'chunked',
    length: k.head.length + inner.length + TAG * Math.max(1, Math.ceil(inner.length / CHUNK)),
    get sha256() {
      return (digest ??= sha256Hex(sealed()));
    },
    chunks: sealed,
    costlyPasses: true,
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
 * Decrypts one age file fed in pieces. `what` names the object in messages. No identity matching
 * the file is an EncryptionKeyError (exit 1, the key is what is missing); a damaged header or chunk
 * is an EncryptedDataError (exit 4). Nothing is returned before the header is authenticated, and a
 * chunk only once it is.
 */
class AgeOpener {
  private header: Buffer | undefined = Buffer.alloc(0);
  private fileKey: Uint8Array | undefined;
  private nonce: Buffer = Buffer.alloc(0);
  private key: KeyObject | undefined;
  private counter = 0;
  // One sealed chunk being gathered across input pieces; whole chunks inside a piece are opened
  // where they lie (no copy). A full chunk is opened only once a byte after it has arrived: only
  // then is it known not to be the last.
  private readonly stage = Buffer.allocUnsafe(CHUNK + TAG);
  private staged = 0;

  constructor(private readonly ids: AgeIdentities, private readonly what: string) {}

  /**
   * The plaintext `piece` completes, authenticated. `piece` is not kept: a part of it still needed
   * is copied, since a source may reuse its buffer once this returns.
   */
  write(piece: Buffer, out: Buffer[]): void {
    if (this.header) {
      // Joined only while the header spans pieces.
      const header = this.header.length === 0 ? piece : Buffer.concat([this.header, piece]);
      const end = headerEnd(header);
      if (end < 0) {
        if (header.length > MAX_HEADER) throw new EncryptedDataError(`${this.what} is not an age file (no header end in ${MAX_HEADER} bytes)`);
        this.header = header === piece ? Buffer.from(piece) : header;
        return;
      }
      if (!header.subarray(0, 22).toString('latin1').startsWith('age-encryption.org/v1\n')) {
        throw new EncryptedDataError(`${this.what} is not an age file`);
      }
      this.fileKey = openHeader(header.subarray(0, end), this.ids, this.what);
      this.header = undefined;
      piece = header.subarray(end);
    }
    let data = piece;
    if (!this.key) {
      // The payload's nonce, usually whole in the piece that ends the header: then nothing is copied.
      const need = NONCE - this.nonce.length;
      if (data.length < need) {
        this.nonce = Buffer.concat([this.nonce, data]);
        return;
      }
      this.key = payloadKey(this.fileKey!, this.nonce.length === 0 ? data.subarray(0, NONCE) : Buffer.concat([this.nonce, data.subarray(0, need)]));
      data = data.subarray(need);
    }
    const key = this.key;
    let at = 0;
    while (at < data.length) {
      if (this.staged === CHUNK + TAG) {
        out.push(open(key, this.counter++, false, this.stage, this.what));
        this.staged = 0;
      }
      if (this.staged === 0 && data.length - at > CHUNK + TAG) {
        out.push(open(key, this.counter++, false, data.subarray(at, at + CHUNK + TAG), this.what));
        at += CHUNK + TAG;
        continue;
      }
      const n = Math.min(CHUNK + TAG - this.staged, data.length - at);
      data.copy(this.stage, this.staged, at, at + n);
      this.staged += n;
      at += n;
    }
  }

  /** The last chunk's plaintext, once the input has ended. */
  end(): Buffer {
    const what = this.what;
    if (this.header) throw new EncryptedDataError(this.header.length === 0 ? `${what} is empty` : `${what} is truncated (age: incomplete header)`);
    if (!this.key || this.staged < TAG) throw new EncryptedDataError(`${what} is truncated (age: no final chunk)`);
    const plain = open(this.key, this.counter, true, this.stage.subarray(0, this.staged), what);
    if (plain.length === 0 && this.counter > 0) throw new EncryptedDataError(`${what} is damaged (age: empty final chunk)`);
    return plain;
  }
}

/** AgeOpener as a stream (backup parts, verify). */
export function decryptStream(ids: AgeIdentities, what: string): Transform {
  const opener = new AgeOpener(ids, what);
  const out: Buffer[] = [];
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        opener.write(chunk, out);
        for (const b of out) this.push(b);
        out.length = 0;
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        this.push(opener.end());
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}

/**
 * AgeOpener as a pipeline() stage over the pieces of `source` (wal-restore): a one-shot restore
 * skips a Transform's buffering and callbacks for each of a segment's ~90 chunks.
 */
export function decryptPieces(ids: AgeIdentities, what: string): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* decrypting(source) {
    const opener = new AgeOpener(ids, what);
    const out: Buffer[] = [];
    for await (const piece of source) {
      opener.write(piece, out);
      yield* out;
      out.length = 0;
    }
    yield opener.end();
  };
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

/**
 * For the build's code cache only (makeWalCodeCache in src/cli/launch.ts): runs this module's WAL
 * paths once, in memory, with a throwaway key, so that V8 puts their compiled functions in the
 * cache instead of compiling them on every encrypted WAL call. Writes and keeps nothing.
 */
export async function exerciseForCodeCache(): Promise<void> {
  const identity = bech32.encodeFromBytes('age-secret-key-', randomBytes(32)).toUpperCase();
  const ids = await parseIdentities(`# throwaway\n${identity}\n`, 'code cache');
  const recipients = await parseRecipients(ids.keys[0]!.recipient, 'code cache');
  // Two chunks and a partial one: both of decryptStream's ways through a chunk are taken.
  const plain = Buffer.alloc(2 * CHUNK + 100, 0x5a);
  const body = await encryptedBody({ kind: 'chunked', length: plain.length, sha256: '', chunks: () => [plain] }, recipients);
  const sealed = Buffer.concat([...body.chunks()]);
  if (!body.sha256 || !(await decryptBuffer(ids, sealed, 'code cache')).equals(plain)) throw new Error('age round trip failed');
  // wal-restore's way: the generator stage, fed pieces that do not line up with age's chunks
  const pieces = async function* () {
    for (let at = 0; at < sealed.length; at += 50_000) yield sealed.subarray(at, at + 50_000);
  };
  const opened: Buffer[] = [];
  for await (const b of decryptPieces(ids, 'code cache')(pieces())) opened.push(b);
  if (!Buffer.concat(opened).equals(plain)) throw new Error('age round trip failed');
}

// The age container written and read here against Debian's age 1.1.1 (both directions), plus the
// refusals: wrong identity, damage, truncation. Pure logic and the real `age` program, no store.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { piecesBody } from '../../src/storage/body.js';
import { EncryptedDataError, EncryptionKeyError } from '../../src/errors.js';
import type { AgeIdentities } from '../../src/encryption/age.js';
import {
  decryptBuffer, decryptPieces, decryptStream, encryptedBody, encryptStream, parseIdentities, parseRecipients, recipientFingerprint,
} from '../../src/encryption/age.js';

const haveAge = spawnSync('age', ['--version']).status === 0;
if (!haveAge && process.env.CI === 'true') throw new Error('age (Debian package age) is required in CI');
const dir = mkdtempSync(join(tmpdir(), 'age-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keygen(name: string): { identityFile: string; recipient: string; identity: string } {
  const identityFile = join(dir, name);
  execFileSync('age-keygen', ['-o', identityFile], { stdio: 'ignore' });
  const identity = readFileSync(identityFile, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
  const recipient = execFileSync('age-keygen', ['-y', identityFile], { encoding: 'utf8' }).trim();
  return { identityFile, recipient, identity };
}

async function through(t: NodeJS.ReadWriteStream, data: Buffer, piece = 7919): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) pieces.push(data.subarray(i, i + piece));
  return buffer(Readable.from(pieces).pipe(t as unknown as NodeJS.WritableStream & Readable));
}

/**
 * `data` through decryptPieces (wal-restore's stage) in pieces of `piece` bytes, from one buffer
 * refilled after each piece when `reuse`. Returns what was yielded and the error, if any.
 */
async function opened(ids: AgeIdentities, data: Buffer, piece: number, reuse = false): Promise<{ out: Buffer; err?: unknown }> {
  const source = async function* () {
    const held = Buffer.alloc(piece);
    for (let at = 0; at < data.length; at += piece) {
      if (!reuse) {
        yield data.subarray(at, at + piece);
        continue;
      }
      const n = data.copy(held, 0, at, Math.min(at + piece, data.length));
      yield held.subarray(0, n);
      held.fill(0xee);
    }
  };
  const out: Buffer[] = [];
  try {
    for await (const b of decryptPieces(ids, 'obj')(source())) out.push(Buffer.from(b));
  } catch (err) {
    return { out: Buffer.concat(out), err };
  }
  return { out: Buffer.concat(out) };
}

// sizes around the 64 KiB chunk boundary, where the "last chunk" flag matters
const SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 200_000];

describe.skipIf(!haveAge)('age format', () => {
  const a = haveAge ? keygen('a.txt') : undefined!;
  const b = haveAge ? keygen('b.txt') : undefined!;

  it.each(SIZES)('our stream of %i bytes is read by age -d, and age -e output by us', async (size) => {
    const plain = Buffer.alloc(size);
    for (let i = 0; i < size; i++) plain[i] = (i * 7 + (i >> 9)) & 255;
    const recipients = await parseRecipients(`# comment\n\n${a.recipient}\n${b.recipient}\n`, 'r.txt');
    const sealed = await through(encryptStream(recipients), plain);
    const f = join(dir, `obj-${size}.age`);
    writeFileSync(f, sealed);
    expect(execFileSync('age', ['-d', '-i', b.identityFile, f]).equals(plain)).toBe(true);
    // the re-readable body form gives a valid file too, identical on every pass
    const body = await encryptedBody(piecesBody([plain.subarray(0, size >> 1), plain.subarray(size >> 1)]), recipients);
    const once = Buffer.concat([...body.chunks()]);
    expect(Buffer.concat([...body.chunks()]).equals(once)).toBe(true);
    expect(once.length).toBe(body.length);
    writeFileSync(f, once);
    expect(execFileSync('age', ['-d', '-i', a.identityFile, f]).equals(plain)).toBe(true);

    const theirs = execFileSync('age', ['-e', '-r', a.recipient], { input: plain });
    const ids = await parseIdentities(readFileSync(a.identityFile, 'utf8'), a.identityFile);
    expect((await through(decryptStream(ids, 'obj'), theirs, 1000)).equals(plain)).toBe(true);

    // the reference TypeScript implementation agrees both ways
    const lib = await import('age-encryption');
    const d = new lib.Decrypter();
    d.addIdentity(b.identity);
    expect(Buffer.from(await d.decrypt(sealed)).equals(plain)).toBe(true);
    const e = new lib.Encrypter();
    e.addRecipient(b.recipient);
    e.addRecipient(a.recipient);
    const libSealed = Buffer.from(await e.encrypt(plain));
    expect((await through(decryptStream(ids, 'obj'), libSealed, 4096)).equals(plain)).toBe(true);
  });

  // Whole chunks inside a large input piece are sealed and opened where they lie; a piece that ends
  // exactly on a chunk boundary must leave that chunk for the end (it may be the last one).
  it.each([[2 * 65536, 2 * 65536], [2 * 65536, 65536], [3 * 65536 + 5, 65552], [3 * 65536 + 5, 65553], [200_000, 200_000], [65552 * 2, 65552]])(
    '%i bytes in pieces of %i: age -d reads our stream, and we read it and age -e output back',
    async (size, piece) => {
      const plain = Buffer.alloc(size);
      for (let i = 0; i < size; i++) plain[i] = (i * 13 + (i >> 10)) & 255;
      const recipients = await parseRecipients(a.recipient, 'r.txt');
      const sealed = await through(encryptStream(recipients), plain, piece);
      const f = join(dir, `big-${size}-${piece}.age`);
      writeFileSync(f, sealed);
      expect(execFileSync('age', ['-d', '-i', a.identityFile, f]).equals(plain)).toBe(true);
      const ids = await parseIdentities(readFileSync(a.identityFile, 'utf8'), a.identityFile);
      expect((await through(decryptStream(ids, 'obj'), sealed, piece)).equals(plain)).toBe(true);
      const theirs = execFileSync('age', ['-e', '-r', a.recipient], { input: plain });
      expect((await through(decryptStream(ids, 'obj'), theirs, piece)).equals(plain)).toBe(true);
      for (const sealedBy of [sealed, theirs]) {
        const { out, err } = await opened(ids, sealedBy, piece);
        expect(err).toBeUndefined();
        expect(out.equals(plain)).toBe(true);
      }
      const body = await encryptedBody(piecesBody([plain]), recipients);
      writeFileSync(f, Buffer.concat([...body.chunks()]));
      expect(execFileSync('age', ['-d', '-i', a.identityFile, f]).equals(plain)).toBe(true);
    },
  );

  // The header and the payload nonce are read from the pieces where they lie; a piece the header
  // does not end in is kept, and must be a copy: a source may refill its buffer after each write.
  it('reads a source that reuses one buffer, wherever its pieces cut the header and the nonce', async () => {
    const plain = Buffer.alloc(2 * 65536 + 5);
    for (let i = 0; i < plain.length; i++) plain[i] = (i * 31 + (i >> 8)) & 255;
    const sealed = await through(encryptStream([a.recipient]), plain);
    const headerEnd = sealed.indexOf('\n', sealed.indexOf('\n--- ') + 1) + 1;
    const ids = await parseIdentities(a.identity, 'ids');
    for (const piece of [7, headerEnd - 1, headerEnd, headerEnd + 1, headerEnd + 16, headerEnd + 17, 65536]) {
      const t = decryptStream(ids, 'obj');
      const out: Buffer[] = [];
      t.on('data', (c: Buffer) => out.push(Buffer.from(c)));
      const reused = Buffer.alloc(piece);
      for (let at = 0; at < sealed.length; at += piece) {
        const n = sealed.copy(reused, 0, at, Math.min(at + piece, sealed.length));
        await new Promise<void>((resolve, reject) => t.write(reused.subarray(0, n), (e) => (e ? reject(e) : resolve())));
        reused.fill(0xee);
      }
      await new Promise<void>((resolve, reject) => {
        t.on('error', reject);
        t.on('end', resolve);
        t.end();
      });
      expect(Buffer.concat(out).equals(plain), `pieces of ${piece}`).toBe(true);
      const { out: viaPieces, err } = await opened(ids, sealed, piece, true);
      expect(err).toBeUndefined();
      expect(viaPieces.equals(plain), `decryptPieces, pieces of ${piece}`).toBe(true);
    }
  });

  it('refuses a file for another key with EncryptionKeyError, naming the identity file only', async () => {
    const sealed = await through(encryptStream([a.recipient]), Buffer.from('secret page'));
    const ids = await parseIdentities(b.identity, 'b-ids.txt');
    const err = await decryptBuffer(ids, sealed, 'WAL object X.age').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EncryptionKeyError);
    expect((err as Error).message).toBe('WAL object X.age is encrypted for none of the identities in b-ids.txt');
    const viaPieces = await opened(ids, sealed, 50);
    expect(viaPieces.err).toBeInstanceOf(EncryptionKeyError);
    expect(viaPieces.out.length).toBe(0);
    expect((err as Error).message).not.toContain('AGE-SECRET');
  });

  // Identities are imported as raw X25519 keys (JWK), their public half derived by OpenSSL: what
  // age-keygen derives, for every key (the stanza's HKDF salt holds it).
  it('derives the same recipient as age-keygen -y from each identity', async () => {
    const ids = await parseIdentities(`${a.identity}\n${b.identity}\n`, 'ids');
    expect(ids.keys.map((k) => k.recipient)).toEqual([a.recipient, b.recipient]);
  });

  it('tries every identity (rotation: the old key still reads old objects)', async () => {
    const old = await through(encryptStream([a.recipient]), Buffer.from('old'));
    const ids = await parseIdentities(`${b.identity}\n${a.identity}\n`, 'ids');
    expect((await decryptBuffer(ids, old, 'o')).toString()).toBe('old');
    expect(ids.fingerprints).toEqual([recipientFingerprint(b.recipient), recipientFingerprint(a.recipient)]);
  });

  it('refuses damage and truncation with EncryptedDataError, never passing unauthenticated bytes', async () => {
    const plain = Buffer.alloc(150_000, 0x41);
    const sealed = await through(encryptStream([a.recipient]), plain);
    const ids = await parseIdentities(a.identity, 'ids');
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 100]! ^= 1;
    const macTampered = Buffer.from(sealed);
    const at = macTampered.indexOf('\n--- ') + 6;
    macTampered[at] = macTampered[at] === 0x41 ? 0x42 : 0x41;
    for (const bad of [macTampered, flipped, sealed.subarray(0, sealed.length - 1), sealed.subarray(0, 65536 * 2 + 300), sealed.subarray(0, 40), Buffer.alloc(0)]) {
      const out: Buffer[] = [];
      const t = decryptStream(ids, 'obj');
      t.on('data', (c: Buffer) => out.push(c));
      const err = await new Promise((resolve) => {
        t.on('error', resolve);
        t.on('end', () => resolve(undefined));
        t.end(bad);
      });
      expect(err).toBeInstanceOf(EncryptedDataError);
      // whatever was passed on is an authenticated prefix of the plaintext
      expect(plain.subarray(0, Buffer.concat(out).length).equals(Buffer.concat(out))).toBe(true);
      for (const piece of [1000, 65552, 200_000]) {
        const viaPieces = await opened(ids, bad, piece);
        expect(viaPieces.err).toBeInstanceOf(EncryptedDataError);
        expect(plain.subarray(0, viaPieces.out.length).equals(viaPieces.out)).toBe(true);
      }
    }
  });

  it('rejects malformed key files without quoting them', async () => {
    await expect(parseRecipients('age1notakey\n', 'r.txt')).rejects.toThrow(/^r\.txt: recipient 1 is not a valid age X25519 recipient$/);
    await expect(parseRecipients('# only a comment\n', 'r.txt')).rejects.toThrow(/holds no age recipient/);
    await expect(parseIdentities('AGE-SECRET-KEY-1QQQ\n', 'i.txt')).rejects.toThrow(/^i\.txt: identity 1 is not a valid age X25519 identity$/);
    await expect(parseIdentities(`${a.recipient}\n`, 'i.txt')).rejects.toThrow(/^i\.txt, line 1: not an age identity/);
  });
});

// The Bech32 codec age keys are written in (src/encryption/bech32.ts): BIP 173's test vectors, and
// @scure/base (the reference age library's codec, a dev dependency here) as a second oracle.
import { randomBytes } from 'node:crypto';
import { bech32 } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { bech32Decode, bech32Encode } from '../../src/encryption/bech32.js';

describe('bech32', () => {
  it('accepts BIP 173 valid strings, either case, and decodes their bytes', () => {
    expect(bech32Decode('A12UEL5L')).toEqual({ prefix: 'a', bytes: Buffer.alloc(0) });
    expect(bech32Decode('a12uel5l')).toEqual({ prefix: 'a', bytes: Buffer.alloc(0) });
    const d = bech32Decode('abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw');
    expect(d?.prefix).toBe('abcdef');
    // the 32 five-bit words 0..31 in order, regrouped into 20 bytes
    expect(d?.bytes.toString('hex')).toBe(Buffer.from(bech32.fromWords([...Array(32).keys()])).toString('hex'));
  });

  it.each([
    ['A1G7SGD8', 'checksum made with the upper-case prefix'],
    ['10a06t8', 'empty prefix'],
    ['1qzzfhee', 'empty prefix'],
    ['x1b4n0q5v', 'character outside the alphabet'],
    ['li1dgmt3', 'checksum too short'],
    ['pzry9x8gf2tvdw0s3jn54khce6mua7l', 'no separator'],
    ['A12uEL5L', 'mixed case'],
    ['a12uel5m', 'one character changed'],
  ])('refuses %s (%s)', (text) => {
    expect(bech32Decode(text)).toBeUndefined();
  });

  it('refuses non-zero padding bits, which would let two strings name one key', () => {
    // 'l' is word 31: its last bits cannot be padding of a whole number of bytes
    const words = [...bech32.toWords(Buffer.alloc(32, 7))];
    words[words.length - 1] = 31;
    expect(bech32Decode(bech32.encode('age', words))).toBeUndefined();
  });

  it('encodes and decodes 32-byte keys as @scure/base does', () => {
    for (let i = 0; i < 50; i++) {
      const key = randomBytes(32);
      for (const prefix of ['age', 'age-secret-key-']) {
        const text = bech32Encode(prefix, key);
        expect(text).toBe(bech32.encodeFromBytes(prefix, key));
        expect(bech32Decode(text)).toEqual({ prefix, bytes: key });
        expect(bech32Decode(text.toUpperCase())).toEqual({ prefix, bytes: key });
      }
    }
  });
});

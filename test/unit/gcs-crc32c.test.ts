// The CRC32C that the GCS driver hands to the client and sends as X-Goog-Hash: the values of RFC 3720's
// test vectors and the check value, in GCS's base64 of the big-endian number, whole and fed in pieces.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Crc32c } from '../../src/storage/gcs/gcs.ts';

const b64 = (n: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(n);
  return out.toString('base64');
};
const crcOf = (...pieces: Buffer[]) => {
  const c = new Crc32c();
  for (const p of pieces) c.update(p);
  return c.toString();
};

describe('GCS CRC32C', () => {
  it.each([
    ['32 zero bytes', Buffer.alloc(32), 0x8a9136aa],
    ['32 0xff bytes', Buffer.alloc(32, 0xff), 0x62a8ab43],
    ['0..31', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    ['31..0', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
    ['"123456789"', Buffer.from('123456789'), 0xe3069283],
    ['nothing', Buffer.alloc(0), 0],
  ])('%s', (_name, data, expected) => {
    expect(crcOf(data)).toBe(b64(expected));
    const c = new Crc32c();
    c.update(data);
    expect(c.validate(b64(expected))).toBe(true);
    expect(c.validate(b64((expected ^ 1) >>> 0))).toBe(false);
  });

  it('gives the same value for a body fed in uneven pieces as for the whole', () => {
    const body = randomBytes(3 * 262_144 + 12_345);
    const whole = crcOf(body);
    expect(crcOf(body.subarray(0, 7), body.subarray(7, 262_151), body.subarray(262_151))).toBe(whole);
    expect(crcOf(body)).toBe(whole);
  });
});

// The check after a quiet DeleteObjects lists from justBefore(smallest key) within commonPrefix(keys)
// (docs/format.md#result-answers): S3 orders keys by their UTF-8 bytes, JavaScript strings by UTF-16
// units, and the two differ past U+FFFF. A start-after that sorted after the key would skip it, and
// a prefix cut inside a surrogate pair would match no key at all.
import { describe, expect, it } from 'vitest';
import { commonPrefix, justBefore } from '../../src/storage/s3/key-order.ts';

const bytes = (s: string) => Buffer.from(s, 'utf8');
/** -1, 0 or 1 as S3 orders two keys. */
const order = (a: string, b: string) => Math.sign(Buffer.compare(bytes(a), bytes(b)));
/** No lone surrogate: the string survives UTF-8 unchanged. */
const wellFormed = (s: string) => bytes(s).toString('utf8') === s;

// ASCII, Latin-1, the last BMP characters before and after the surrogates, and characters past U+FFFF
const POOL = ['\0', '/', '0', 'A', 'z', '~', '\u00e9', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1f600}', '\u{1f601}', '\u{10ffff}'];

function randomKey(rand: () => number): string {
  let key = '';
  const n = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) key += POOL[Math.floor(rand() * POOL.length)];
  return key;
}

/** A small seeded generator (mulberry32), so that a failure names keys that come back. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('justBefore: a start-after that keeps the key in the listing', () => {
  it('sorts before the key and after the keys that end one character lower', () => {
    expect(justBefore('wals/0000000100000001/000000010000000100000002')).toBe('wals/0000000100000001/000000010000000100000001\u{10ffff}');
    expect(order(justBefore('a/b'), 'a/b')).toBe(-1);
    expect(order('a/a', justBefore('a/b'))).toBe(-1);
    expect(order('a/azzzz', justBefore('a/b'))).toBe(-1);
  });

  it('past U+FFFF, at the surrogates and at NUL', () => {
    expect(justBefore('k\u{1f600}')).toBe('k\u{1f5ff}\u{10ffff}');
    // U+E000 sorts after every surrogate pair in UTF-16 but before them in UTF-8; one lower than it is U+D7FF
    expect(justBefore('k\ue000')).toBe('k\ud7ff\u{10ffff}');
    expect(justBefore('k\0')).toBe('k');
    expect(justBefore('\0')).toBe('');
  });

  it('sorts before every key, in UTF-8 byte order (2,000 random keys)', () => {
    const rand = seeded(14);
    for (let i = 0; i < 2000; i++) {
      const key = randomKey(rand);
      const start = justBefore(key);
      expect(order(start, key), JSON.stringify(key)).toBe(-1);
      // and it is a well-formed string (no lone surrogate S3 could not take)
      expect(wellFormed(start), JSON.stringify(key)).toBe(true);
    }
  });
});

describe('commonPrefix: a prefix every key starts with, also in UTF-8', () => {
  it('the longest common start', () => {
    expect(commonPrefix(['pg/srv/wals/0000000100000001/x', 'pg/srv/wals/0000000100000002/y'])).toBe('pg/srv/wals/000000010000000');
    expect(commonPrefix(['same', 'same'])).toBe('same');
    expect(commonPrefix(['a', 'b'])).toBe('');
  });

  it('never ends inside a surrogate pair', () => {
    // U+1F600 and U+1F601 share their high surrogate
    expect(commonPrefix(['ab\u{1f600}x', 'ab\u{1f601}y'])).toBe('ab');
  });

  it('every key starts with it in its UTF-8 bytes (500 random sets)', () => {
    const rand = seeded(15);
    for (let i = 0; i < 500; i++) {
      const base = randomKey(rand);
      const keys = Array.from({ length: 2 + Math.floor(rand() * 4) }, () => base + randomKey(rand));
      const prefix = bytes(commonPrefix(keys));
      expect(wellFormed(commonPrefix(keys))).toBe(true);
      for (const key of keys) expect(bytes(key).subarray(0, prefix.length).equals(prefix), JSON.stringify(keys)).toBe(true);
      expect(prefix.length).toBeGreaterThanOrEqual(bytes(base).length);
    }
  });
});

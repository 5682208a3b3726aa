import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkedToBuffer, exactChunks, piecesBody, sha256Hex, type ChunkedBody } from '../../src/storage/body.ts';

const declared = (length: number, actual: Buffer[]): ChunkedBody => ({ kind: 'chunked', length, sha256: '', chunks: () => actual });

describe('chunked bodies', () => {
  it('a body that yields fewer or more bytes than it declares is refused', () => {
    expect(() => [...exactChunks(declared(10, [Buffer.alloc(9)]))]).toThrow(/changed while it was read: 9 bytes instead of 10/);
    expect(() => chunkedToBuffer(declared(10, [Buffer.alloc(6), Buffer.alloc(5)]))).toThrow(/11 bytes instead of 10/);
    expect(chunkedToBuffer(declared(4, [Buffer.from('ab'), Buffer.from('cd')])).toString()).toBe('abcd');
  });

  it('hashes pieces as one stream', () => {
    const whole = createHash('sha256').update('hello world').digest('hex');
    expect(sha256Hex([Buffer.from('hello '), Buffer.from('world')])).toBe(whole);
    expect(piecesBody([Buffer.from('hello'), Buffer.from(' world')]).sha256).toBe(whole);
    expect(piecesBody([Buffer.from('ab'), Buffer.from('c')]).length).toBe(3);
  });
});

// readPart (src/verify/archive.ts): a download that fails is the store's trouble (thrown, exit 4),
// a part that fails to parse is a finding about the part (reported) — told apart by which stage
// failed first, since the pipeline then destroys the source with the same error.
import { describe, it, expect } from 'vitest';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { crc32c } from '@node-rs/crc32';
import { readPart } from '../../src/verify/archive.ts';
import { NetworkError } from '../../src/errors.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

async function tarOf(name: string, body: Buffer): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((res) => pack.on('end', () => res(Buffer.concat(chunks))));
  pack.entry({ name, size: body.length }, body);
  pack.finalize();
  return done;
}

/** A store whose GET streams `bytes`, then (optionally) fails like a reset connection. */
function storeServing(bytes: Buffer, failAfter?: number): ObjectStore {
  return {
    async get(_key: string, opts: { start?: number } = {}) {
      const data = bytes.subarray(opts.start ?? 0);
      if (failAfter === undefined) return Readable.from([data]);
      return new Readable({
        read() {
          this.push(data.subarray(0, failAfter));
          this.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
        },
      });
    },
  } as unknown as ObjectStore;
}

describe('readPart', () => {
  it('a download failing mid-stream is thrown as a NetworkError, not reported as a damaged part', async () => {
    const tar = await tarOf('base/1/1', Buffer.alloc(100_000, 7));
    await expect(readPart(storeServing(tar, 30_000), 'k', tar.length, undefined, () => {})).rejects.toBeInstanceOf(NetworkError);
  });

  it('a garbled header is reported as an unreadable part, with the SHA-256 of every byte', async () => {
    const tar = await tarOf('base/1/1', Buffer.alloc(100_000, 7));
    tar[3] ^= 0x40;
    const r = await readPart(storeServing(tar), 'k', tar.length, undefined, () => {});
    expect(r.unreadable).toMatch(/^not a readable tar: /);
    expect(r.bytes).toBe(tar.length);
  });

  it('an intact part: members with size and CRC-32C, no finding', async () => {
    const tar = await tarOf('base/1/1', Buffer.from('123456789'));
    const members: unknown[] = [];
    const r = await readPart(storeServing(tar), 'k', tar.length, undefined, (m) => members.push(m));
    expect(r.unreadable).toBeUndefined();
    // CRC-32C("123456789") = 0xE3069283, the standard check value
    expect(members).toEqual([{ name: 'base/1/1', type: 'file', size: 9, crc32c: 0xe3069283 }]);
  });

  it('keepContent hands over at most the bytes asked for, while size and CRC-32C cover the whole member', async () => {
    // several chunks through the parser: the limit holds across them
    const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    const tar = await tarOf('global/pg_control', body);
    const kept: (Buffer | undefined)[] = [];
    const members: unknown[] = [];
    await readPart(storeServing(tar), 'k', tar.length, undefined, (m, content) => {
      members.push(m);
      kept.push(content);
    }, { keepContent: (name) => (name === 'global/pg_control' ? 70_000 : 0) });
    expect(members).toEqual([{ name: 'global/pg_control', type: 'file', size: body.length, crc32c: crc32c(body) }]);
    expect(kept[0]).toEqual(body.subarray(0, 70_000));
  });
});

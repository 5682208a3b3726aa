// GetOptions.pieceSize: a restore reads its parts in 1 MiB pieces (each then passes the hash, the tar
// parser and write(2) once); the drivers that choose their pieces honour it, and default without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { STREAM_PIECE } from '../../src/storage/http1.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { startMotoBucket } from '../helpers/moto.ts';
import type { ServerHandle } from '../helpers/servers.ts';

const MiB = 1024 * 1024;
const data = randomBytes(3 * MiB + 100);

async function pieces(store: ObjectStore, key: string, pieceSize?: number): Promise<number[]> {
  const sizes: number[] = [];
  const got: Buffer[] = [];
  for await (const c of await store.get(key, { pieceSize })) {
    sizes.push((c as Buffer).length);
    got.push(c as Buffer);
  }
  expect(Buffer.concat(got).equals(data)).toBe(true);
  return sizes;
}

let work: string;
let moto: ServerHandle | undefined;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-pieces-'));
});
afterAll(async () => {
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('get() in pieces of the size asked for', () => {
  it('file store: 1 MiB pieces when asked, 64 KiB (the read stream default) otherwise', async () => {
    const store = await openObjectStore({ provider: 'file', bucket: work, retry: DEFAULT_RETRY });
    await store.put('srv/base/b/data.tar', data);
    expect(await pieces(store, 'srv/base/b/data.tar', MiB)).toEqual([MiB, MiB, MiB, 100]);
    expect(Math.max(...(await pieces(store, 'srv/base/b/data.tar')))).toBe(64 * 1024);
    await store.close();
  });

  it('lean S3 client (moto): 1 MiB pieces when asked, STREAM_PIECE otherwise', async () => {
    const started = await startMotoBucket(`pieces-${process.pid}`);
    moto = started.moto;
    const store = started.store;
    expect(store.constructor.name).toBe('LeanS3ObjectStore');
    await store.put('srv/base/b/data.tar', data);
    expect(await pieces(store, 'srv/base/b/data.tar', MiB)).toEqual([MiB, MiB, MiB, 100]);
    expect(Math.max(...(await pieces(store, 'srv/base/b/data.tar')))).toBe(STREAM_PIECE);
    await store.close();
  }, 60_000);
});

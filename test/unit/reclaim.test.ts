// The bulk data paths report the bytes they move to src/reclaim.ts, which asks for a young-generation
// collection every `everyBytes` (issue 14: dead read buffers and compressed blocks otherwise piled
// up to 20-40 MB in a backup before V8 collected them). A counting collector stands in for V8's.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getHeapStatistics } from 'node:v8';
import { bytesMoved, setYoungCollector } from '../../src/reclaim.ts';
import { collectYoungGarbageOften } from '../../src/cli/young-generation.ts';
import { produceArchive, type PartSink } from '../../src/backup/tar-producer.ts';
import { extractArchive } from '../../src/backup/extract.ts';

const MiB = 1024 * 1024;
let collections = 0;
const countCollections = () => void collections++;

describe('young-generation collections per bytes moved', () => {
  let work: string;
  let tar: Buffer;
  const data = Buffer.alloc(10 * MiB, 7);

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bc-reclaim-'));
    mkdirSync(join(work, 'src'));
    writeFileSync(join(work, 'src', 'big'), data);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('collects each time everyBytes more have been moved', () => {
    setYoungCollector(countCollections, 4 * MiB);
    collections = 0;
    for (let i = 0; i < 40; i++) bytesMoved(MiB / 2); // 20 MiB
    expect(collections).toBe(5);
    bytesMoved(3 * MiB); // 23 MiB: not yet a sixth
    expect(collections).toBe(5);
    bytesMoved(MiB); // 24 MiB
    expect(collections).toBe(6);
  });

  it('the tar producer reports every byte it writes', async () => {
    setYoungCollector(countCollections, 4 * MiB);
    collections = 0;
    const chunks: Buffer[] = [];
    const sink: PartSink = async (part) => {
      for await (const chunk of part.stream) chunks.push(chunk as Buffer);
    };
    const result = await produceArchive({
      root: join(work, 'src'),
      kind: 'pgdata',
      name: 'data',
      pgControl: false,
      maxArchiveSize: 1 << 30,
      exclusion: { majorVersion: '15', pgdata: join(work, 'src'), tablespaces: [] },
      onPart: sink,
    });
    tar = Buffer.concat(chunks);
    expect(result.tarBytes).toBe(tar.length);
    expect(collections).toBe(Math.floor(tar.length / (4 * MiB)));
    expect(collections).toBe(2);
  });

  it('the extractor reports every byte of tar it reads, headers included', async () => {
    setYoungCollector(countCollections, 4 * MiB);
    collections = 0;
    const dest = join(work, 'dest');
    mkdirSync(dest);
    // in 64 KiB chunks, as a download arrives
    const chunks = Array.from({ length: Math.ceil(tar.length / (64 << 10)) }, (_, i) => tar.subarray(i * (64 << 10), (i + 1) * (64 << 10)));
    await extractArchive(Readable.from(chunks), dest);
    expect(readFileSync(join(dest, 'big')).equals(data)).toBe(true);
    expect(collections).toBe(Math.floor(tar.length / (4 * MiB)));
  });

  it('a tar of small files counts as its size, not its few bytes of content', async () => {
    const small = join(work, 'small');
    mkdirSync(small);
    for (let i = 0; i < 10_000; i++) writeFileSync(join(small, `f${i}`), 'x');
    const chunks: Buffer[] = [];
    setYoungCollector(() => undefined);
    await produceArchive({
      root: small, kind: 'pgdata', name: 'data', pgControl: false, maxArchiveSize: 1 << 30,
      exclusion: { majorVersion: '15', pgdata: small, tablespaces: [] },
      onPart: async (part) => {
        for await (const chunk of part.stream) chunks.push(chunk as Buffer);
      },
    });
    const smallTar = Buffer.concat(chunks);
    setYoungCollector(countCollections, MiB);
    collections = 0;
    const dest = join(work, 'small-dest');
    mkdirSync(dest);
    const pieces = Array.from({ length: Math.ceil(smallTar.length / (64 << 10)) }, (_, i) => smallTar.subarray(i * (64 << 10), (i + 1) * (64 << 10)));
    await extractArchive(Readable.from(pieces), dest);
    // 10,000 bytes of content in ~19 MiB of tar: one collection per MiB of it, not none
    expect(collections).toBe(Math.floor(smallTar.length / MiB));
    expect(collections).toBeGreaterThanOrEqual(9);
  });
});

describe('a full collection once Buffer memory outlives the scavenges', () => {
  it('frees Buffers that died after their wrappers were promoted', () => {
    collectYoungGarbageOften(MiB, 16 * MiB);
    const external = () => getHeapStatistics().external_memory;
    // What earlier work left is settled first: the step counts from what a full collection leaves.
    for (let i = 0; i < 2; i++) bytesMoved(MiB);
    const before = external();
    let peak = 0;
    // As in a restore of many small files: each piece stays in use across two scavenges (its
    // wrapper is promoted) and dies after, where scavenges alone never free it: 64 MiB of them
    // without the full collection.
    const inUse: Buffer[] = [];
    for (let i = 0; i < 64; i++) {
      inUse.push(Buffer.allocUnsafeSlow(MiB));
      if (inUse.length > 3) inUse.shift();
      bytesMoved(MiB);
      peak = Math.max(peak, external() - before);
    }
    expect(inUse).toHaveLength(3);
    expect(peak).toBeLessThan(24 * MiB);
  });
});

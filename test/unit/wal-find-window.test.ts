// findWals (the prefetcher's one LIST per window) picks, for every WAL file, what findWal picks
// with its own listing (barman's candidate order: docs/format.md#wal-restore), on a real directory store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { findWal, findWals } from '../../src/wal/restore.ts';

describe('findWals', () => {
  let root: string;
  let store: ObjectStore;
  const layout = new ServerLayout('', 'srv');
  // Across a log boundary (two wals/ directories); plain, compressed, both, encrypted, .partial only, missing.
  const objects = [
    '0000000100000000000000FE', // plain
    '0000000100000000000000FF.lz4',
    '0000000100000000000000FF', // the compressed copy wins over the exact key
    '000000010000000100000000.gz.age',
    '000000010000000100000001.partial', // skipped with noPartial
    '000000010000000100000002.00000028.backup',
    '000000010000000100000002.zst', // the .backup file is no candidate
    // 000000010000000100000003: missing
    '000000010000000100000004.age', // encrypted, uncompressed
  ];
  const names = ['0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001',
    '000000010000000100000002', '000000010000000100000003', '000000010000000100000004'];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'bc-findwals-'));
    store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    for (const o of objects) await store.put(layout.walDirectory(o.slice(0, 24)) + o, Buffer.from('x'));
  });
  afterAll(async () => {
    await store.close();
    rmSync(root, { recursive: true, force: true });
  });

  it.each([{ noPartial: true }, { noPartial: false }])('chooses as findWal does for each file (%o)', async (options) => {
    const window = await findWals(store, layout, names, options);
    expect([...window.keys()]).toEqual(names);
    // the same choice, plus the listed size and time (what tells the prefetcher an object changed)
    for (const n of names) {
      const c = window.get(n) ?? null;
      expect({ n, c: c && { ...c, version: undefined } }).toEqual({ n, c: await findWal(store, layout, n, options) });
      if (c) expect(c.version).toMatch(/^1 \d+$/);
    }
    expect(window.get('0000000100000000000000FF')?.key).toMatch(/FF\.lz4$/);
    expect(window.get('000000010000000100000003')).toBeNull();
    expect(window.get('000000010000000100000001')?.key ?? null).toBe(options.noPartial ? null : 'srv/wals/0000000100000001/000000010000000100000001.partial');
  });
});

// The --async worker's shared WAL directory listings (src/wal/async.ts): pure bookkeeping, so a
// stub store whose LISTs the test finishes by hand.
import { describe, expect, it } from 'vitest';
import { SharedWalListings } from '../../src/wal/async.ts';
import type { ListEntry, ObjectStore } from '../../src/storage/types.ts';

/** A store whose every LIST answers the keys present when it started, once the test releases it. */
function stubStore() {
  const keys: string[] = [];
  const pending: (() => void)[] = [];
  const store = {
    async *list(): AsyncIterable<ListEntry> {
      const seen = [...keys];
      await new Promise<void>((r) => pending.push(r));
      for (const key of seen) yield { kind: 'object', key, size: 1, lastModified: new Date(0) };
    },
  } as unknown as ObjectStore;
  const releaseAll = async () => {
    for (const r of pending.splice(0)) r();
    await new Promise((r) => setTimeout(r, 5));
  };
  return { store, keys, pending, releaseAll };
}

describe('SharedWalListings', () => {
  it('fresh() never answers from a listing that started before the call; callers meanwhile share the next one', async () => {
    const s = stubStore();
    const l = new SharedWalListings(s.store);
    const early = l.fresh('w/');
    await new Promise((r) => setTimeout(r, 5));
    // Created after that LIST started (as our create before its settle): the early LIST misses it.
    s.keys.push('w/A.lz4');
    const a = l.fresh('w/');
    const b = l.fresh('w/');
    await s.releaseAll();
    expect(await early).toEqual([]);
    await s.releaseAll();
    expect(await a).toEqual(['w/A.lz4']);
    expect(await b).toEqual(['w/A.lz4']);
    expect(l.listed).toBe(2);
  });

  it('recent() answers from the last listing (or the one under way) without listing again', async () => {
    const s = stubStore();
    const l = new SharedWalListings(s.store);
    s.keys.push('w/A');
    const first = l.recent('w/');
    const joined = l.recent('w/');
    await s.releaseAll();
    expect(await first).toEqual(['w/A']);
    expect(await joined).toEqual(['w/A']);
    s.keys.push('w/B');
    expect(await l.recent('w/')).toEqual(['w/A']);
    expect(l.listed).toBe(1);
    // A failed listing is not kept as the last answer.
    const broken = new SharedWalListings({ async *list() { throw new Error('refused'); } } as unknown as ObjectStore);
    await expect(broken.recent('w/')).rejects.toThrow('refused');
    await expect(broken.recent('w/')).rejects.toThrow('refused');
    expect(broken.listed).toBe(2);
  });
});

// The --async archive worker (runArchiveWorker) keeps at most maxParallel uploads in flight while
// .ready files wait, and stores every one of them: on a real directory store whose puts are counted
// (each held 150 ms, so that the worker has more .ready files than slots for a while).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { ArchiveSpool } from '../../src/wal/spool.ts';
import { runArchiveWorker } from '../../src/wal/async.ts';

describe('archive worker window', () => {
  let root: string;
  let store: ObjectStore;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'bc-worker-window-'));
    mkdirSync(join(root, 'bucket'));
    store = await openObjectStore({ provider: 'file', bucket: join(root, 'bucket'), retry: DEFAULT_RETRY });
  });
  afterAll(async () => {
    await store.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('uploads at most maxParallel segments at once and archives them all', async () => {
    const walDir = join(root, 'pg_wal');
    const spoolDir = join(root, 'spool');
    mkdirSync(join(walDir, 'archive_status'), { recursive: true });
    mkdirSync(spoolDir, { mode: 0o700 });
    const names = Array.from({ length: 7 }, (_, i) => `0000000100000000000000${(0x10 + i).toString(16).toUpperCase()}`);
    for (const n of names) {
      writeFileSync(join(walDir, n), randomBytes(1024 * 1024));
      writeFileSync(join(walDir, 'archive_status', `${n}.ready`), '');
    }
    let running = 0;
    let peak = 0;
    const counted = new Proxy(store, {
      get(target, prop) {
        if (prop === 'put') {
          return async (...args: Parameters<ObjectStore['put']>) => {
            peak = Math.max(peak, ++running);
            try {
              await sleep(150);
              return await target.put(...args);
            } finally {
              running--;
            }
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const layout = new ServerLayout('', 'srv');
    await runArchiveWorker(counted, layout, new ArchiveSpool(spoolDir), { walDir, maxParallel: 3, idleMs: 300, archive: {} });
    expect(peak).toBe(3);
    for (const n of names) expect(await store.head(layout.walKey(n)), n).not.toBeNull();
  }, 30_000);
});

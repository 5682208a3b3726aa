// Deletion trusts a listing only below the prefix it asked for. Two servers share a directory
// store; the store is seen through a view whose listings of server a's prefixes also return
// server b's keys (as a faulty endpoint might). Deleting server A's oldest backup, one at a time and
// in bulk (-r), must remove A's WAL files before its next backup and nothing of server B, whose
// WAL files have the very same names.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { straying } from '../helpers/straying-store.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { BackupCatalog } from '../../src/catalog/catalog.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { BackupDeleter } from '../../src/retention/delete.ts';
import { setLogSink } from '../../src/log.ts';

const A = new ServerLayout('pfx', 'a');
const B = new ServerLayout('pfx', 'b');
const wal = (seg: number) => `0000000100000000${seg.toString(16).toUpperCase().padStart(8, '0')}`;

let dir: string;
let store: ObjectStore;

async function keys(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list('')) if (e.kind === 'object') out.push(e.key);
  return out.sort();
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bc-retprefix-'));
  store = await openObjectStore({ provider: 'file', bucket: dir, retry: DEFAULT_RETRY });
  for (const layout of [A, B]) {
    for (const [id, begin] of [['20260101T000000', 2], ['20260102T000000', 6]] as const) {
      const info = newBackupInfo(id, { status: 'DONE', timeline: 1, begin_wal: wal(begin), end_wal: wal(begin + 1) });
      await store.put(layout.backupInfoKey(id), Buffer.from(serializeBackupInfo(info)));
      await store.put(`${layout.backupPrefix(id)}data.tar`, Buffer.from(`data of ${id}`));
    }
    for (let seg = 1; seg <= 8; seg++) await store.put(layout.walKey(wal(seg)), Buffer.from(`${layout.serverName} ${seg}`));
  }
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('deletion and a listing that strays outside its prefix', () => {
  for (const fromRetentionPolicy of [false, true]) {
    it(`${fromRetentionPolicy ? 'in bulk (-r)' : 'one backup (-b)'}: deletes server a's old WAL files, nothing of server b`, async () => {
      const before = await keys();
      const bKeys = before.filter((k) => k.startsWith('pfx/b/'));
      expect(bKeys.length).toBe(12);
      const view = straying(store);
      const catalog = new BackupCatalog(view, A);
      const lines: string[] = [];
      setLogSink((l) => lines.push(l));
      try {
        const deleter = new BackupDeleter(view, catalog, A, new Map(), { dryRun: false, batchSize: 100, print: () => {} });
        const summary = await deleter.deleteAll(['20260101T000000'], fromRetentionPolicy);
        expect(summary.failure).toBeUndefined();
      } finally {
        setLogSink((l) => process.stderr.write(l));
      }
      const after = await keys();
      // server a: the old backup and the WAL files before the remaining backup's begin_wal are gone
      const aGone = before.filter((k) => k.startsWith('pfx/a/') && !after.includes(k));
      expect(aGone.sort()).toEqual([
        A.backupInfoKey('20260101T000000'), `${A.backupPrefix('20260101T000000')}data.tar`,
        ...[1, 2, 3, 4, 5].map((s) => A.walKey(wal(s))),
      ].sort());
      // server b: untouched, and the stray listing was said
      expect(after.filter((k) => k.startsWith('pfx/b/'))).toEqual(bKeys);
      expect(lines.some((l) => /WARNING: Ignoring pfx\/b\/\S+: the store listed it under pfx\/a\//.test(l)), lines.join('\n')).toBe(true);
    });
  }
});

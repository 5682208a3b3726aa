// Every caller that takes a name from a listing keeps only keys below the prefix it listed
// (docs/format.md#listed-keys). Two servers share a directory store, seen through a view whose
// listings of server a's prefixes also return server b's keys (as a faulty endpoint might); b holds
// what a lacks, under the very same names. retention-prefix.test.ts covers deletion.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import tarStream from 'tar-stream';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { straying } from '../helpers/straying-store.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { archiveWal, readWalFile } from '../../src/wal/archive.ts';
import { verify } from '../../src/verify/verify.ts';
import { walSegmentBytes, writeWalFile } from '../helpers/wal-segment.ts';

const A = new ServerLayout('pfx', 'a');
const B = new ServerLayout('pfx', 'b');
const SEG = '000000010000000000000002';

let dir: string;
let store: ObjectStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bc-listprefix-'));
  store = await openObjectStore({ provider: 'file', bucket: dir, retry: DEFAULT_RETRY });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a listing that strays into another server', () => {
  it("wal-archive: b's identical copy is not taken for a's, so a's segment is stored", async () => {
    const data = walSegmentBytes();
    await store.put(B.walKey(SEG), data);
    const wal = await readWalFile(writeWalFile(join(dir, '..', `${dir.split('/').pop()}-pg_wal`), SEG, data));
    await archiveWal(straying(store), A, wal);
    expect((await store.head(A.walKey(SEG)))?.size).toBe(data.length);
    rmSync(join(dir, '..', `${dir.split('/').pop()}-pg_wal`), { recursive: true, force: true });
  });

  it("verify: b's part and b's WAL do not make a's backup pass", async () => {
    const id = '20260101T000000';
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    const packed = new Promise<Buffer>((res) => pack.on('end', () => res(Buffer.concat(chunks))));
    pack.entry({ name: 'PG_VERSION', size: 3, mode: 0o600, mtime: new Date(1_700_000_000_000) }, Buffer.from('15\n'));
    pack.finalize();
    const tar = await packed;
    for (const layout of [A, B]) {
      await store.put(layout.backupInfoKey(id), Buffer.from(serializeBackupInfo(newBackupInfo(id, {
        status: 'DONE', timeline: 1, begin_wal: SEG, end_wal: SEG, xlog_segment_size: 1 << 20, version: 150000, server_name: 'cloud',
      }))));
    }
    // only b has the data part and the WAL segment
    await store.put(`${B.backupPrefix(id)}data.tar`, tar);
    await store.put(B.walKey(SEG), Buffer.alloc(1 << 20));
    const report = await verify(straying(store), A, { backup: 'all', jobs: 1 });
    expect(report.ok).toBe(false);
    const kinds = [...report.backups.flatMap((b) => b.problems), ...report.wal.problems].map((p) => p.kind);
    expect(kinds).toContain('missing-archive');
    expect(kinds).toContain('missing-wal');
  });
});

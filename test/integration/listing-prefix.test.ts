// Every caller that takes a name from a listing keeps only keys below the prefix it listed
// (docs/format.md#listed-keys). Two servers share a directory store, seen through a view whose
// listings of server a's prefixes also return server b's keys (as a faulty endpoint might); b holds
// what a lacks, under the very same names. retention-prefix.test.ts covers deletion.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import tarStream from 'tar-stream';
import { crc32c } from '@node-rs/crc32';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { straying } from '../helpers/straying-store.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { encodePartsList } from '../../src/catalog/parts-list.ts';
import { BackupManifestBuilder } from '../../src/backup/manifest.ts';
import { renderManifest } from '../helpers/manifest.ts';
import { restoreBackup, type RestoreOptions } from '../../src/backup/restore.ts';
import { setLogSink } from '../../src/log.ts';
import { tarOf } from '../helpers/tar.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { archiveWal, readWalFile } from '../../src/wal/archive.ts';
import { checkWalArchive } from '../../src/wal/check.ts';
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

  it("check-wal-archive: b's WAL does not make a's archive look used", async () => {
    await store.put(B.walKey('000000020000000000000003'), Buffer.alloc(1 << 20));
    expect(await checkWalArchive(straying(store), A)).toBeNull();
    await store.put(A.walKey(SEG), Buffer.alloc(1 << 20));
    expect(await checkWalArchive(straying(store), A, 2)).toBeNull();
    expect(await checkWalArchive(straying(store), A, 1)).toBe('Found 1 file in WAL archive equal to or newer than timeline 1');
  });

  describe('restore', () => {
    const id = '20260101T000000';
    const options = (targets: RestoreOptions['targets'] = {}): RestoreOptions => ({ tablespaces: new Map(), jobs: 1, targets });
    const warnings: string[] = [];
    beforeEach(() => {
      warnings.length = 0;
      setLogSink((line) => warnings.push(line));
    });
    afterEach(() => setLogSink((line) => process.stderr.write(line)));

    /** A DONE backup `id` of `layout` on timeline `tli` whose data.tar holds PG_VERSION `version` (and a manifest with parts.json). */
    async function storeBackup(layout: ServerLayout, tli: number, version: string, withPartsList: boolean): Promise<void> {
      const pgVersion = Buffer.from(version);
      const mb = new BackupManifestBuilder();
      mb.addFile('PG_VERSION', pgVersion.length, 1_700_000_000, crc32c(pgVersion));
      const manifest = renderManifest(mb, [{ timeline: tli, startLsn: '0/2000028', endLsn: '0/2000100' }]).toString('utf8');
      const tar = await tarOf([{ name: 'PG_VERSION', data: version }, ...(withPartsList ? [{ name: 'backup_manifest', data: manifest }] : [])]);
      await store.put(`${layout.backupPrefix(id)}data.tar`, tar);
      if (withPartsList) {
        const parts = encodePartsList({ backupId: id, parts: [{ name: 'data.tar', size: tar.length, sha256: createHash('sha256').update(tar).digest('hex') }] });
        await store.put(`${layout.backupPrefix(id)}parts.json`, Buffer.from(parts));
      }
      await store.put(layout.backupInfoKey(id), Buffer.from(serializeBackupInfo(newBackupInfo(id, {
        status: 'DONE', timeline: tli, begin_wal: SEG, end_wal: SEG, xlog_segment_size: 1 << 20, version: 150000, server_name: 'cloud',
        tablespaces: null, end_time: '2026-01-01 00:00:05+00:00', end_xlog: '0/2000100',
      }))));
    }

    it("--target-tli latest: b's history file does not make timeline 2 a's latest", async () => {
      await storeBackup(A, 1, '15\n', false);
      await store.put(A.walKey(SEG), Buffer.alloc(1 << 20));
      await store.put(B.walKey('00000002.history'), Buffer.from('1\t0/3000000\tno recovery target specified\n'));
      const dest = join(dir, 'restored');
      const backup = await restoreBackup(straying(store), A, 'auto', dest, options({ tli: 'latest' }));
      expect(backup.backup_id).toBe(id);
      expect(readFileSync(join(dest, 'PG_VERSION'), 'utf8')).toBe('15\n');
      expect(warnings.join('')).toMatch(/WARNING: Ignoring pfx\/b\/wals\/00000002\.history: the store listed it under pfx\/a\/wals\/, where it does not belong\n$/);
    });

    it("a barman backup (no parts.json) is not judged by b's parts.json", async () => {
      await storeBackup(A, 1, '15\n', false);
      await storeBackup(B, 1, '16\n', true);
      const dest = join(dir, 'restored');
      await restoreBackup(straying(store), A, id, dest, options());
      expect(readFileSync(join(dest, 'PG_VERSION'), 'utf8')).toBe('15\n');
      expect(warnings.filter((l) => l.includes('WARNING: Ignoring pfx/b/base/'))).toHaveLength(1);
    });

    it("a's parts are checked against a's sizes, not b's under the same names", async () => {
      await storeBackup(A, 1, '15\n', true);
      await storeBackup(B, 1, `${'9'.repeat(600)}\n`, false);
      const dest = join(dir, 'restored');
      await restoreBackup(straying(store), A, id, dest, options());
      expect(readFileSync(join(dest, 'PG_VERSION'), 'utf8')).toBe('15\n');
    });
  });
});

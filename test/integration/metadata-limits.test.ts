// Small metadata read whole is read within a limit (docs/format.md#metadata-limits): a hostile
// backup.info, parts.json, history file or stored WAL copy of any size (or a few KB inflating to
// gigabytes) is refused or counted as different without being held in memory. Real executables on
// the directory store and on moto (the lean S3 client, which would size a Buffer by Content-Length).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import tarStream from 'tar-stream';
import { crc32c } from '@node-rs/crc32';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { BackupManifestBuilder } from '../../src/backup/manifest.ts';
import { renderManifest } from '../helpers/manifest.ts';
import { encodePartsList } from '../../src/catalog/parts-list.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { ObjectTooLargeError } from '../../src/errors.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import type { ServerHandle } from '../helpers/servers.ts';
import { gnuTimeAvailable, measured } from '../helpers/peak-rss.ts';
import { requireTool } from '../helpers/postgres.ts';
import { walSegmentBytes, writeWalFile } from '../helpers/wal-segment.ts';

const SMALL = '20260101T000000';
const HUGE = '20260102T000000';

/** A backup.info that parses (its padding is comment lines) and is 2 MiB long. */
function paddedBackupInfo(id: string): Buffer {
  const info = serializeBackupInfo(newBackupInfo(id, { status: 'DONE' }));
  return Buffer.from(`${'#'.repeat(1023)}\n`.repeat(2048) + info);
}

let work: string;
let moto: ServerHandle;
let s3: ObjectStore;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'bc-limits-'));
  ({ moto, store: s3 } = await startMotoBucket('limits'));
}, 120_000);

afterAll(async () => {
  await s3?.close();
  await moto?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('backup.info larger than 1 MiB', () => {
  it.each(['file', 's3'] as const)('%s: backup-list skips it with one warning; the other backup is listed', async (kind) => {
    const store = kind === 's3' ? s3 : await openObjectStore({ provider: 'file', bucket: mkdtempSync(join(work, 'store-')), retry: DEFAULT_RETRY });
    const url = kind === 's3' ? 's3://limits/a' : `file://${store.bucket}`;
    const prefix = kind === 's3' ? 'a/' : '';
    await store.put(`${prefix}srv/base/${SMALL}/backup.info`, Buffer.from(serializeBackupInfo(newBackupInfo(SMALL, { status: 'DONE' }))));
    await store.put(`${prefix}srv/base/${HUGE}/backup.info`, paddedBackupInfo(HUGE));
    // the store itself refuses it when asked for at most 1 MiB
    await expect(store.getBuffer(`${prefix}srv/base/${HUGE}/backup.info`, { maxBytes: 1 << 20 })).rejects.toBeInstanceOf(ObjectTooLargeError);
    const env = kind === 's3' ? cleanEnv({ ...MOTO_ENV }) : cleanEnv();
    const extra = kind === 's3' ? ['--endpoint-url', moto.url] : [];
    const r = await runBin('barman-cloud-backup-list', [...extra, '--format', 'json', url, 'srv'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { backups_list: { backup_id: string }[] }).backups_list.map((b) => b.backup_id)).toEqual([SMALL]);
    expect(r.stderr).toMatch(new RegExp(`^[^\\n]* WARNING: Unable to open backup.info file for ${HUGE}: [^\\n]*larger than 1048576 bytes[^\\n]*\\n$`));
  }, 60_000);
});

describe('wal-archive comparing with a stored copy that inflates without end', () => {
  const skip = requireTool('GNU time', gnuTimeAvailable());
  it.skipIf(skip)('counts it as different content (exit 1) without inflating it in memory', async () => {
    const root = mkdtempSync(join(work, 'store-'));
    const name = '000000010000000000000003';
    // 16 gzip members of 32 MiB of zeros each: 512 MiB inflated from ~0.5 MB
    const member = gzipSync(Buffer.alloc(32 << 20), { level: 1 });
    const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    await store.put(`srv/wals/0000000100000000/${name}.gz`, Buffer.concat(Array.from({ length: 16 }, () => member)));
    const path = writeWalFile(join(work, 'pg_wal'), name, walSegmentBytes());
    const r = await measured('barman-cloud-wal-archive', [`file://${root}`, 'srv', path], cleanEnv());
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/already archived with different content/);
    // a one-shot archive peaks at ~60 MB here; the inflated copy alone would be 512 MB
    expect(r.peakMb).toBeLessThan(200);
  }, 120_000);
});

describe('verify: parts.json over 64 MiB and a history file over 16 MiB (stored or decompressed)', () => {
  it('names both as problems (exit 1) instead of reading them whole; restore refuses the backup (exit 4)', async () => {
    const root = mkdtempSync(join(work, 'store-'));
    const id = '20261201T000000';
    const seg = '000000010000000000000001';
    const listed = Buffer.from('15\n');
    const mb = new BackupManifestBuilder();
    mb.addFile('PG_VERSION', listed.length, 1_700_000_000, crc32c(listed));
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    const packed = new Promise<Buffer>((res) => pack.on('end', () => res(Buffer.concat(chunks))));
    pack.entry({ name: 'PG_VERSION', size: listed.length, mode: 0o600, mtime: new Date(1_700_000_000_000) }, listed);
    const manifest = renderManifest(mb, [{ timeline: 1, startLsn: '0/200028', endLsn: '0/300100' }]);
    pack.entry({ name: 'backup_manifest', size: manifest.length, mode: 0o600, mtime: new Date(1_700_000_000_000) }, manifest);
    pack.finalize();
    const tar = await packed;
    const base = join(root, 'srv', 'base', id);
    mkdirSync(base, { recursive: true });
    writeFileSync(join(base, 'data.tar'), tar);
    // valid JSON all the same: the padding is white space
    const parts = encodePartsList({ backupId: id, parts: [{ name: 'data.tar', size: tar.length, sha256: createHash('sha256').update(tar).digest('hex') }] });
    writeFileSync(join(base, 'parts.json'), parts + ' '.repeat(65 << 20));
    writeFileSync(join(base, 'backup.info'), serializeBackupInfo(newBackupInfo(id, {
      status: 'DONE', timeline: 1, begin_wal: seg, end_wal: seg, begin_xlog: '0/200028', end_xlog: '0/300100',
      xlog_segment_size: 1 << 20, version: 150000, server_name: 'cloud', backup_label: null,
    })));
    mkdirSync(join(root, 'srv', 'wals', '0000000100000000'), { recursive: true });
    writeFileSync(join(root, 'srv', 'wals', '0000000100000000', seg), Buffer.alloc(1 << 20));
    // a history file that parses, 17 MiB long
    writeFileSync(join(root, 'srv', 'wals', '00000002.history'), '1\t0/3000000\tno recovery target specified\n'.repeat(450_000));
    // and one of 60 KB that inflates to 17 MiB: the limit holds for the decompressed bytes too
    const inflating = gzipSync('2\t0/4000000\tno recovery target specified\n'.repeat(450_000));
    expect(inflating.length).toBeLessThan(1 << 20);
    writeFileSync(join(root, 'srv', 'wals', '00000003.history.gz'), inflating);
    const r = await runBin('barman-cloud', ['verify', '--format', 'json', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as { backups: { part_checksums: string; problems: { kind: string; message: string }[] }[]; wal: { problems: { kind: string; segment: string }[] } };
    expect(report.backups[0]!.problems.map((p) => p.kind)).toContain('invalid-parts-list');
    expect(report.backups[0]!.problems.find((p) => p.kind === 'invalid-parts-list')!.message).toMatch(/larger than 67108864 bytes/);
    const invalid = report.wal.problems.filter((p) => p.kind === 'invalid-history').map((p) => p.segment);
    expect(invalid.sort()).toEqual(['00000002.history', '00000003.history.gz']);
    // restore refuses the backup (exit 4) before extracting anything
    const dest = join(work, 'restored');
    const restored = await runBin('barman-cloud-restore', [`file://${root}`, 'srv', id, dest], { env: cleanEnv() });
    expect(restored.code, restored.stderr).toBe(4);
    expect(restored.stderr).toMatch(/^[^\n]* ERROR: [^\n]*parts\.json[^\n]*larger than 67108864 bytes[^\n]*\n$/);
  }, 120_000);
});


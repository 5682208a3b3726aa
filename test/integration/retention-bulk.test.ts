// backup-delete -r over larger catalogs on four timelines, as executables: a run killed in the
// middle of its deletions (file store: while WAL files are going; moto: after its second WAL delete
// request) is finished by a second run, which leaves exactly what one clean run leaves. And the
// listings (backup-list JSON and console) of a few hundred backups are byte for byte the documents
// the one-shot formatters build from the whole catalog.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv, spawnBin, exitOf } from '../helpers/run-bin.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { objectKeys, treeKeys, uploadObjects, writeTree } from '../helpers/object-tree.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate } from '../../src/catalog/backup-info.ts';
import { BackupCatalog } from '../../src/catalog/catalog.ts';
import { backupListHeader, backupListRow, formatBackupListJson, listRowFields, listedInConsole } from '../../src/catalog/format.ts';
import type { BackupInfo } from '../../src/catalog/backup-info.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { hex8 } from '../../src/xlog.ts';
import { FileObjectStore } from '../../src/storage/file/file.ts';

/** The rerun's only complaint: barman's WARNING for backups whose data objects the killed run deleted. */
const MISSING_DATA = /^\S+ \S+ \[\d+\] WARNING: Missing file (?:\w+\/)?srv\/base\/\d{8}T\d{6}\/data\.\* for server srv$/;
function onlyMissingData(stderr: string): boolean {
  return stderr.split('\n').filter(Boolean).every((l) => MISSING_DATA.test(l));
}

/** The whole console listing at once, from the same header and row pieces the command streams. */
function consoleListing(backups: Iterable<BackupInfo>, keeps: ReadonlyMap<string, string | null>): string {
  const sorted = [...backups].sort((a, b) => (a.backup_id < b.backup_id ? -1 : a.backup_id > b.backup_id ? 1 : 0));
  return backupListHeader() + sorted.filter(listedInConsole).map((i) => backupListRow(listRowFields(i), keeps.get(i.backup_id) ?? null)).join('');
}

const wal = (tli: number, pos: number) => hex8(tli) + hex8(Math.floor(pos / 256)) + hex8(pos % 256);

/**
 * `backups` DONE backups, `per` WAL segments each, a timeline switch every quarter (with its history
 * file); some backups named, some kept, some FAILED, for the listings.
 */
function catalog(backups: number, per: number, variety = false): Map<string, string> {
  const out = new Map<string, string>();
  const tliOf = (i: number) => 1 + Math.floor((4 * i) / backups);
  const start = Date.UTC(2025, 0, 1);
  for (let i = 0; i < backups; i++) {
    const when = new Date(start + i * 6 * 3_600_000);
    const id = when.toISOString().slice(0, 19).replace(/[-:]/g, '');
    const tli = tliOf(i);
    const begin = 1 + i * per;
    const status = variety && i % 17 === 5 ? 'FAILED' : 'DONE';
    const info = newBackupInfo(id, {
      status, timeline: tli, begin_wal: wal(tli, begin), end_wal: wal(tli, begin + 1),
      begin_time: pyDatetimeStr(timestampFromDate(when, 0, 0)),
      end_time: pyDatetimeStr(timestampFromDate(new Date(when.getTime() + 60_000), 0, 0)),
      ...(variety && i % 7 === 3 ? { backup_name: `nightly ${i}` } : {}),
    });
    out.set(`srv/base/${id}/backup.info`, serializeBackupInfo(info));
    out.set(`srv/base/${id}/data.tar`, `data ${id}`);
    out.set(`srv/wals/${wal(tli, begin).slice(0, 16)}/${wal(tli, begin)}.00000028.backup.gz`, `label ${id}`);
    if (variety && i % 11 === 4) out.set(`srv/base/${id}/annotations/keep`, i % 2 ? 'full' : 'standalone');
    if (i > 0 && tliOf(i - 1) !== tli) out.set(`srv/wals/${hex8(tli)}.history`, `${tli - 1}\t0/0\tno recovery target\n`);
    for (let p = begin; p < begin + per; p++) out.set(`srv/wals/${wal(tli, p).slice(0, 16)}/${wal(tli, p)}.gz`, `wal ${tli}/${p}`);
  }
  return out;
}

/** Number of files below `dir` (0 when it is gone). */
const countFiles = (dir: string): number => treeKeys(dir).length;

describe('backup-delete -r in bulk on the directory store', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bc-retention-bulk-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('a run killed while WAL files are going is finished by the next run: same end state as one clean run', async () => {
    const objects = catalog(40, 100);
    const clean = join(work, 'clean');
    const killed = join(work, 'killed');
    writeTree(clean, objects);
    writeTree(killed, objects);
    const args = (dir: string, ...rest: string[]) => [...rest, '-r', 'REDUNDANCY 20', `file://${dir}`, 'srv'];
    const one = await runBin('barman-cloud-backup-delete', args(clean));
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: 0, stderr: '' });
    const walsBefore = countFiles(join(killed, 'srv', 'wals'));
    const walsAfter = countFiles(join(clean, 'srv', 'wals'));
    expect(walsAfter).toBeLessThan(walsBefore - 1000);

    // Killed once the WAL pass has deleted something but not everything it will.
    const child = spawnBin('barman-cloud-backup-delete', args(killed, '-v', '--batch-size', '20'), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let seenAt = -1;
    const exit = exitOf(child);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!stderr.includes('Deleting the WAL files no remaining backup needs')) return;
      child.stderr!.removeAllListeners('data');
      const poll = () => {
        if (child.exitCode !== null) return;
        const now = countFiles(join(killed, 'srv', 'wals'));
        if (now < walsBefore && now > walsAfter) {
          seenAt = now;
          child.kill('SIGKILL');
        } else setImmediate(poll);
      };
      poll();
    });
    expect(await exit).toBe('SIGKILL');
    expect(seenAt).toBeGreaterThan(walsAfter);
    // Every backup.info is still there: the catalog the next run reads is the one this run read.
    const infos = (dir: string) => treeKeys(dir).filter((k) => k.endsWith('backup.info'));
    expect(infos(killed)).toEqual([...objects.keys()].filter((k) => k.endsWith('backup.info')).sort());

    const second = await runBin('barman-cloud-backup-delete', args(killed));
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('WARNING: Missing file');
    expect(onlyMissingData(second.stderr), second.stderr).toBe(true);
    expect(second.stdout).toMatch(/^Deleted 20 backups \(\d+ objects?\) and \d+ WAL objects/);
    expect(treeKeys(killed)).toEqual(treeKeys(clean));
  }, 180_000);

  it('backup-list JSON and console are byte for byte the documents built from the whole catalog', async () => {
    const dir = join(work, 'list');
    writeTree(dir, catalog(300, 2, true));
    const layout = new ServerLayout('', 'srv');
    const cat = new BackupCatalog(new FileObjectStore({ bucket: dir } as never), layout);
    const backups = await cat.getBackupList();
    const keeps = new Map<string, string | null>();
    for (const id of backups.keys()) keeps.set(id, await cat.getKeepTarget(id));
    expect([...keeps.values()].filter(Boolean).length).toBeGreaterThan(10);
    const json = await runBin('barman-cloud-backup-list', ['--format', 'json', `file://${dir}`, 'srv']);
    expect({ code: json.code, stderr: json.stderr }).toEqual({ code: 0, stderr: '' });
    expect(json.stdout).toBe(`${formatBackupListJson(backups.values())}\n`);
    const table = await runBin('barman-cloud-backup-list', [`file://${dir}`, 'srv']);
    expect({ code: table.code, stderr: table.stderr }).toEqual({ code: 0, stderr: '' });
    expect(table.stdout).toBe(consoleListing(backups.values(), keeps));
    expect(table.stdout.split('\n').length).toBeGreaterThan(250);
  });
});

describe('backup-delete -r in bulk on S3 (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const bucket = 'retention-bulk';
  const env = () => cleanEnv(MOTO_ENV);
  const upload = (path: string, objects: Map<string, string>) => uploadObjects(store, path, objects);
  const keys = (path: string) => objectKeys(store, path);

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket(bucket));
  });
  afterAll(async () => {
    await store?.close();
    await moto?.stop();
  });

  it('a run killed after its second WAL delete request is finished by the next run: same end state as one clean run', async () => {
    const objects = catalog(16, 24);
    await upload('clean', objects);
    await upload('killed', objects);
    const url = (path: string) => `s3://${bucket}/${path}`;
    const one = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, '-r', 'REDUNDANCY 8', url('clean'), 'srv'], { env: env() });
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: 0, stderr: '' });

    // A proxy in front of moto that kills the client once moto has answered two WAL deletions.
    let walDeletes = 0;
    let child: ReturnType<typeof spawnBin> | undefined;
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const isWalDelete = req.method === 'POST' && /[?&]delete/.test(req.url ?? '') && body.includes('/wals/');
        const up = httpRequest({ host: '127.0.0.1', port: moto.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
          r.on('end', () => {
            if (isWalDelete && ++walDeletes === 2) child?.kill('SIGKILL');
          });
        });
        up.on('error', () => res.destroy());
        up.end(body);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const endpoint = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
      child = spawnBin('barman-cloud-backup-delete', [
        '--endpoint-url', endpoint, '--batch-size', '25', '-r', 'REDUNDANCY 8', url('killed'), 'srv',
      ], { env: env() });
      const killed = await exitOf(child);
      expect(killed).toBe('SIGKILL');
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
    const partial = await keys('killed');
    const cleanKeys = await keys('clean');
    expect(partial.length).toBeGreaterThan(cleanKeys.length);
    expect(partial.length).toBeLessThan(objects.size);
    // No backup.info has gone yet: the next run reads the same catalog.
    expect(partial.filter((k) => k.endsWith('backup.info')).length).toBe(16);

    const second = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, '-r', 'REDUNDANCY 8', url('killed'), 'srv'], { env: env() });
    expect(second.code).toBe(0);
    expect(onlyMissingData(second.stderr), second.stderr).toBe(true);
    expect(await keys('killed')).toEqual(cleanKeys);
  }, 300_000);
});

// barman-cloud-backup-delete and barman-cloud-backup-keep as executables, on the local directory
// store and on moto (S3), over synthetic catalogs (backup.info files, tar objects, WAL objects):
// retention by policy and by ID, dry-run lines, refusals and exit codes, keep/release/status, the
// summary line and JSON, recovery after an interrupted run, Object Lock, and — where barman-cli-cloud
// 3.4 is installed — the same deletions as barman's on identical buckets.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerHandle } from '../helpers/servers.ts';
import { runBin, runBarman, cleanEnv, spawnBin, exitOf, type BinResult } from '../helpers/run-bin.ts';
import { isWalDelete, startS3Proxy } from '../helpers/proxy.ts';
import { requireTool } from '../helpers/postgres.ts';
import { MOTO_ENV, MOTO_KEYS, openMotoStore, startMotoBucket } from '../helpers/moto.ts';
import { objectKeys, treeKeys, uploadObjects, writeTree } from '../helpers/object-tree.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate, type BackupInfo } from '../../src/catalog/backup-info.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { hex8 } from '../../src/xlog.ts';

const DAY = 86_400_000;
const LOG_LINE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} \[\d+\] (DEBUG|INFO|WARNING|ERROR): /;
const SUMMARY = /^Deleted (\d+) backups? \((\d+) objects?\) and (\d+) WAL objects?, (\d+) bytes freed\n$/;

/** Eight segments per log number, so that catalogs span several WAL hash directories. */
const wal = (tli: number, pos: number) => hex8(tli) + hex8(Math.floor(pos / 8)) + hex8(pos % 8);

interface Spec {
  id: string;
  status?: string;
  tli: number;
  begin: number;
  end?: number;
  daysAgo: number;
  keep?: 'full' | 'standalone';
  parts?: number;
  tablespace?: boolean;
}

/**
 * A catalog as objects (key relative to `<path>/`): backup.info in barman 3.4's format (readable by
 * both tools), tars, keep annotations, WAL segments with mixed suffixes, .backup and history files.
 */
function catalogObjects(server: string, specs: Spec[], walsTo: number, switches: [number, number][] = []): Map<string, string> {
  const layout = new ServerLayout('', server);
  const out = new Map<string, string>();
  const now = Date.now();
  for (const s of specs) {
    const end = new Date(now - s.daysAgo * DAY);
    const begin = new Date(end.getTime() - 600_000);
    const done = (s.status ?? 'DONE') !== 'FAILED';
    const info: BackupInfo = newBackupInfo(s.id, {
      status: s.status ?? 'DONE', timeline: s.tli, begin_wal: wal(s.tli, s.begin), end_wal: done ? wal(s.tli, s.end ?? s.begin) : null,
      begin_xlog: '0/1000028', end_xlog: done ? '0/1000100' : null, begin_offset: 40, end_offset: done ? 256 : null,
      begin_time: pyDatetimeStr(timestampFromDate(begin, 0, 0)), end_time: done ? pyDatetimeStr(timestampFromDate(end, 0, 0)) : null,
      server_name: 'cloud', systemid: '7713454245083309119', version: 150018, pgdata: '/var/lib/postgresql/15/main',
      tablespaces: s.tablespace ? [{ name: 'tbs1', oid: 16384, location: '/srv/tbs1' }] : null,
      error: done ? null : 'failure uploading data',
    });
    out.set(layout.backupInfoKey(s.id), serializeBackupInfo(info, { compat: '3.4' }));
    out.set(`${layout.backupPrefix(s.id)}data.tar.gz`, `data of ${s.id}`.repeat(20));
    for (let p = 1; p <= (s.parts ?? 0); p++) out.set(`${layout.backupPrefix(s.id)}data_${String(p).padStart(4, '0')}.tar.gz`, `part ${p} of ${s.id}`);
    if (s.tablespace) out.set(`${layout.backupPrefix(s.id)}16384.tar.gz`, `tbs of ${s.id}`);
    if (s.keep) out.set(layout.annotationKey(s.id, 'keep'), s.keep);
    out.set(`${layout.walKey(`${wal(s.tli, s.begin)}.00000028.backup`)}.gz`, `label of ${s.id}`);
  }
  const suffixes = ['', '.gz', '.bz2'];
  for (let p = 1; p <= walsTo; p++) {
    let tli = 1;
    for (const [from, t] of switches) if (p >= from) tli = t;
    out.set(layout.walKey(wal(tli, p)) + suffixes[p % 3], `wal ${tli} ${p}`.repeat(p % 5 + 1));
  }
  for (const [from, t] of switches) {
    out.set(layout.walKey(`${hex8(t)}.history`), `${t - 1}\t0/${from}000000\tno recovery target specified\n`);
    out.set(layout.walKey(`${wal(t - 1, from)}.partial`), 'partial');
  }
  return out;
}

/**
 * The "mixed" catalog: two timelines, FAILED and WAITING_FOR_WALS backups, keeps full and
 * standalone, multi-part and tablespace archives.
 */
function mixed(server = 'srv'): Map<string, string> {
  return catalogObjects(server, [
    { id: '20260101T000000', tli: 1, begin: 2, end: 3, daysAgo: 40, parts: 2, tablespace: true },
    { id: '20260105T000000', tli: 1, begin: 6, daysAgo: 35, keep: 'standalone' },
    { id: '20260110T000000', tli: 1, begin: 10, daysAgo: 30, status: 'FAILED' },
    { id: '20260112T000000', tli: 1, begin: 12, end: 13, daysAgo: 25, tablespace: true },
    { id: '20260115T000000', tli: 1, begin: 17, daysAgo: 20, parts: 1 },
    { id: '20260120T000000', tli: 2, begin: 22, end: 23, daysAgo: 10, keep: 'full' },
    { id: '20260125T000000', tli: 2, begin: 27, daysAgo: 5, status: 'WAITING_FOR_WALS' },
    { id: '20260128T000000', tli: 2, begin: 30, end: 31, daysAgo: 2 },
  ], 34, [[20, 2]]);
}

/** A timeline switch right after the oldest backup (barman-cloud then keeps its timeline's WALs). */
function timelines(server = 'srv'): Map<string, string> {
  return catalogObjects(server, [
    { id: '20260101T000000', tli: 1, begin: 3, daysAgo: 30 },
    { id: '20260110T000000', tli: 2, begin: 12, daysAgo: 20 },
    { id: '20260120T000000', tli: 2, begin: 20, daysAgo: 10 },
  ], 24, [[9, 2]]);
}

/** Many plain backups: long runs to interrupt. */
function many(server = 'srv', n = 10): Map<string, string> {
  return catalogObjects(server, Array.from({ length: n }, (_, i) => ({
    id: `202601${String(i + 1).padStart(2, '0')}T000000`, tli: 1, begin: 4 + i * 6, end: 5 + i * 6, daysAgo: 40 - i, parts: 3,
  })), 4 + n * 6);
}

/** Keys announced by barman's dry-run lines (prefix lines expanded over `all`). */
function announced(stdout: string, all: readonly string[]): string[] {
  const keys = new Set<string>();
  for (const line of stdout.split('\n').filter(Boolean)) {
    const list = /^Skipping deletion of objects \[(.*)\] due to --dry-run option$/.exec(line);
    const prefix = /^Skipping deletion of all objects under prefix (.*) due to --dry-run option$/.exec(line);
    if (list) {
      for (const m of list[1]!.matchAll(/'([^']*)'/g)) keys.add(m[1]!);
    } else if (prefix) {
      for (const k of all) if (k.startsWith(prefix[1]!)) keys.add(k);
    } else {
      throw new Error(`unexpected dry-run line: ${line}`);
    }
  }
  return [...keys].sort();
}

describe('barman-cloud-backup-delete on the directory store', () => {
  let base: string;
  const fresh = (name: string, objects: Map<string, string>) => {
    const root = join(base, name);
    writeTree(root, objects);
    return { root, url: `file://${root}` };
  };
  const del = (url: string, ...args: string[]) => runBin('barman-cloud-backup-delete', [...args, url, 'srv']);

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'bc-retention-'));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('-r REDUNDANCY 1 --dry-run prints barman\'s lines, deletes nothing; the real run deletes exactly those', async () => {
    const { root, url } = fresh('dry', mixed());
    const before = treeKeys(root);
    const dry = await del(url, '-r', 'REDUNDANCY 1', '--dry-run');
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
    expect(treeKeys(root)).toEqual(before);
    const lines = dry.stdout.split('\n');
    // 20260101 (oldest, no WAL before it to protect), 20260112 and 20260115: data then WALs each.
    expect(lines[0]).toBe(
      "Skipping deletion of objects ['srv/base/20260101T000000/data.tar.gz', 'srv/base/20260101T000000/data_0001.tar.gz', " +
        "'srv/base/20260101T000000/data_0002.tar.gz', 'srv/base/20260101T000000/16384.tar.gz', 'srv/base/20260101T000000/backup.info'] " +
        'due to --dry-run option',
    );
    expect(lines[1]).toBe(
      "Skipping deletion of objects ['srv/wals/0000000100000000/000000010000000000000001.gz', " +
        "'srv/wals/0000000100000000/000000010000000000000002.00000028.backup.gz', 'srv/wals/0000000100000000/000000010000000000000002.bz2', " +
        "'srv/wals/0000000100000000/000000010000000000000003', 'srv/wals/0000000100000000/000000010000000000000004.gz', " +
        "'srv/wals/0000000100000000/000000010000000000000005.bz2'] due to --dry-run option",
    );
    expect(lines[2]).toMatch(/^Skipping deletion of objects \['srv\/base\/20260112T000000\/data\.tar\.gz', 'srv\/base\/20260112T000000\/16384\.tar\.gz', 'srv\/base\/20260112T000000\/backup\.info'\] due/);
    // The standalone backup at WAL 06 keeps its range: the hash directory holding it is not
    // deleted whole, the next one (with the FAILED backup's WALs) is.
    expect(lines[3]).toBe('Skipping deletion of all objects under prefix srv/wals/0000000100000001/ due to --dry-run option');
    expect(lines[4]).toBe(
      "Skipping deletion of objects ['srv/wals/0000000100000000/000000010000000000000007.gz', " +
        "'srv/wals/0000000100000002/000000010000000200000000.gz'] due to --dry-run option",
    );
    expect(lines[5]).toMatch(/^Skipping deletion of objects \['srv\/base\/20260115T000000\/data\.tar\.gz', 'srv\/base\/20260115T000000\/data_0001\.tar\.gz', 'srv\/base\/20260115T000000\/backup\.info'\] due/);
    // 20260115 is followed by a backup on timeline 2: its own timeline is protected (barman-cloud),
    // so only timeline 2 WALs before 20260120's begin_wal go.
    expect(lines[6]).toBe(
      "Skipping deletion of objects ['srv/wals/0000000200000002/000000020000000200000004.bz2', " +
        "'srv/wals/0000000200000002/000000020000000200000005'] due to --dry-run option",
    );
    expect(lines.slice(7)).toEqual(['']);

    const real = await del(url, '-r', 'REDUNDANCY 1');
    expect({ code: real.code, stderr: real.stderr }).toEqual({ code: 0, stderr: '' });
    const gone = before.filter((k) => !treeKeys(root).includes(k));
    expect(gone).toEqual(announced(dry.stdout, before));
    const m = SUMMARY.exec(real.stdout)!;
    expect(m).not.toBeNull();
    const [backups, objects, wals] = [Number(m[1]), Number(m[2]), Number(m[3])];
    expect({ backups, total: objects + wals }).toEqual({ backups: 3, total: gone.length });
    expect(Number(m[4])).toBe(gone.reduce((n, k) => n + mixed().get(k)!.length, 0));
    // Kept, FAILED, WAITING_FOR_WALS and the newest backups are all still there, with history files.
    for (const id of ['20260105T000000', '20260110T000000', '20260120T000000', '20260125T000000', '20260128T000000']) {
      expect(existsSync(join(root, `srv/base/${id}/backup.info`))).toBe(true);
    }
    expect(existsSync(join(root, 'srv/wals/00000002.history'))).toBe(true);

    // A second run finds nothing more to do.
    const again = await del(url, '-r', 'REDUNDANCY 1', '--format', 'json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({
      backups_deleted: 0, backup_ids: [], backup_objects_deleted: 0, wal_objects_deleted: 0, bytes_freed: 0, errors: 0,
    });
  });

  it('-r RECOVERY WINDOW OF 15 DAYS prints one JSON summary object', async () => {
    const { root, url } = fresh('window', mixed());
    const before = treeKeys(root);
    const r = await del(url, '-r', 'recovery window of 15 days', '--format', 'json', '--batch-size', '2');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')).toHaveLength(2);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(s).toMatchObject({ backups_deleted: 2, backup_ids: ['20260101T000000', '20260112T000000'], errors: 0 });
    const gone = before.filter((k) => !treeKeys(root).includes(k));
    expect((s.backup_objects_deleted as number) + (s.wal_objects_deleted as number)).toBe(gone.length);
    expect(existsSync(join(root, 'srv/base/20260115T000000/backup.info'))).toBe(true);
  });

  it('-m keeps backups a window would drop, with barman\'s WARNING', async () => {
    const { root, url } = fresh('minred', mixed());
    const r = await del(url, '-r', 'RECOVERY WINDOW OF 15 DAYS', '-m', '5');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/WARNING: Keeping obsolete backup 20260112T000000 for server srv \(older than .*\) due to minimum redundancy requirements \(5\)/);
    expect(r.stdout).toMatch(/^Deleted 1 backup \(/);
    expect(existsSync(join(root, 'srv/base/20260101T000000/backup.info'))).toBe(false);
    expect(existsSync(join(root, 'srv/base/20260112T000000/backup.info'))).toBe(true);
  });

  it('-b deletes one backup by ID, name or shortcut; WALs stay when an older backup needs them', async () => {
    const { root, url } = fresh('byid', mixed());
    const before = treeKeys(root);
    const r = await del(url, '-b', '20260112T000000');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^Deleted 1 backup \(3 objects\) and 0 WAL objects, \d+ bytes freed\n$/);
    expect(before.filter((k) => !treeKeys(root).includes(k))).toEqual(
      ['16384.tar.gz', 'backup.info', 'data.tar.gz'].map((f) => `srv/base/20260112T000000/${f}`),
    );
    // oldest: no older backup, so the WALs before the next backup go too
    const first = await del(url, '-b', 'oldest', '--dry-run');
    expect(first.stdout.split('\n')[0]).toContain("'srv/base/20260101T000000/backup.info'");
    expect(first.stdout.split('\n')[1]).toContain('000000010000000000000005.bz2');
    const failed = await del(url, '-b', 'last-failed');
    expect(failed.code).toBe(0);
    expect(existsSync(join(root, 'srv/base/20260110T000000/backup.info'))).toBe(false);
  });

  it('-b deletes our parts.json after the tars and before backup.info (dry run and real run)', async () => {
    const objects = mixed();
    objects.set('srv/base/20260112T000000/parts.json', '{"version": 1}');
    const { root, url } = fresh('partslist', objects);
    const dry = await del(url, '-b', '20260112T000000', '--dry-run');
    expect(dry.stdout.split('\n')[0]).toBe(
      "Skipping deletion of objects ['srv/base/20260112T000000/data.tar.gz', 'srv/base/20260112T000000/16384.tar.gz', " +
        "'srv/base/20260112T000000/parts.json', 'srv/base/20260112T000000/backup.info'] due to --dry-run option",
    );
    const before = treeKeys(root);
    const r = await del(url, '-b', '20260112T000000');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(before.filter((k) => !treeKeys(root).includes(k))).toEqual(
      ['16384.tar.gz', 'backup.info', 'data.tar.gz', 'parts.json'].map((f) => `srv/base/20260112T000000/${f}`),
    );
  });

  it('refuses kept backups, -m, unreadable catalogs; exit codes 1, 3, 4', async () => {
    const { root, url } = fresh('refuse', mixed());
    const before = treeKeys(root);
    const kept = await del(url, '-b', '20260105T000000');
    expect({ code: kept.code, stdout: kept.stdout }).toEqual({ code: 1, stdout: '' });
    expect(kept.stderr).toContain(
      'ERROR: Skipping delete of backup 20260105T000000 for server srv as it has a current keep request. ' +
        'If you really want to delete this backup please remove the keep and try again.',
    );
    const minimum = await del(url, '-b', '20260112T000000', '-m', '8');
    expect(minimum.code).toBe(1);
    expect(minimum.stderr).toContain(
      'ERROR: Skipping delete of backup 20260112T000000 for server srv due to minimum redundancy requirements ' +
        '(minimum redundancy = 8, current redundancy = 8)',
    );
    const policy = await del(url, '-r', 'REDUNDANCY two');
    expect(policy.code).toBe(3);
    expect(policy.stderr).toContain('ERROR: Could not create retention policy REDUNDANCY two: Cannot parse option retention_policy: REDUNDANCY two');
    const both = await del(url, '-r', 'REDUNDANCY 1', '-b', '20260112T000000');
    expect(both.code).toBe(3);
    const neither = await del(url);
    expect(neither.code).toBe(3);
    const unknown = await del(url, '-b', 'no-such-name');
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain("Barman cloud backup delete exception: Unknown backup 'no-such-name' for server 'srv'");
    const missing = await del(url, '-b', '20300101T000000');
    expect(missing.code).toBe(0);
    expect(missing.stderr).toContain('WARNING: Backup 20300101T000000 does not exist');
    expect(missing.stdout).toBe('Deleted 0 backups (0 objects) and 0 WAL objects, 0 bytes freed\n');
    const lock = await del(url, '-b', '20300101T000000', '--check-object-lock');
    expect(lock.stderr).toContain('WARNING: The --check-object-lock option is currently only supported for aws-s3.');
    expect(treeKeys(root)).toEqual(before);

    mkdirSync(join(root, 'srv/base/20260103T000000'), { recursive: true });
    writeFileSync(join(root, 'srv/base/20260103T000000/backup.info'), 'x');
    mkdirSync(join(root, 'srv/base/20260104T000000'), { recursive: true });
    writeFileSync(join(root, 'srv/base/20260104T000000/backup.info'), 'status=DONE\nnot a key value line\n');
    const unreadable = await del(url, '-r', 'REDUNDANCY 1');
    expect({ code: unreadable.code, stdout: unreadable.stdout }).toEqual({ code: 1, stdout: '' });
    expect(unreadable.stderr).toContain('WARNING: Unable to open backup.info file for 20260104T000000');
    expect(unreadable.stderr).toContain(
      "ERROR: Cannot read the following backups: ['20260103T000000', '20260104T000000']\n" +
        'Unsafe to proceed with deletion due to failure reading backup catalog',
    );
  });
});

describe('barman-cloud-backup-keep on the directory store', () => {
  let root: string;
  let url: string;
  const keep = (...args: string[]) => runBin('barman-cloud-backup-keep', [...args.slice(0, -1), url, 'srv', args[args.length - 1]!]);

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'bc-keep-'));
    url = `file://${root}`;
    writeTree(root, mixed());
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('adds, shows and releases keeps', async () => {
    expect(await keep('--status', '20260128T000000')).toMatchObject({ code: 0, stdout: 'Keep: nokeep\n' });
    expect(await keep('-s', '20260105T000000')).toMatchObject({ code: 0, stdout: 'Keep: standalone\n' });
    const add = await keep('--target', 'full', 'latest');
    expect({ code: add.code, stdout: add.stdout, stderr: add.stderr }).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(existsSync(join(root, 'srv/base/20260128T000000/annotations/keep'))).toBe(true);
    expect(await keep('--status', '20260128T000000')).toMatchObject({ code: 0, stdout: 'Keep: full\n' });
    expect(await keep('--target', 'standalone', '20260128T000000')).toMatchObject({ code: 0 });
    expect(await keep('-s', '20260128T000000')).toMatchObject({ code: 0, stdout: 'Keep: standalone\n' });
    // The kept backup is now refused by delete -b.
    const refused = await runBin('barman-cloud-backup-delete', ['-b', '20260128T000000', url, 'srv']);
    expect(refused.code).toBe(1);
    expect(await keep('--release', '20260128T000000')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await keep('-s', '20260128T000000')).toMatchObject({ code: 0, stdout: 'Keep: nokeep\n' });
    // releasing twice is fine
    expect(await keep('-r', '20260128T000000')).toMatchObject({ code: 0 });
  });

  it('refuses non-DONE backups (exit 1), missing backups (exit 4) and bad arguments (exit 3)', async () => {
    for (const [id, status] of [['20260110T000000', 'FAILED'], ['20260125T000000', 'WAITING_FOR_WALS']]) {
      const r = await keep('--target', 'full', id!);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
      expect(r.stderr).toContain(`ERROR: Cannot add keep to backup ${id} because it has status ${status}. Only backups with status DONE can be kept.`);
      expect(existsSync(join(root, `srv/base/${id}/annotations/keep`))).toBe(false);
    }
    const missing = await keep('--target', 'full', '20300101T000000');
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('Barman cloud keep exception: ');
    expect((await keep('--status', '20300101T000000')).stdout).toBe('Keep: nokeep\n');
    expect((await keep('--target', 'forever', '20260128T000000')).code).toBe(3);
    expect((await keep('--status', '--release', '20260128T000000')).code).toBe(3);
    expect((await keep('20260128T000000')).code).toBe(3);
    expect((await keep('--status', 'nobody-by-that-name')).code).toBe(4);
  });
});

// ---- S3 (moto) --------------------------------------------------------------------------------

describe('on S3 (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const bucket = 'retention';
  const env = () => cleanEnv(MOTO_ENV);
  const s3 = (path: string, ...rest: string[]) => ['--endpoint-url', moto.url, ...rest, `s3://${bucket}/${path}`, 'srv'];
  const del = (path: string, ...rest: string[]) => runBin('barman-cloud-backup-delete', s3(path, ...rest), { env: env() });

  /** Dry-run lines with the URL path taken off the keys. */
  const strip = (out: string, path: string) => out.split(`'${path}/`).join("'").split(` ${path}/`).join(' ');

  const upload = (path: string, objects: Map<string, string>, target = store) => uploadObjects(target, path, objects);
  const keys = (path: string, target = store) => objectKeys(target, path);

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket(bucket));
  });
  afterAll(async () => {
    await store?.close();
    await moto?.stop();
  });

  it('-r and -b with small batches: same result as on the directory store', async () => {
    await upload('r', mixed());
    const before = await keys('r');
    const dry = await del('r', '-r', 'REDUNDANCY 1', '--dry-run');
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await keys('r')).toEqual(before);
    const real = await del('r', '-r', 'REDUNDANCY 1', '--batch-size', '3', '--format', 'json');
    expect({ code: real.code, stderr: real.stderr }).toEqual({ code: 0, stderr: '' });
    const after = await keys('r');
    const deleted = before.filter((k) => !after.includes(k));
    expect(deleted).toEqual(announced(strip(dry.stdout, 'r'), before));
    const s = JSON.parse(real.stdout) as { backup_ids: string[]; backup_objects_deleted: number; wal_objects_deleted: number; bytes_freed: number };
    expect(s.backup_ids).toEqual(['20260101T000000', '20260112T000000', '20260115T000000']);
    expect(s.backup_objects_deleted + s.wal_objects_deleted).toBe(deleted.length);
    expect(s.bytes_freed).toBe(deleted.reduce((n, k) => n + mixed().get(k)!.length, 0));

    // The same run on the directory store deletes the same keys.
    const dir = mkdtempSync(join(tmpdir(), 'bc-retention-s3cmp-'));
    try {
      writeTree(dir, mixed());
      const local = await runBin('barman-cloud-backup-delete', ['-r', 'REDUNDANCY 1', `file://${dir}`, 'srv']);
      expect(local.code).toBe(0);
      expect(treeKeys(dir)).toEqual(after);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const b = await del('r', '-b', 'latest', '--batch-size', '0');
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    expect(b.stdout).toMatch(/^Deleted 1 backup \(2 objects\) and 0 WAL objects, \d+ bytes freed\n$/);
  });

  // CloudNativePG raises RetentionPolicyFailed and skips its catalog sync on a non-zero exit, so WAL
  // deletions refused by the store are logged (and counted in the summary) but exit 0, as barman.
  it('WAL deletions the store refuses are logged and counted, and the run exits 0 as barman', async () => {
    let refused = 0;
    const proxy = await startS3Proxy(moto.port, (r) => {
      if (!isWalDelete(r)) return false;
      refused += 1;
      return true;
    });
    try {
      await upload('denied', mixed());
      const before = await keys('denied');
      const endpoint = proxy.url;
      const r = await runBin('barman-cloud-backup-delete',
        ['--endpoint-url', endpoint, '-r', 'REDUNDANCY 1', '--format', 'json', `s3://${bucket}/denied`, 'srv'], { env: env() });
      expect(refused).toBeGreaterThan(0);
      expect(r.stderr).toMatch(/ERROR: Could not delete the following WALs for backup \d{8}T\d{6}/);
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout) as { backup_ids: string[]; wal_objects_deleted: number; errors: number };
      expect(s.backup_ids).toEqual(['20260101T000000', '20260112T000000', '20260115T000000']);
      expect(s.wal_objects_deleted).toBe(0);
      expect(s.errors).toBeGreaterThan(0);
      // The backups are gone; every WAL object is still there.
      const after = await keys('denied');
      expect(after.filter((k) => k.includes('/wals/'))).toEqual(before.filter((k) => k.includes('/wals/')));
      expect(after.some((k) => k.startsWith('srv/base/20260101T000000/'))).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('a run killed mid-way is finished by the next run: same end state as one clean run', async () => {
    await upload('clean', many());
    await upload('killed', many());
    const clean = await del('clean', '-r', 'REDUNDANCY 1');
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/^Deleted 9 backups/);
    // Kill the process as soon as it starts on the third backup.
    const child = spawnBin('barman-cloud-backup-delete', s3('killed', '-v', '-r', 'REDUNDANCY 1'), { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('Deleting backup 20260103T000000')) child.kill('SIGKILL');
    });
    const killed = await exitOf(child);
    expect(killed).toBe('SIGKILL');
    const partial = await keys('killed');
    expect(partial.length).toBeGreaterThan((await keys('clean')).length);
    const second = await del('killed', '-r', 'REDUNDANCY 1');
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await keys('killed')).toEqual(await keys('clean'));
  });

  it('keep / status / release use barman\'s annotation key, double slash included', async () => {
    await upload('k', mixed());
    const keep = (...args: string[]) =>
      runBin('barman-cloud-backup-keep', ['--endpoint-url', moto.url, ...args.slice(0, -1), `s3://${bucket}/k/`, 'srv', args[args.length - 1]!], { env: env() });
    expect(await keep('--target', 'full', '20260128T000000')).toMatchObject({ code: 0, stdout: '' });
    expect(await store.head('k//srv/base/20260128T000000/annotations/keep')).not.toBeNull();
    expect((await store.getBuffer('k//srv/base/20260128T000000/annotations/keep')).toString()).toBe('full');
    expect(await keep('-s', '20260128T000000')).toMatchObject({ code: 0, stdout: 'Keep: full\n' });
    expect(await keep('-r', '20260128T000000')).toMatchObject({ code: 0 });
    expect(await keep('-s', '20260128T000000')).toMatchObject({ code: 0, stdout: 'Keep: nokeep\n' });
  });

  it('--check-object-lock refuses a backup with a locked object and deletes none of its files', async () => {
    const { S3Client, CreateBucketCommand, PutObjectLegalHoldCommand } = await import('@aws-sdk/client-s3');
    const client = new S3Client({
      endpoint: moto.url, region: 'us-east-1', forcePathStyle: true, credentials: { ...MOTO_KEYS },
    });
    const locked = 'retention-locked';
    try {
      await client.send(new CreateBucketCommand({ Bucket: locked, ObjectLockEnabledForBucket: true }));
      const lockedStore = await openMotoStore(moto, locked);
      await upload('p', mixed(), lockedStore);
      await client.send(new PutObjectLegalHoldCommand({
        Bucket: locked, Key: 'p/srv/base/20260101T000000/data_0001.tar.gz', LegalHold: { Status: 'ON' },
      }));
      const before = await keys('p', lockedStore);
      const r = await runBin('barman-cloud-backup-delete',
        ['--endpoint-url', moto.url, '--check-object-lock', '-b', '20260101T000000', `s3://${locked}/p`, 'srv'], { env: env() });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'ERROR: Cannot delete locked object p/srv/base/20260101T000000/data_0001.tar.gz: Object has a legal hold and can\'t be deleted until the legal hold is removed',
      );
      expect(r.stderr).toContain('ERROR: Could not delete backup 20260101T000000: Deletion aborted: object p/srv/base/20260101T000000/data_0001.tar.gz is locked');
      expect(r.stdout).toBe('Deleted 0 backups (0 objects) and 0 WAL objects, 0 bytes freed, 1 error\n');
      expect(await keys('p', lockedStore)).toEqual(before);
      // Unlocked backups go through the same check.
      const ok = await runBin('barman-cloud-backup-delete',
        ['--endpoint-url', moto.url, '--check-object-lock', '-b', '20260112T000000', `s3://${locked}/p`, 'srv'], { env: env() });
      expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
      await lockedStore.close();
    } finally {
      client.destroy();
    }
  });

  // ---- differential: barman-cli-cloud 3.4 on identical buckets ----
  const BARMAN = '/usr/bin/barman-cloud-backup-delete';
  const skip34 = requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync(BARMAN));

  const runPython = (args: string[]): Promise<BinResult> => runBarman('barman-cloud-backup-delete', args, env());

  const CASES: [string, () => Map<string, string>, string[]][] = [
    ['mixed, REDUNDANCY 1', mixed, ['-r', 'REDUNDANCY 1']],
    ['mixed, RECOVERY WINDOW OF 15 DAYS', mixed, ['-r', 'RECOVERY WINDOW OF 15 DAYS']],
    ['mixed, -b after a standalone backup', mixed, ['-b', '20260112T000000']],
    ['timelines, REDUNDANCY 2', timelines, ['-r', 'REDUNDANCY 2']],
    ['many, RECOVERY WINDOW OF 35 DAYS', () => many('srv', 8), ['-r', 'RECOVERY WINDOW OF 35 DAYS']],
  ];

  /** Run `fn` over the cases, three at a time (barman takes ~3 s a run, mostly start-up). */
  async function eachCase(fn: (c: (typeof CASES)[number], n: number) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < CASES.length) {
        const n = next++;
        await fn(CASES[n]!, n);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  }

  it.skipIf(skip34)('deletes exactly what barman-cli-cloud 3.4 deletes (dry run and real run)', async () => {
    await eachCase(async ([label, make, args], n) => {
      const objects = make();
      const [ours, theirs] = [`d${n}/ours`, `d${n}/theirs`];
      await Promise.all([upload(ours, objects), upload(theirs, objects)]);
      const all = [...objects.keys()].sort();
      const [oDry, tDry] = await Promise.all([del(ours, ...args, '--dry-run'), runPython(s3(theirs, ...args, '--dry-run'))]);
      expect({ label, code: tDry.code, stderr: tDry.stderr }).toEqual({ label, code: 0, stderr: '' });
      expect({ label, code: oDry.code, stderr: oDry.stderr }).toEqual({ label, code: 0, stderr: '' });
      const ourDry = announced(strip(oDry.stdout, ours), all);
      const theirDry = announced(strip(tDry.stdout, theirs), all);
      expect({ label, keys: ourDry }).toEqual({ label, keys: theirDry });
      expect(ourDry.length, label).toBeGreaterThan(0);
      const [o, t] = await Promise.all([del(ours, ...args), runPython(s3(theirs, ...args))]);
      expect({ label, ours: o.code, theirs: t.code }).toEqual({ label, ours: 0, theirs: 0 });
      const [oKeys, tKeys] = await Promise.all([keys(ours), keys(theirs)]);
      expect({ label, keys: oKeys }).toEqual({ label, keys: tKeys });
      expect(all.filter((k) => !oKeys.includes(k)), label).toEqual(ourDry);
    });
  }, 120_000);
});

// barman-cloud-backup-list and barman-cloud-backup-show as executables, against the local directory
// store and moto (S3), over synthetic backups whose backup.info files are the real ones of docs/format.md#backup-info-fields;
// where barman-cli-cloud 3.4 is installed, its list/show output on the same bucket is compared too.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBarman, runBin, cleanEnv, type BinResult } from '../helpers/run-bin.ts';
import { requireTool } from '../helpers/postgres.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import { BackupCatalog } from '../../src/catalog/catalog.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { UnknownBackupInfoField, newBackupInfo, parseBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { HEAD_DONE, HEAD_FAILED, SHOW_DONE, SHOW_FAILED } from '../fixtures/backup-info.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const NEWER_KEYS = ['children_backup_ids', 'cluster_size', 'data_checksums', 'encryption', 'parent_backup_id', 'summarize_wal'];
const dropNewer = (text: string) => text.split('\n').filter((l) => !NEWER_KEYS.some((k) => l.startsWith(`${k}=`))).join('\n');

/** A second DONE backup as barman 3.4 writes it: no newer keys, no name, no tablespace. */
const V34_DONE = dropNewer(HEAD_DONE)
  .replace('backup_name=firsthead\n', '')
  .replace(/20261129T050418/g, '20261129T050543')
  .replace(/000000010000000000000006/g, '000000010000000000000008')
  .replace('begin_time=2026-11-29 05:04:19.003382+00:00', 'begin_time=2026-11-29 05:05:43.512345+00:00')
  .replace('end_time=2026-11-29 05:05:01.087588+00:00', 'end_time=2026-11-29 05:05:44.623456+00:00')
  .replace("tablespaces=[('tbs1', 16384, '/srv/tbs1')]", 'tablespaces=None');

/** A named DONE backup (CloudNativePG's naming) taken in a +01:00 session, without microseconds. */
const NAMED_DONE = HEAD_DONE
  .replace('backup_name=firsthead', 'backup_name=backup-20261129070000')
  .replace(/20261129T050418/g, '20261129T060000')
  .replace(/000000010000000000000006/g, '00000002000000000000000A')
  .replace('begin_time=2026-11-29 05:04:19.003382+00:00', 'begin_time=2026-11-29 07:00:00+01:00')
  .replace('end_time=2026-11-29 05:05:01.087588+00:00', 'end_time=2026-11-29 07:00:05+01:00')
  .replace('timeline=1', 'timeline=2');

const HEADER = 'Backup ID           End Time                 Begin Wal                     Archival Status  Name                \n';
const LIST_CONSOLE =
  HEADER +
  '20261129T050418     2026-11-29 05:05:01      000000010000000000000006      KEEP:STANDALONE  firsthead           \n' +
  '20261129T050543     2026-11-29 05:05:44      000000010000000000000008                                           \n' +
  '20261129T060000     2026-11-29 07:00:05      00000002000000000000000A                       backup-20261129070000\n';

/** key → body of every object of the synthetic catalog, relative to `<url path>/`. */
function catalogObjects(): Record<string, string> {
  return {
    'srv/base/20261129T050418/backup.info': HEAD_DONE,
    'srv/base/20261129T050418/data.tar.gz': 'not really a tar',
    'srv/base/20261129T050418/16384.tar.gz': 'not really a tar',
    'srv/base/20261129T050418/annotations/keep': 'standalone',
    'srv/base/20261129T050543/backup.info': V34_DONE,
    'srv/base/20261129T050814/backup.info': HEAD_FAILED,
    'srv/base/20261129T060000/backup.info': NAMED_DONE,
    // a backup being uploaded: no backup.info yet, so not a backup
    'srv/base/20261129T070000/data.tar': 'partial',
    // an unreadable backup.info: skipped with a WARNING
    'srv/base/20261129T030000/backup.info': 'status=DONE\nthis line has no equals sign\n',
    // a stray object directly under base/
    'srv/base/README': 'not a backup',
    'srv/wals/0000000100000000/000000010000000000000006': 'wal',
    // two backups sharing a name
    'dup/base/20260101T000000/backup.info': HEAD_DONE.replace(/20261129T050418/g, '20260101T000000'),
    'dup/base/20260102T000000/backup.info': HEAD_DONE.replace(/20261129T050418/g, '20260102T000000'),
    // a backup.info from a newer barman with a key 3.17 does not know
    'future/base/20260101T000000/backup.info': HEAD_DONE,
    'future/base/20260102T000000/backup.info': `${HEAD_DONE}zz_new_field=1\n`,
  };
}

const LOG_LINE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} \[\d+\] (WARNING|ERROR): /;

interface JsonEntry {
  backup_id: string;
  backup_name?: string;
  systemid: unknown;
  timeline: unknown;
  begin_time: string | null;
  end_time: string | null;
  begin_time_iso?: string;
  end_time_iso?: string;
  begin_wal: string;
  end_xlog: string | null;
  status: string;
  error: string | null;
  backup_label: string | null;
  tablespaces: unknown;
  copy_stats: unknown;
  [k: string]: unknown;
}

let root: string;
let url: string;
const list = (...args: string[]) => runBin('barman-cloud-backup-list', [...args, url, 'srv']);
const show = (id: string, ...args: string[]) => runBin('barman-cloud-backup-show', [...args, url, 'srv', id]);

function expectOnlyStdout(r: BinResult, stdout: string): void {
  expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code: 0, stderr: expect.any(String), stdout });
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'bc-catalog-'));
  url = `file://${root}`;
  for (const [key, body] of Object.entries(catalogObjects())) {
    mkdirSync(dirname(join(root, key)), { recursive: true });
    writeFileSync(join(root, key), body);
  }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('barman-cloud-backup-list on the directory store', () => {
  it('prints the console table byte for byte, skipping the unreadable backup.info with a WARNING', async () => {
    const r = await list();
    expectOnlyStdout(r, LIST_CONSOLE);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(LOG_LINE);
    expect(lines[0]).toContain(
      'WARNING: Unable to open backup.info file for 20261129T030000: invalid line this line has no equals sign in file <UNKNOWN>',
    );
  });

  it('prints JSON the operator can parse: every status, sorted, systemid string, timeline number', async () => {
    const r = await list('--format', 'json');
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('}\n')).toBe(true);
    expect(r.stdout.split('\n')).toHaveLength(2);
    const doc = JSON.parse(r.stdout) as { backups_list: JsonEntry[] };
    expect(Object.keys(doc)).toEqual(['backups_list']);
    const entries = doc.backups_list;
    expect(entries.map((e) => e.backup_id)).toEqual(['20261129T050418', '20261129T050543', '20261129T050814', '20261129T060000']);
    for (const e of entries) {
      expect(typeof e.systemid).toBe('string');
      expect(typeof e.timeline).toBe('number');
      expect(e.begin_time_iso).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?[+-]\d{2}:\d{2}$/);
      expect(e.begin_time).toMatch(/^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/);
    }
    const [first, v34, failed, named] = entries as [JsonEntry, JsonEntry, JsonEntry, JsonEntry];
    expect(first).toMatchObject({
      backup_name: 'firsthead', begin_time: 'Sun Nov 29 05:04:19 2026', end_time: 'Sun Nov 29 05:05:01 2026',
      begin_time_iso: '2026-11-29T05:04:19.003382+00:00', end_time_iso: '2026-11-29T05:05:01.087588+00:00',
      begin_wal: '000000010000000000000006', end_xlog: '0/602AE80', systemid: '7713454245083309119', timeline: 1,
      tablespaces: [['tbs1', 16384, '/srv/tbs1']], error: null,
    });
    expect(first.backup_label?.startsWith("'START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\\nCHECKPOINT")).toBe(true);
    expect(first.copy_stats).toMatchObject({ total_time: 44.262411, copy_time: 0.113994, analysis_time: 0 });
    // The HEAD entry of docs/format.md#list-json appears verbatim in the one-line output.
    expect(r.stdout).toContain('"copy_stats": {"total_time": 44.262411, "number_of_workers": 2, "analysis_time": 0, ');
    expect(r.stdout).toContain('"xlog_segment_size": 16777216, "backup_id": "20261129T050418", "begin_time_iso": ');
    // A 3.4 file: the newer keys are there, as null.
    for (const k of NEWER_KEYS) expect(v34[k]).toBeNull();
    expect(v34).not.toHaveProperty('backup_name');
    // FAILED: end_time null and no end_time_iso, so the operator never takes it as done.
    expect(failed.status).toBe('FAILED');
    expect(failed.end_time).toBeNull();
    expect(failed).not.toHaveProperty('end_time_iso');
    expect(failed.error).toMatch(/^failure uploading data/);
    expect(named).toMatchObject({
      backup_name: 'backup-20261129070000', timeline: 2, end_time: 'Sun Nov 29 07:00:05 2026', end_time_iso: '2026-11-29T07:00:05+01:00',
    });
  });

  it('treats any --format other than console as JSON', async () => {
    const a = await list('--format', 'json');
    const b = await list('--format', 'whatever');
    expect(b.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
  });

  it('prints only the header (or an empty list) for a server without backups', async () => {
    const r = await runBin('barman-cloud-backup-list', [url, 'nobody']);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: HEADER, stderr: '' });
    const j = await runBin('barman-cloud-backup-list', ['--format', 'json', url, 'nobody']);
    expect({ code: j.code, stdout: j.stdout, stderr: j.stderr }).toEqual({ code: 0, stdout: '{"backups_list": []}\n', stderr: '' });
  });

  it('aborts with exit 1 when a backup.info has a key barman does not know', async () => {
    const r = await runBin('barman-cloud-backup-list', [url, 'future']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("ERROR: Unsupported field 'zz_new_field' found in backup metadata.");
  });

  it('exits 4 when the store root does not exist', async () => {
    const r = await runBin('barman-cloud-backup-list', [`file://${root}/missing`, 'srv']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('Barman cloud backup list exception: ');
  });
});

describe('barman-cloud-backup-show on the directory store', () => {
  it('shows a DONE backup by ID, name, first and oldest, byte for byte', async () => {
    for (const id of ['20261129T050418', 'firsthead', 'first', 'oldest']) {
      const r = await show(id);
      expect({ id, code: r.code, stdout: r.stdout }).toEqual({ id, code: 0, stdout: SHOW_DONE });
    }
  });

  it('shows the FAILED layout for last-failed', async () => {
    const r = await show('last-failed');
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: SHOW_FAILED });
  });

  it('resolves latest / last to the greatest ID, and a 3.4 file shows without the newer blocks', async () => {
    for (const id of ['latest', 'last']) {
      const r = await show(id, '--format', 'json');
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as { cloud: JsonEntry }).cloud.backup_id).toBe('20261129T060000');
    }
    const v34 = await show('20261129T050543');
    expect(v34.code).toBe(0);
    expect(v34.stdout).not.toContain('Estimated Cluster Size');
    expect(v34.stdout).not.toContain('Server information');
    expect(v34.stdout).not.toContain('Tablespaces');
    expect(v34.stdout).toContain('  Status                 : DONE\n  PostgreSQL Version     : 150018\n  PGDATA directory       : /var/lib/postgresql/15/main\n\n  Base backup information:\n');
  });

  it('prints JSON keyed by "cloud", as the operator reads it (name → ID)', async () => {
    const r = await show('backup-20261129070000', '--format', 'json');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(2);
    const doc = JSON.parse(r.stdout) as Record<string, JsonEntry>;
    expect(Object.keys(doc)).toEqual(['cloud']);
    expect(doc.cloud).toMatchObject({
      backup_id: '20261129T060000', backup_name: 'backup-20261129070000', begin_wal: '00000002000000000000000A',
      begin_time_iso: '2026-11-29T07:00:00+01:00', end_time_iso: '2026-11-29T07:00:05+01:00', timeline: 2,
      systemid: '7713454245083309119',
    });
    const list = JSON.parse((await runBin('barman-cloud-backup-list', ['--format', 'json', url, 'srv'])).stdout) as { backups_list: JsonEntry[] };
    expect(doc.cloud).toEqual(list.backups_list.find((e) => e.backup_id === '20261129T060000'));
  });

  it('exits 1 for an ID-shaped backup that does not exist', async () => {
    const r = await show('20200101T000000');
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
    expect(r.stderr.trim()).toMatch(LOG_LINE);
    expect(r.stderr).toContain('ERROR: Backup 20200101T000000 for server srv does not exist\n');
  });

  it('exits 4 for an unknown name, a shortcut with nothing to match, and a duplicated name', async () => {
    const unknown = await show('nope');
    expect({ code: unknown.code, stdout: unknown.stdout }).toEqual({ code: 4, stdout: '' });
    expect(unknown.stderr).toContain("ERROR: Barman cloud backup show exception: Unknown backup 'nope' for server 'srv'\n");
    const none = await runBin('barman-cloud-backup-show', [url, 'nobody', 'last-failed']);
    expect(none.code).toBe(4);
    expect(none.stderr).toContain("Unknown backup 'last-failed' for server 'nobody'");
    const dup = await runBin('barman-cloud-backup-show', [url, 'dup', 'firsthead']);
    expect(dup.code).toBe(4);
    expect(dup.stderr).toContain(
      "Multiple backups found matching name 'firsthead' (try using backup ID instead): 20260101T000000 20260102T000000",
    );
  });

  it('exits 4 for an ID whose backup.info cannot be read, 1 for an unknown key', async () => {
    const bad = await show('20261129T030000');
    expect(bad.code).toBe(4);
    expect(bad.stderr).toContain('Barman cloud backup show exception: invalid line this line has no equals sign');
    const future = await runBin('barman-cloud-backup-show', [url, 'future', '20260102T000000']);
    expect(future.code).toBe(1);
    expect(future.stderr).toContain("Unsupported field 'zz_new_field'");
    const byShortcut = await runBin('barman-cloud-backup-show', [url, 'future', 'oldest']);
    expect(byShortcut.code).toBe(1);
  });
});

describe('BackupCatalog API on the directory store', () => {
  const open = async (server: string, path = '') => {
    const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    return { store, catalog: new BackupCatalog(store, new ServerLayout(path, server), { concurrency: 2 }) };
  };

  it('lists backup directories, keeps unreadable ones aside and reads keep annotations', async () => {
    const { store, catalog } = await open('srv');
    try {
      expect(await catalog.listBackupIds()).toEqual(['20261129T030000', '20261129T050418', '20261129T050543', '20261129T050814', '20261129T060000']);
      const listing = await catalog.load();
      expect([...listing.backups.keys()]).toEqual(['20261129T050418', '20261129T050543', '20261129T050814', '20261129T060000']);
      expect(listing.unreadable.map((u) => u.backupId)).toEqual(['20261129T030000']);
      expect(listing.unknownField).toEqual([]);
      expect(await catalog.getKeepTarget('20261129T050418')).toBe('standalone');
      expect(await catalog.getKeepTarget('20261129T050543')).toBeNull();
      expect(await catalog.resolve('20991231T235959')).toBe('20991231T235959');
      expect(await catalog.resolve('backup-20261129070000')).toBe('20261129T060000');
      expect(await catalog.resolve('last-failed')).toBe('20261129T050814');
    } finally {
      await store.close();
    }
  });

  it('exposes an unknown key as UnknownBackupInfoField', async () => {
    const { store, catalog } = await open('future');
    try {
      expect((await catalog.load()).unknownField.map((u) => u.backupId)).toEqual(['20260102T000000']);
      await expect(catalog.getBackupList()).rejects.toBeInstanceOf(UnknownBackupInfoField);
    } finally {
      await store.close();
    }
  });

  it('writes a backup.info that reads back identically, and annotations with the path quirk', async () => {
    const { store, catalog } = await open('written', 'pfx/');
    try {
      const info = newBackupInfo('20270101T000000', { ...parseBackupInfo(HEAD_FAILED), backup_name: 'mine' });
      await catalog.writeBackupInfo('20270101T000000', info, { compat: '3.4' });
      const back = await catalog.readBackupInfo('20270101T000000');
      expect(back && serializeBackupInfo(back, { compat: '3.4' })).toBe(serializeBackupInfo(info, { compat: '3.4' }));
      expect(existsSync(join(root, 'pfx/written/base/20270101T000000/backup.info'))).toBe(true);
      await catalog.putAnnotation('20270101T000000', 'keep', 'full');
      // barman builds annotation keys as "%s/" % path: a trailing '/' doubles the slash (docs/format.md#layout).
      expect(existsSync(join(root, 'pfx//written/base/20270101T000000/annotations/keep'))).toBe(true);
      const fresh = new BackupCatalog(store, new ServerLayout('pfx/', 'written'));
      expect(await fresh.getKeepTarget('20270101T000000')).toBe('full');
      expect(await fresh.resolve('mine')).toBe('20270101T000000');
    } finally {
      await store.close();
    }
  });
});

describe('on S3 (moto)', () => {
  let moto: ServerHandle;
  const bucket = 'catalog';
  const env = () => cleanEnv(MOTO_ENV);
  const args = (...rest: string[]) => ['--endpoint-url', moto.url, ...rest];

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, bucket);
    const store = await openObjectStore({
      provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    for (const [key, body] of Object.entries(catalogObjects())) await store.put(`pfx/${key}`, Buffer.from(body));
    await store.close();
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it('lists and shows the same catalog as the directory store', async () => {
    const l = await runBin('barman-cloud-backup-list', args(`s3://${bucket}/pfx`, 'srv'), { env: env() });
    expect({ code: l.code, stdout: l.stdout }).toEqual({ code: 0, stdout: LIST_CONSOLE });
    expect(l.stderr.trim().split('\n')).toEqual([expect.stringMatching(LOG_LINE)]);
    expect(l.stderr).toContain('WARNING: Unable to open backup.info file for 20261129T030000');
    const j = await runBin('barman-cloud-backup-list', args('--format', 'json', `s3://${bucket}/pfx`, 'srv'), { env: env() });
    const local = await runBin('barman-cloud-backup-list', ['--format', 'json', url, 'srv']);
    expect(j.code).toBe(0);
    expect(j.stdout).toBe(local.stdout);
    const s = await runBin('barman-cloud-backup-show', args(`s3://${bucket}/pfx`, 'srv', 'firsthead'), { env: env() });
    expect({ code: s.code, stdout: s.stdout }).toEqual({ code: 0, stdout: SHOW_DONE });
    const f = await runBin('barman-cloud-backup-show', args(`s3://${bucket}/pfx`, 'srv', 'last-failed'), { env: env() });
    expect({ code: f.code, stdout: f.stdout }).toEqual({ code: 0, stdout: SHOW_FAILED });
    const missing = await runBin('barman-cloud-backup-show', args(`s3://${bucket}/pfx`, 'srv', '20200101T000000'), { env: env() });
    expect(missing.code).toBe(1);
    const unknown = await runBin('barman-cloud-backup-show', args(`s3://${bucket}/pfx`, 'srv', 'nope'), { env: env() });
    expect(unknown.code).toBe(4);
  });

  // barman 3.4 reads only 3.4-format files: compare on a server holding just those.
  const BARMAN = '/usr/bin/barman-cloud-backup-list';
  const skip34 = requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync(BARMAN));

  const runPython = (tool: string, toolArgs: string[]) => runBarman(tool, toolArgs, env());

  it.skipIf(skip34)('prints what barman-cli-cloud 3.4 prints for 3.4-format backup.info files', async () => {
    const store = await openObjectStore({
      provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    await store.put('v34/srv/base/20261129T050418/backup.info', Buffer.from(dropNewer(HEAD_DONE)));
    await store.put('v34/srv/base/20261129T050418/annotations/keep', Buffer.from('full'));
    await store.put('v34/srv/base/20261129T050543/backup.info', Buffer.from(V34_DONE));
    await store.put('v34/srv/base/20261129T050814/backup.info', Buffer.from(dropNewer(HEAD_FAILED)));
    await store.close();
    const where = [`s3://${bucket}/v34`, 'srv'];
    const theirs = await runPython('barman-cloud-backup-list', args(...where));
    const ours = await runBin('barman-cloud-backup-list', args(...where), { env: env() });
    expect(theirs.code).toBe(0);
    expect(ours.stdout).toBe(theirs.stdout);
    for (const id of ['firsthead', '20261129T050814', '20261129T050543']) {
      const t = await runPython('barman-cloud-backup-show', args(...where, id));
      const o = await runBin('barman-cloud-backup-show', args(...where, id), { env: env() });
      // 3.17 prints an empty line after the general block for every status; 3.4 only for DONE.
      const expected = t.stdout.replace(/^( {2}Status {17}: FAILED\n)/m, '$1\n');
      expect({ id, code: o.code, stdout: o.stdout }).toEqual({ id, code: t.code, stdout: expected });
    }
    // 3.4 JSON is ours without the *_iso keys and the six newer (null) keys.
    const tj = await runPython('barman-cloud-backup-list', args('--format', 'json', ...where));
    const oj = await runBin('barman-cloud-backup-list', args('--format', 'json', ...where), { env: env() });
    let stripped = oj.stdout.replace(/, "(begin|end)_time_iso": "[^"]*"/g, '');
    for (const k of NEWER_KEYS) stripped = stripped.split(`"${k}": null, `).join('');
    expect(stripped).toBe(tj.stdout);
  });
});

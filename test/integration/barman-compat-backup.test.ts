// Base-backup cross-compatibility with Debian's barman-cli-cloud 3.4 on the same moto bucket.
//
// barman 3.4 → ours: a PostgreSQL 15 with a tablespace archives its WAL with OUR wal-archive while
// barman's own barman-cloud-backup 3.4 takes base backups (none, -z, -j, and -S 1MB so that the
// data and tablespace archives have `_0001` parts). Ours lists and shows them exactly as barman 3.4
// does (console and JSON), the JSON parses into the operator's types (docs/compatibility.md#cloudnativepg-plugin-or-in-tree), and our
// restore (with tablespace relocation) gives a copy that starts through our wal-restore with every
// committed row.
//
// ours → barman 3.4: our backup.info carries the keys added after 3.4 (docs/format.md#backup-info-syntax), which 3.4
// cannot read. This documents that known limitation: 3.4's backup-list skips our backup with its
// WARNING and still lists its own backups; 3.4's restore of ours fails (exit 4) without writing.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBarman, runBin, cleanEnv } from '../helpers/run-bin.ts';
import {
  pgTempDir, postgresAvailable, requireTool, roundTripRows, startCluster, startRestoredCopy, toolCommand, type PgCluster,
} from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const BARMAN_BACKUP = '/usr/bin/barman-cloud-backup';
const skip =
  requireTool('PostgreSQL 15', postgresAvailable()) ||
  requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync(BARMAN_BACKUP));
const BUCKET = 'compat';
const PREFIX = 'pg';
const SERVER = 'srv';


// ---------------------------------------------------------------------------------------------
// What the operator reads (docs/compatibility.md#cloudnativepg-plugin-or-in-tree): Go's catalog.BarmanBackup unmarshalled from the JSON,
// then tryParseISOOrCtimeTime on begin/end. Any type mismatch or unparsable time aborts its parse.

const STRING_KEYS = ['backup_id', 'backup_name', 'backup_label', 'begin_time', 'end_time', 'begin_time_iso', 'end_time_iso',
  'begin_wal', 'end_wal', 'begin_xlog', 'end_xlog', 'systemid', 'error'] as const;
const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const CTIME = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Wall-clock "YYYY-MM-DD HH:MM:SS" of a time as the operator parses it, plus its epoch ms. */
function operatorTime(iso: unknown, ctime: unknown, what: string): { wall: string; epochMs: number } | null {
  if (typeof iso === 'string' && iso !== '') {
    const m = RFC3339.exec(iso);
    if (!m) throw new Error(`${what}_iso ${JSON.stringify(iso)} is not RFC 3339 with an offset`);
    const epochMs = Date.parse(iso);
    if (Number.isNaN(epochMs)) throw new Error(`${what}_iso ${JSON.stringify(iso)} does not parse`);
    return { wall: `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}`, epochMs };
  }
  if (ctime === null || ctime === undefined || ctime === '') return null;
  const m = CTIME.exec(String(ctime));
  if (!m) throw new Error(`${what} ${JSON.stringify(ctime)} is neither ctime nor accompanied by ${what}_iso`);
  const mon = String(MONTHS.indexOf(m[2]!) + 1).padStart(2, '0');
  const wall = `${m[7]}-${mon}-${m[3]!.padStart(2, '0')} ${m[4]}:${m[5]}:${m[6]}`;
  return { wall, epochMs: Date.parse(`${wall.replace(' ', 'T')}Z`) };
}

interface OperatorBackup {
  backupId: string;
  backupName: string;
  systemId: string;
  timeline: number;
  beginWal: string;
  endWal: string;
  beginLsn: string;
  endLsn: string;
  begin: { wall: string; epochMs: number } | null;
  end: { wall: string; epochMs: number } | null;
  done: boolean;
}

function operatorParse(entry: Record<string, unknown>): OperatorBackup {
  for (const k of STRING_KEYS) {
    const v = entry[k];
    if (v !== undefined && v !== null && typeof v !== 'string') throw new Error(`${k} must be a JSON string, got ${JSON.stringify(v)}`);
  }
  const tl = entry.timeline;
  if (tl !== undefined && tl !== null && !(typeof tl === 'number' && Number.isInteger(tl))) {
    throw new Error(`timeline must be a JSON integer, got ${JSON.stringify(tl)}`);
  }
  const begin = operatorTime(entry.begin_time_iso, entry.begin_time, 'begin_time');
  const end = operatorTime(entry.end_time_iso, entry.end_time, 'end_time');
  // When both forms are there they must name the same wall-clock time (ctime has no zone).
  for (const [iso, ct, what] of [[entry.begin_time_iso, entry.begin_time, 'begin'], [entry.end_time_iso, entry.end_time, 'end']] as const) {
    if (typeof iso === 'string' && typeof ct === 'string') {
      expect(operatorTime(undefined, ct, what)!.wall, `${what} ctime vs iso`).toBe(operatorTime(iso, undefined, what)!.wall);
    }
  }
  const s = (k: string) => (typeof entry[k] === 'string' ? (entry[k] as string) : '');
  return {
    backupId: s('backup_id'),
    backupName: s('backup_name'),
    systemId: s('systemid'),
    timeline: (tl as number | null) ?? 0,
    beginWal: s('begin_wal'),
    endWal: s('end_wal'),
    beginLsn: s('begin_xlog'),
    endLsn: s('end_xlog'),
    begin,
    end,
    done: begin !== null && end !== null,
  };
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(skip)('base backups: cross-compatibility with barman-cli-cloud 3.4', () => {
  let moto: ServerHandle;
  let s3: S3Client;
  let primary: PgCluster;
  let tbsDir: string;
  let systemId: string;
  const clusters: PgCluster[] = [];
  const url = () => ['--endpoint-url', moto.url, `s3://${BUCKET}/${PREFIX}`, SERVER];
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });
  /** name → backup ID of the backups barman 3.4 took. */
  const theirs = new Map<string, string>();

  async function keysUnder(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) keys.push(o.Key!);
      token = r.NextContinuationToken;
    } while (token);
    return keys;
  }

  async function ourList(): Promise<Record<string, unknown>[]> {
    const r = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url()], { env: env() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    return (JSON.parse(r.stdout) as { backups_list: Record<string, unknown>[] }).backups_list;
  }

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    s3 = new S3Client({
      endpoint: moto.url, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    tbsDir = pgTempDir('bc-compat-tbs-');
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', url())} %p` },
      serverEnv: { ...MOTO_ENV },
    });
    clusters.push(primary);
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbsDir}'`);
    // Two files over 1 MiB in the tablespace (heap and index), so that -S 1MB splits it too.
    await primary.psql(
      "CREATE TABLE t (id int primary key, phase text) TABLESPACE tbs1; " +
        "INSERT INTO t SELECT g, 'before the first backup, row ' || g FROM generate_series(1, 60000) g;",
    );
    await primary.pgbench(['-i', '-s', '2', '-q']);
    systemId = await primary.psql('SELECT system_identifier::text FROM pg_control_system()');
  }, 120_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    s3?.destroy();
    await moto?.stop();
  });

  const variants: [string, string[]][] = [
    ['none', []],
    ['gzip', ['-z']],
    ['bzip2', ['-j']],
    ['split', ['-S', '1MB']],
  ];

  it.each(variants)('barman 3.4 backup (%s) → our list/show → our restore → the copy starts with every row', async (variant, flags) => {
    const name = `b34-${variant}`;
    const load = primary.pgbench(['-c', '2', '-T', '3', '-n']);
    const b = await runBarman('barman-cloud-backup', [...flags, '--immediate-checkpoint', '-n', name, ...url()], env());
    await load;
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });

    const entry = (await ourList()).find((x) => x.backup_name === name);
    expect(entry).toMatchObject({ status: 'DONE', server_name: 'cloud', systemid: systemId, timeline: 1 });
    const id = String(entry!.backup_id);
    expect(id).toMatch(/^\d{8}T\d{6}$/);
    theirs.set(name, id);
    // barman 3.4 writes no keys added after 3.4: none of the six newer ones is in its backup.info.
    expect(entry).toMatchObject({ children_backup_ids: null, cluster_size: null, data_checksums: null, parent_backup_id: null });

    // The objects barman wrote: suffix per codec, parts for -S.
    const tbsOid = (entry!.tablespaces as [string, number, string][])[0]![1];
    const keys = (await keysUnder(`${PREFIX}/${SERVER}/base/${id}/`)).map((k) => k.slice(k.lastIndexOf('/') + 1));
    const sfx = { none: '.tar', gzip: '.tar.gz', bzip2: '.tar.bz2', split: '.tar' }[variant]!;
    expect(keys).toContain(`data${sfx}`);
    expect(keys).toContain(`${tbsOid}${sfx}`);
    if (variant === 'split') {
      expect(keys).toContain('data_0001.tar');
      expect(keys).toContain(`${tbsOid}_0001.tar`);
    } else {
      expect(keys.filter((k) => k.includes('_0'))).toEqual([]);
    }

    // Committed after the backup; the WAL holding it is archived (by ours).
    await primary.psql(`INSERT INTO t VALUES (${100000 + theirs.size}, 'after ${name}')`);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const expected = await roundTripRows(primary);

    const work = pgTempDir('bc-compat-restore-');
    const dest = join(work, 'data');
    const tbsNew = join(work, 'tbs-relocated');
    // By name for one of them: barman 3.4 backups have backup_name, resolved like HEAD's.
    const which = variant === 'gzip' ? name : id;
    const r = await runBin('barman-cloud-restore', ['--tablespace', `tbs1:${tbsNew}`, ...url(), which, dest], { env: env(), timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readlinkSync(join(dest, 'pg_tblspc', String(tbsOid)))).toBe(tbsNew);
    expect(readdirSync(tbsNew).some((n) => n.startsWith('PG_15_'))).toBe(true);
    expect(existsSync(join(dest, 'backup_label'))).toBe(true);
    expect(existsSync(join(dest, 'global', 'pg_control'))).toBe(true);
    expect(readdirSync(join(dest, 'pg_wal'))).toEqual([]);
    // barman's restore writes no recovery configuration, and neither does ours without the flag.
    expect(existsSync(join(dest, 'recovery.signal'))).toBe(false);
    // verify reads barman's tars as restore extracts them (member names, link targets, the
    // tablespace's version directory: docs/format.md#restore-tablespace-members): nothing to report
    const v = await runBin('barman-cloud', ['verify', '--format', 'json', ...url(), id], { env: env(), timeoutMs: 120_000 });
    const report = JSON.parse(v.stdout) as { backups: { result: string; problems: unknown[] }[] };
    expect({ code: v.code, result: report.backups[0]?.result, problems: report.backups[0]?.problems }).toEqual({ code: 0, result: 'ok', problems: [] });

    const copy = await startRestoredCopy(dest, url(), { serverEnv: { ...MOTO_ENV }, clusters, tablespaceDirs: [tbsNew] });
    expect(await roundTripRows(copy)).toEqual(expected);
    expect(await copy.psql('SELECT system_identifier::text FROM pg_control_system()')).toBe(systemId);
    await copy.remove();
    rmSync(work, { recursive: true, force: true });
  }, 240_000);

  it('lists and shows barman 3.4 backups exactly as barman 3.4 does, in the operator types', async () => {
    expect(theirs.size).toBe(variants.length);

    // Console list: byte-identical to 3.4's own.
    const oursConsole = await runBin('barman-cloud-backup-list', url(), { env: env() });
    const theirsConsole = await runBarman('barman-cloud-backup-list', url(), env());
    expect({ code: oursConsole.code, stderr: oursConsole.stderr }).toEqual({ code: 0, stderr: '' });
    expect(theirsConsole.code).toBe(0);
    expect(oursConsole.stdout).toBe(theirsConsole.stdout);
    const rows = oursConsole.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^Backup ID {11}End Time {17}Begin Wal {21}Archival Status {2}Name/);
    for (const [name, id] of theirs) expect(rows.some((l) => l.startsWith(id) && l.trimEnd().endsWith(name))).toBe(true);

    // JSON list: every key 3.4 writes has 3.4's value in ours; ours adds HEAD's *_iso keys.
    const oursJson = await ourList();
    const theirsJsonRun = await runBarman('barman-cloud-backup-list', ['--format', 'json', ...url()], env());
    expect(theirsJsonRun.code).toBe(0);
    const theirsJson = (JSON.parse(theirsJsonRun.stdout) as { backups_list: Record<string, unknown>[] }).backups_list;
    expect(oursJson.map((e) => e.backup_id)).toEqual(theirsJson.map((e) => e.backup_id));
    for (const [i, t] of theirsJson.entries()) {
      const o = oursJson[i]!;
      for (const [k, v] of Object.entries(t)) expect(o[k], `${String(t.backup_id)} ${k}`).toEqual(v);
      expect(t.begin_time_iso).toBeUndefined();
      expect(String(o.begin_time_iso)).toMatch(/[+-]\d\d:\d\d$/);
      expect(String(o.end_time_iso)).toMatch(/[+-]\d\d:\d\d$/);
    }

    // The operator's view of both: the same backups, the same times, all usable ("done").
    const opOurs = oursJson.map(operatorParse);
    const opTheirs = theirsJson.map(operatorParse);
    expect(opOurs).toEqual(opTheirs.map((b, i) => ({ ...b, begin: opOurs[i]!.begin, end: opOurs[i]!.end })));
    for (const [i, b] of opOurs.entries()) {
      expect(b).toMatchObject({ systemId, timeline: 1, done: true });
      expect(b.begin!.wall).toBe(opTheirs[i]!.begin!.wall);
      expect(b.end!.wall).toBe(opTheirs[i]!.end!.wall);
      expect(b.end!.epochMs).toBeGreaterThanOrEqual(b.begin!.epochMs);
      expect(b.beginWal).toMatch(/^[0-9A-F]{24}$/);
      expect(b.endLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    }

    // show: top key `cloud`, the same entry as in the list; 3.4's show agrees key by key.
    for (const [name, id] of theirs) {
      const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...url(), id], { env: env() });
      expect({ code: show.code, stderr: show.stderr }).toEqual({ code: 0, stderr: '' });
      const parsed = JSON.parse(show.stdout) as Record<string, Record<string, unknown>>;
      expect(Object.keys(parsed)).toEqual(['cloud']);
      expect(parsed.cloud).toEqual(oursJson.find((e) => e.backup_id === id));
      expect(operatorParse(parsed.cloud!)).toMatchObject({ backupId: id, backupName: name, systemId, timeline: 1, done: true });
      const theirShow = await runBarman('barman-cloud-backup-show', ['--format', 'json', ...url(), id], env());
      expect(theirShow.code).toBe(0);
      const theirParsed = JSON.parse(theirShow.stdout) as Record<string, Record<string, unknown>>;
      expect(Object.keys(theirParsed)).toEqual(['cloud']);
      for (const [k, v] of Object.entries(theirParsed.cloud!)) expect(parsed.cloud![k], `${id} ${k}`).toEqual(v);

      const consoleShow = await runBin('barman-cloud-backup-show', [...url(), name], { env: env() });
      expect({ code: consoleShow.code, stderr: consoleShow.stderr }).toEqual({ code: 0, stderr: '' });
      expect(consoleShow.stdout).toMatch(new RegExp(`^Backup ${id}:\\n  Backup Name +: ${name}\\n  Server Name +: cloud\\n`));
    }
  }, 120_000);

  it('ours → barman 3.4: 3.4 skips our backup.info (newer keys) with a WARNING and still lists its own', async () => {
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'ours', ...url()], { env: env(), timeoutMs: 120_000 });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    const ours = (await ourList()).find((e) => e.backup_name === 'ours')!;
    expect(ours).toMatchObject({ status: 'DONE', server_name: 'cloud' });
    const id = String(ours.backup_id);
    expect(operatorParse(ours)).toMatchObject({ backupId: id, done: true, timeline: 1, systemId });

    const warning = new RegExp(`WARNING: Unable to open backup\\.info file for ${id}: 'BackupInfo' object has no attribute '\\w+'`);
    const listed = await runBarman('barman-cloud-backup-list', url(), env());
    expect(listed.code).toBe(0);
    expect(listed.stderr).toMatch(warning);
    expect(listed.stdout).not.toContain(id);
    for (const [name, theirId] of theirs) expect(listed.stdout).toMatch(new RegExp(`^${theirId} .*${name}`, 'm'));

    const json = await runBarman('barman-cloud-backup-list', ['--format', 'json', ...url()], env());
    expect(json.code).toBe(0);
    expect(json.stderr).toMatch(warning);
    const ids = (JSON.parse(json.stdout) as { backups_list: { backup_id: string }[] }).backups_list.map((e) => e.backup_id);
    expect(ids).toEqual([...theirs.values()].sort());

    // 3.4's restore of our backup cannot load it either: a general error (exit 4), nothing written.
    const work = pgTempDir('bc-compat-34restore-');
    const dest = join(work, 'data');
    const r = await runBarman('barman-cloud-restore', [...url(), id, dest], env());
    expect(r.code).toBe(4);
    expect(existsSync(dest)).toBe(false);
    rmSync(work, { recursive: true, force: true });

    // Ours still lists everything: its own backup and barman's.
    expect((await ourList()).map((e) => e.backup_id)).toEqual([...theirs.values(), id].sort());
  }, 120_000);
});

// Names we print come from the store (object keys, backup ids, tar members) and can be chosen by
// whoever can write there. A newline or terminal escape in one must not forge or hide a log line:
// one log call is one line (docs/format.md#untrusted-text). Run through the real executables.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import tarStream from 'tar-stream';
import { crc32c } from '@node-rs/crc32';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { BackupManifestBuilder } from '../../src/backup/manifest.ts';
import { renderManifest } from '../helpers/manifest.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';

const SEGMENT = '000000010000000000000001';
const FORGED = '\n2026-01-01 00:00:00,000 [1] ERROR: forged';

let work: string;
let root: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-untrusted-'));
  root = join(work, 'store');
  mkdirSync(join(root, 'srv', 'wals', '0000000100000000'), { recursive: true });
  mkdirSync(join(root, 'srv', 'base'), { recursive: true });
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

describe('untrusted text in log lines', () => {
  it("wal-restore's warning about a hostile key is one line, its newline escaped", async () => {
    writeFileSync(join(root, 'srv', 'wals', '0000000100000000', `${SEGMENT}${FORGED}\x1b[2K`), 'x');
    const dest = join(work, 'RECOVERYXLOG');
    const r = await runBin('barman-cloud-wal-restore', [`file://${root}`, 'srv', SEGMENT, dest], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(1);
    const got = lines(r.stderr);
    expect(got, r.stderr).toHaveLength(1);
    expect(got[0]).toMatch(/^\S+ \S+ \[\d+\] WARNING: Unknown WAL file: .*000000010000000000000001\\n2026-01-01 00:00:00,000 \[1\] ERROR: forged\\x1b\[2K$/);
    expect(r.stderr).not.toContain('\x1b');
  });

  it('backup-list: a hostile backup id is one warning line, one console row, and valid JSON', async () => {
    const unreadable = `20260101T000000${FORGED}`;
    mkdirSync(join(root, 'srv', 'base', unreadable));
    writeFileSync(join(root, 'srv', 'base', unreadable, 'backup.info'), 'no equals sign here\n');
    const readable = `20260102T000000${FORGED}\r`;
    mkdirSync(join(root, 'srv', 'base', readable));
    writeFileSync(join(root, 'srv', 'base', readable, 'backup.info'), serializeBackupInfo(newBackupInfo('20260102T000000', {
      status: 'DONE', end_time: '2026-01-02 00:00:05+00:00', begin_wal: SEGMENT,
    })));
    const r = await runBin('barman-cloud-backup-list', ['--format', 'json', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    const got = lines(r.stderr);
    expect(got, r.stderr).toHaveLength(1);
    expect(got[0]).toContain('WARNING: Unable to open backup.info file for 20260101T000000\\n2026-01-01 00:00:00,000 [1] ERROR: forged:');
    const listed = JSON.parse(r.stdout) as { backups_list: { backup_id: string }[] };
    expect(listed.backups_list.map((b) => b.backup_id)).toEqual([readable]);
    // the console table: one header and one row, the id's control characters escaped
    const table = await runBin('barman-cloud-backup-list', [`file://${root}`, 'srv'], { env: cleanEnv() });
    expect(table.code, table.stderr).toBe(0);
    const rows = lines(table.stdout);
    expect(rows, table.stdout).toHaveLength(2);
    expect(rows[1]).toMatch(/^20260102T000000\\n2026-01-01 00:00:00,000 \[1\] ERROR: forged\\r2026-01-02 00:00:05 /);
  });

  it('verify: a hostile tar member name is one escaped PROBLEM line, and the JSON report stays valid', async () => {
    const id = '20261201T000000';
    const hostile = 'base/1/1\nverify srv: OK: 1 backup verified, 0 problems\x1b[1A\x1b[2K';
    const listed = Buffer.from('x');
    const mb = new BackupManifestBuilder();
    mb.addFile('PG_VERSION', listed.length, 1_700_000_000, crc32c(listed));
    const manifest = renderManifest(mb, [{ timeline: 1, startLsn: '0/200028', endLsn: '0/300100' }]);
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    const packed = new Promise<Buffer>((res) => pack.on('end', () => res(Buffer.concat(chunks))));
    for (const [name, body] of [['PG_VERSION', listed], [hostile, Buffer.from('y')], ['backup_manifest', manifest]] as const) {
      pack.entry({ name, size: body.length, mode: 0o600, mtime: new Date(1_700_000_000_000) }, body);
    }
    pack.finalize();
    const base = join(root, 'srv', 'base', id);
    mkdirSync(base);
    writeFileSync(join(base, 'data.tar'), await packed);
    writeFileSync(join(base, 'backup.info'), serializeBackupInfo(newBackupInfo(id, {
      status: 'DONE', timeline: 1, begin_wal: SEGMENT, end_wal: SEGMENT, begin_xlog: '0/200028', end_xlog: '0/300100',
      xlog_segment_size: 1 << 20, version: 150000, server_name: 'cloud', backup_label: null,
    })));
    writeFileSync(join(root, 'srv', 'wals', '0000000100000000', SEGMENT), Buffer.alloc(1 << 20));
    const r = await runBin('barman-cloud', ['verify', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).not.toContain('\x1b');
    const out = lines(r.stdout);
    expect(out, r.stdout).toHaveLength(4);
    expect(out[1]).toBe('  PROBLEM unlisted-file: file base/1/1\\nverify srv: OK: 1 backup verified, 0 problems\\x1b[1A\\x1b[2K is in an archive but not in backup_manifest');
    expect(out[3]).toMatch(/^verify srv: FAILED: /);
    const json = await runBin('barman-cloud', ['verify', '--format', 'json', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { backups: { problems: { file?: string }[] }[] };
    expect(report.backups[0]!.problems.map((p) => p.file)).toContain(hostile);
  });

  it('doctor: a hostile backup id and backup.info value stay on their check\'s line, escaped', async () => {
    const unreadable = `20260101T000000${FORGED}\x1b[2J`;
    mkdirSync(join(root, 'srv', 'base', unreadable));
    writeFileSync(join(root, 'srv', 'base', unreadable, 'backup.info'), 'no equals sign here\n');
    const readable = '20260102T000000\r\x1b[2Kok    catalog: all is well\u2028';
    mkdirSync(join(root, 'srv', 'base', readable));
    writeFileSync(join(root, 'srv', 'base', readable, 'backup.info'), serializeBackupInfo(newBackupInfo('20260102T000000', {
      status: 'DONE', end_time: '2026-01-02 00:00:05+00:00', begin_wal: SEGMENT,
    })));
    const r = await runBin('barman-cloud', ['doctor', '--no-postgres', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    const got = lines(r.stdout);
    expect(got.map((l) => l.split(':')[0]), r.stdout).toEqual(['ok    configuration', 'ok    bucket', 'ok    probe object', 'warn  catalog']);
    expect(got[3]).toContain('20260101T000000 2026-01-01 00:00:00,000 [1] ERROR: forged\\x1b[2J');
    expect(got[3]).toContain('latest 20260102T000000\\r\\x1b[2Kok    catalog: all is well\\u2028 ended');
    expect(r.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]/);
    const json = await runBin('barman-cloud', ['doctor', '--no-postgres', '--format', 'json', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).not.toMatch(/[\x7f-\x9f\u2028\u2029]/);
    const report = JSON.parse(json.stdout) as { checks: { name: string; detail: string }[] };
    expect(report.checks.find((c) => c.name === 'catalog')!.detail).toContain('all is well\\u2028');
  });

  it('backup-show and backup-keep --status: backup.info fields and the keep annotation stay on their lines, escaped', async () => {
    const id = '20260102T000000';
    mkdirSync(join(root, 'srv', 'base', id, 'annotations'), { recursive: true });
    writeFileSync(join(root, 'srv', 'base', id, 'backup.info'), serializeBackupInfo(newBackupInfo(id, {
      status: 'DONE', end_time: '2026-01-02 00:00:05+00:00', begin_wal: SEGMENT, end_wal: SEGMENT, version: 150000, timeline: 1,
      backup_name: 'evil\r\x1b[2KBackup Name : good', pgdata: '/pg\x1b[31m',
      tablespaces: [{ name: `ts${FORGED}`, oid: 16385, location: '/srv/ts\u2028' }],
    })));
    writeFileSync(join(root, 'srv', 'base', id, 'annotations', 'keep'), 'full\r\x1b[2Kforged\nsecond line\n');
    const show = await runBin('barman-cloud-backup-show', [`file://${root}`, 'srv', id], { env: cleanEnv() });
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]/);
    expect(show.stdout).toMatch(/^ {2}Backup Name +: evil\\r\\x1b\[2KBackup Name : good$/m);
    expect(show.stdout).toMatch(/^ {2}PGDATA directory +: \/pg\\x1b\[31m$/m);
    expect(show.stdout).toMatch(/^ {4}ts\\n2026-01-01 00:00:00,000 \[1\] ERROR: forged *: \/srv\/ts\\u2028 \(oid: 16385\)$/m);
    expect(show.stdout).not.toMatch(/^2026-01-01/m);
    const keep = await runBin('barman-cloud-backup-keep', ['-s', `file://${root}`, 'srv', id], { env: cleanEnv() });
    expect(keep.code, keep.stderr).toBe(0);
    // barman's first line with its newline, then the print's own: one empty line follows
    expect(keep.stdout).toBe('Keep: full\\r\\x1b[2Kforged\n\n');
  });

  it("backup-delete --dry-run: a hostile backup id is escaped in the lines that name its keys", async () => {
    const id = `20260101T000000${FORGED}\x1b[2J`;
    mkdirSync(join(root, 'srv', 'base', id));
    // a snapshot backup: its dry run names the backup_label key as it is, not as a Python repr
    writeFileSync(join(root, 'srv', 'base', id, 'backup.info'), `${serializeBackupInfo(newBackupInfo('20260101T000000', {
      status: 'DONE', end_time: '2026-01-01 00:00:05+00:00', begin_wal: SEGMENT, end_wal: SEGMENT,
    }))}snapshots_info={'provider': 'gcp'}\n`);
    const r = await runBin('barman-cloud-backup-delete', ['--dry-run', '-b', 'oldest', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout), r.stdout).toEqual([
      'Skipping deletion of snapshots due to --dry-run option',
      'Skipping deletion of srv/base/20260101T000000\\n2026-01-01 00:00:00,000 [1] ERROR: forged\\x1b[2J/backup_label due to --dry-run option',
      "Skipping deletion of objects ['srv/base/20260101T000000\\n2026-01-01 00:00:00,000 [1] ERROR: forged\\x1b[2J/backup.info'] due to --dry-run option",
    ]);
  });
});

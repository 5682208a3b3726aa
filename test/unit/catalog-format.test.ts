// backup-list / backup-show output (docs/format.md#output), byte for byte against the verified barman 3.17 output.
import { describe, it, expect } from 'vitest';
import { newBackupInfo, parseBackupInfo, type BackupInfo } from '../../src/catalog/backup-info.ts';
import {
  backupInfoToJson, backupListHeader, backupListRow, formatBackupListJson, formatBackupShowConsole,
  formatBackupShowJson, humanDuration, listedInConsole, padRight, prettySize,
} from '../../src/catalog/format.ts';
import { pyJsonDumps } from '../../src/catalog/python-literal.ts';
import { HEAD_DONE, HEAD_FAILED, SHOW_DONE, SHOW_FAILED } from '../fixtures/backup-info.ts';

const NEWER_KEYS = ['children_backup_ids', 'cluster_size', 'data_checksums', 'encryption', 'parent_backup_id', 'summarize_wal'];
const V34_DONE = HEAD_DONE.split('\n').filter((l) => !NEWER_KEYS.some((k) => l.startsWith(`${k}=`))).join('\n');

const load = (id: string, text: string): BackupInfo => ({ ...parseBackupInfo(text), backup_id: id });
const done = load('20261129T050418', HEAD_DONE);
const failed = load('20261129T050814', HEAD_FAILED);
const second = newBackupInfo('20261129T050543', {
  status: 'DONE', server_name: 'cloud', begin_wal: '000000010000000000000008',
  begin_time: '2026-11-29 05:05:43.512345+00:00', end_time: '2026-11-29 05:05:44.623456+00:00',
});

// docs/format.md#list-console (verified): trailing spaces are part of the output.
const LIST_CONSOLE =
  'Backup ID           End Time                 Begin Wal                     Archival Status  Name                \n' +
  '20261129T050418     2026-11-29 05:05:01      000000010000000000000006      KEEP:STANDALONE  firsthead           \n' +
  '20261129T050543     2026-11-29 05:05:44      000000010000000000000008                                           \n';

// docs/format.md#list-json: the real HEAD entry, on one line as the tool prints it.
const HEAD_JSON_ENTRY = `{"backup_label": "'START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\\\\nCHECKPOINT LOCATION: 0/602ADA8\\\\nBACKUP METHOD: streamed\\\\nBACKUP FROM: primary\\\\nSTART TIME: 2026-11-29 05:04:57 UTC\\\\nLABEL: Barman backup cloud 20261129T050418\\\\nSTART TIMELINE: 1\\\\n'", "backup_name": "firsthead", "begin_offset": 40, "begin_time": "Sun Nov 29 05:04:19 2026", "begin_wal": "000000010000000000000006", "begin_xlog": "0/6000028", "children_backup_ids": null, "cluster_size": 31948489, "compression": null, "config_file": "/var/lib/postgresql/15/main/postgresql.conf", "copy_stats": {"total_time": 44.262411, "number_of_workers": 2, "analysis_time": 0, "analysis_time_per_item": {"16384": 0, "data": 0}, "copy_time_per_item": {"16384": 0.078708, "data": 0.026428}, "serialized_copy_time_per_item": {"16384": 0.067266, "data": 0.017049}, "copy_time": 0.113994, "serialized_copy_time": 0.084315}, "data_checksums": "on", "deduplicated_size": null, "encryption": null, "end_offset": 175744, "end_time": "Sun Nov 29 05:05:01 2026", "end_wal": "000000010000000000000006", "end_xlog": "0/602AE80", "error": null, "hba_file": "/var/lib/postgresql/15/main/pg_hba.conf", "ident_file": "/var/lib/postgresql/15/main/pg_ident.conf", "included_files": null, "mode": null, "parent_backup_id": null, "pgdata": "/var/lib/postgresql/15/main", "server_name": "cloud", "size": null, "status": "DONE", "summarize_wal": null, "systemid": "7713454245083309119", "tablespaces": [["tbs1", 16384, "/srv/tbs1"]], "timeline": 1, "version": 150018, "xlog_segment_size": 16777216, "backup_id": "20261129T050418", "begin_time_iso": "2026-11-29T05:04:19.003382+00:00", "end_time_iso": "2026-11-29T05:05:01.087588+00:00"}`;

describe('backup-list console (docs/format.md#list-console)', () => {
  it('prints the verified table byte for byte: DONE only, keep status, name', () => {
    // As backup-list prints it: the catalog's order (by ID), the header, then a row per listed backup.
    const keep = new Map([['20261129T050418', 'standalone']]);
    const rows = [done, second, failed].filter(listedInConsole).map((b) => backupListRow(b, keep.get(b.backup_id) ?? null));
    expect(rows).toHaveLength(2);
    expect(backupListHeader() + rows.join('')).toBe(LIST_CONSOLE);
  });

  it('prints the end time in the stored offset and never truncates', () => {
    const b = newBackupInfo('my-very-long-backup-directory-name', {
      status: 'DONE', begin_wal: '000000010000000000000001', end_time: '2026-01-31 23:59:59.999999-05:00', backup_name: 'n'.repeat(25),
    });
    expect(backupListRow(b, 'full')).toBe(
      'my-very-long-backup-directory-name2026-01-31 23:59:59      000000010000000000000001      KEEP:FULL        ' + 'n'.repeat(25) + '\n',
    );
  });

  it('fails like barman on a DONE backup without end_time', () => {
    expect(() => backupListRow(newBackupInfo('x', { status: 'DONE', begin_wal: 'w' }), null)).toThrow(/strftime/);
  });
});

describe('backup-list JSON (docs/format.md#list-json)', () => {
  it('reproduces the real HEAD entry byte for byte', () => {
    expect(pyJsonDumps(backupInfoToJson(done))).toBe(HEAD_JSON_ENTRY);
  });

  it('lists every status sorted by ID on one line', () => {
    const text = formatBackupListJson([failed, done]);
    expect(text).not.toContain('\n');
    expect(text.startsWith(`{"backups_list": [${HEAD_JSON_ENTRY}, {"backup_label": null, `)).toBe(true);
    const parsed = JSON.parse(text) as { backups_list: Record<string, unknown>[] };
    const f = parsed.backups_list[1]!;
    expect(f.backup_id).toBe('20261129T050814');
    expect(f.end_time).toBeNull();
    expect(f).not.toHaveProperty('end_time_iso');
    expect(f).not.toHaveProperty('backup_name');
    expect(f.begin_time_iso).toBe('2026-11-29T05:08:14.508609+00:00');
    expect(Object.keys(f).slice(-2)).toEqual(['backup_id', 'begin_time_iso']);
    expect(formatBackupListJson([])).toBe('{"backups_list": []}');
  });

  it('keeps the newer keys as null for a 3.4 file', () => {
    const entry = JSON.parse(pyJsonDumps(backupInfoToJson(load('20261129T050418', V34_DONE)))) as Record<string, unknown>;
    for (const k of NEWER_KEYS) expect(entry[k]).toBeNull();
  });

  it('escapes non-ASCII like ensure_ascii and keeps included_files / children ids shapes', () => {
    const b = newBackupInfo('20260101T000000', {
      status: 'DONE', backup_name: 'sauvegarde-été', included_files: ['/etc/a.conf'], children_backup_ids: ['a', 'b'],
      begin_time: '2026-11-01 00:00:00+01:00',
    });
    const text = pyJsonDumps(backupInfoToJson(b));
    expect(text).toContain('"backup_name": "sauvegarde-\\u00e9t\\u00e9"');
    expect(text).toContain('"included_files": ["/etc/a.conf"]');
    expect(text).toContain('"children_backup_ids": "a,b"');
    expect(text).toContain('"begin_time": "Sun Nov  1 00:00:00 2026"');
    expect(text).toContain('"begin_time_iso": "2026-11-01T00:00:00+01:00"');
  });
});

describe('backup-show (docs/format.md#show)', () => {
  it('prints the verified DONE output byte for byte', () => {
    expect(formatBackupShowConsole(done)).toBe(SHOW_DONE);
  });

  it('prints the verified FAILED output byte for byte', () => {
    expect(formatBackupShowConsole(failed)).toBe(SHOW_FAILED);
  });

  it('prints a 3.4 file without the newer blocks', () => {
    const expected = SHOW_DONE.replace('  Estimated Cluster Size : 30.5 MiB\n', '').replace('  Server information:\n    Checksums            : on\n\n', '');
    expect(formatBackupShowConsole(load('20261129T050418', V34_DONE))).toBe(expected);
  });

  it('keys the JSON by the server_name inside backup.info', () => {
    expect(formatBackupShowJson(done)).toBe(`{"cloud": ${HEAD_JSON_ENTRY}}`);
  });

  it('shows copy time and startup time in words', () => {
    const b = load('20261129T050418', HEAD_DONE.replace("'copy_time': 0.113994", "'copy_time': 3725.5").replace("'analysis_time': 0,", "'analysis_time': 61,"));
    expect(formatBackupShowConsole(b)).toContain('    Copy time            : 1 hour, 2 minutes, 5 seconds + 1 minute, 1 second startup\n');
  });
});

describe('pretty_size and human durations (barman.utils)', () => {
  it.each([
    [0, '0 B'], [1023, '1023 B'], [1024, '1.0 KiB'], [31948489, '30.5 MiB'], [2359296, '2.2 MiB'], [2621440, '2.5 MiB'],
    [2883584, '2.8 MiB'], [1099511627776, '1.0 TiB'], [1.5 * 1024 ** 8, '1.5 YiB'], [1024 ** 9, '1024.0 YiB'],
  ])('%d bytes → %s', (n, s) => expect(prettySize(n)).toBe(s));

  it.each([
    [0.113994, 'less than one second'], [1, '1 second'], [59.9999999, '1 minute'], [59.4, '59 seconds'], [61, '1 minute, 1 second'],
    [3600, '1 hour'], [86400, '1 day'], [90061.25, '1 day, 1 hour, 1 minute, 1 second'], [172800 + 7200 + 120 + 2, '2 days, 2 hours, 2 minutes, 2 seconds'],
    [-5.5, '5 seconds ago'],
  ])('%d s → %s', (s, text) => expect(humanDuration(s)).toBe(text));

  it('pads by characters like str.format', () => {
    expect(padRight('é', 3)).toBe('é  ');
    expect(padRight('abcd', 2)).toBe('abcd');
  });
});

// Retention policies and WAL cleanup (docs/format.md#retention): parsing, barman's report rules reproduced on the
// verified examples of docs/format.md#retention-report, the WAL planning of docs/format.md#wal-cleanup on its verified example, and the deletion
// executor (order, dry-run lines, interruption) on the local directory store.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AccessDeniedError, CliError, EXIT, GeneralError, OperationError } from '../../src/errors.ts';
import {
  evaluateRetention, formatRetentionPolicy, keepStatus, obsoleteBackupIds, parseRetentionPolicy, pointOfRecoverability,
  type RetentionPolicy,
} from '../../src/retention/policy.ts';
import {
  decideWalCleanup, deletablePrefixes, deletableWals, neighbourBackup, walNameFromKey, type WalEntry,
} from '../../src/retention/wal-cleanup.ts';
import { BackupDeleter, WalListing, backupArchiveFiles, formatSummary, pyListRepr } from '../../src/retention/delete.ts';
import { DELETION_ERROR, newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate, type BackupInfo } from '../../src/catalog/backup-info.ts';
import { BackupCatalog } from '../../src/catalog/catalog.ts';
import { ServerLayout, decodeHashDir } from '../../src/catalog/layout.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { setLogSink } from '../../src/log.ts';

const DAY = 86_400_000;
const NOW = new Date(Date.UTC(2026, 10, 29, 12, 0, 0));

const utc = (d: Date) => pyDatetimeStr(timestampFromDate(d, 0, 0));

/** A DONE backup (unless told otherwise) ending `daysAgo` days before NOW. */
function backup(id: string, fields: Partial<BackupInfo> & { daysAgo?: number } = {}): BackupInfo {
  const { daysAgo, ...rest } = fields;
  const end = daysAgo === undefined ? null : utc(new Date(NOW.getTime() - daysAgo * DAY));
  return newBackupInfo(id, { status: 'DONE', timeline: 1, end_time: end, begin_time: end, ...rest });
}

function catalogOf(...backups: BackupInfo[]): Map<string, BackupInfo> {
  return new Map(backups.map((b) => [b.backup_id, b]));
}

// ---------------------------------------------------------------------------------------------
describe('parseRetentionPolicy (docs/format.md#retention-policy)', () => {
  it.each<[string, RetentionPolicy, string]>([
    ['REDUNDANCY 2', { kind: 'redundancy', value: 2 }, 'REDUNDANCY 2'],
    ['  redundancy   0 ', { kind: 'redundancy', value: 0 }, 'REDUNDANCY 0'],
    ['Redundancy\t12', { kind: 'redundancy', value: 12 }, 'REDUNDANCY 12'],
    ['RECOVERY WINDOW OF 7 DAYS', { kind: 'window', value: 7, unit: 'd' }, 'RECOVERY WINDOW OF 7 DAYS'],
    ['recovery window of 1 day', { kind: 'window', value: 1, unit: 'd' }, 'RECOVERY WINDOW OF 1 DAYS'],
    ['RECOVERY WINDOW OF 4 WEEKS', { kind: 'window', value: 4, unit: 'w' }, 'RECOVERY WINDOW OF 4 WEEKS'],
    ['Recovery  Window  Of 1 MONTHS ', { kind: 'window', value: 1, unit: 'm' }, 'RECOVERY WINDOW OF 1 MONTHS'],
    ['RECOVERY WINDOW OF 3 Month', { kind: 'window', value: 3, unit: 'm' }, 'RECOVERY WINDOW OF 3 MONTHS'],
    ['RECOVERY WINDOW OF 30 DAYS', { kind: 'window', value: 30, unit: 'd' }, 'RECOVERY WINDOW OF 30 DAYS'],
  ])('%j', (text, policy, formatted) => {
    expect(parseRetentionPolicy(text)).toEqual(policy);
    expect(formatRetentionPolicy(policy)).toBe(formatted);
  });

  it.each(['REDUNDANCY', 'REDUNDANCY -1', 'REDUNDANCY 2 DAYS', 'REDUNDANCY2', 'RECOVERY WINDOW OF 7', 'RECOVERY WINDOW 7 DAYS',
    'RECOVERY WINDOW OF 7 YEARS', 'RECOVERY WINDOW OF 7 DAYSS', '30d', '', 'KEEP 3'])('rejects %j with exit 3', (text) => {
    let err: unknown;
    try {
      parseRetentionPolicy(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.CLI);
    expect((err as Error).message).toBe(`Could not create retention policy ${text}: Cannot parse option retention_policy: ${text}`);
  });

  it('fails like barman (exit 4) for MAIN and for windows Python cannot represent', () => {
    expect(() => parseRetentionPolicy('main')).toThrow(GeneralError);
    expect(() => parseRetentionPolicy('RECOVERY WINDOW OF 40000000 MONTHS')).toThrow(GeneralError);
  });

  it('fails like barman (exit 4) when the window starts before year 1, once there is a DONE backup', () => {
    const policy = parseRetentionPolicy('RECOVERY WINDOW OF 999999999 DAYS');
    const none = evaluateRetention(policy, { backups: new Map(), keepTarget: () => null, minimumRedundancy: 0, now: NOW });
    expect(none.statuses.size).toBe(0);
    const one = catalogOf(backup('20260101T000000', { daysAgo: 1 }));
    expect(() => evaluateRetention(policy, { backups: one, keepTarget: () => null, minimumRedundancy: 0, now: NOW })).toThrow(GeneralError);
    expect(() => evaluateRetention(parseRetentionPolicy('RECOVERY WINDOW OF 800000 DAYS'), { backups: one, keepTarget: () => null, minimumRedundancy: 0, now: NOW })).toThrow(GeneralError);
  });

  it('takes a month as 31 days and a week as 7', () => {
    const now = new Date(Date.UTC(2026, 2, 1, 12));
    const diff = (p: string) => (now.getTime() - pointOfRecoverability(parseRetentionPolicy(p) as Extract<RetentionPolicy, { kind: 'window' }>, now).getTime()) / DAY;
    // Differences of whole days up to a DST shift of the local zone (wall-clock arithmetic, as Python).
    expect(Math.round(diff('RECOVERY WINDOW OF 1 MONTHS'))).toBe(31);
    expect(Math.round(diff('RECOVERY WINDOW OF 2 WEEKS'))).toBe(14);
    expect(Math.round(diff('RECOVERY WINDOW OF 3 DAYS'))).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
describe('evaluateRetention: the verified examples of docs/format.md#retention-report', () => {
  // 6 backups ending 20/15/10/5(FAILED)/3/1 days ago, oldest first.
  const six = (keep: Record<string, string> = {}) => {
    const backups = catalogOf(
      backup('20261109T120000', { daysAgo: 20 }),
      backup('20261114T120000', { daysAgo: 15 }),
      backup('20261119T120000', { daysAgo: 10 }),
      backup('20261124T120000', { daysAgo: 5, status: 'FAILED' }),
      backup('20261126T120000', { daysAgo: 3 }),
      backup('20261128T120000', { daysAgo: 1 }),
    );
    return { backups, keepTarget: (id: string) => keep[id] ?? null };
  };
  const cases: [string, string, number, Record<string, string>, string[]][] = [
    ['REDUNDANCY 2', 'REDUNDANCY 2', 0, {}, ['OBSOLETE', 'OBSOLETE', 'OBSOLETE', '-', 'VALID', 'VALID']],
    ['RECOVERY WINDOW OF 7 DAYS', 'RECOVERY WINDOW OF 7 DAYS', 0, {}, ['OBSOLETE', 'OBSOLETE', 'VALID', '-', 'VALID', 'VALID']],
    ['RECOVERY WINDOW OF 7 DAYS -m 4', 'RECOVERY WINDOW OF 7 DAYS', 4, {}, ['OBSOLETE', 'OBSOLETE*', 'VALID', '-', 'VALID', 'VALID']],
    ['RECOVERY WINDOW OF 7 DAYS, oldest kept standalone', 'RECOVERY WINDOW OF 7 DAYS', 0, { '20261109T120000': 'standalone' },
      ['KEEP:STANDALONE', 'OBSOLETE', 'VALID', '-', 'VALID', 'VALID']],
    ['REDUNDANCY 1 -m 3', 'REDUNDANCY 1', 3, {}, ['OBSOLETE', 'OBSOLETE', 'VALID', '-', 'VALID', 'VALID']],
    // keep annotations consume redundancy slots (verified): newest-but-one kept FULL → only the newest VALID
    ['REDUNDANCY 2, newest-but-one kept full', 'REDUNDANCY 2', 0, { '20261126T120000': 'full' },
      ['OBSOLETE', 'OBSOLETE', 'OBSOLETE', '-', 'KEEP:FULL', 'VALID']],
  ];

  it.each(cases)('%s', (_label, text, m, keep, expected) => {
    const { backups, keepTarget } = six(keep);
    const report = evaluateRetention(parseRetentionPolicy(text), { backups, keepTarget, minimumRedundancy: m, now: NOW, serverName: 'srv' });
    // barman's dict order: newest first
    expect([...report.statuses.keys()]).toEqual([...backups.keys()].reverse());
    expect([...backups.keys()].map((id) => report.statuses.get(id))).toEqual(expected);
    expect(obsoleteBackupIds(report)).toEqual([...backups.keys()].filter((_, i) => expected[i] === 'OBSOLETE'));
  });

  it('warns when -m raises the redundancy, and when it keeps a backup of a window', () => {
    const { backups, keepTarget } = six();
    const red = evaluateRetention(parseRetentionPolicy('REDUNDANCY 1'), { backups, keepTarget, minimumRedundancy: 3, now: NOW });
    expect(red.effectiveRedundancy).toBe(3);
    expect(red.messages).toEqual([{ level: 'warning', text: 'Retention policy redundancy (1) is lower than the required minimum redundancy (3). Enforce 3.' }]);
    const win = evaluateRetention(parseRetentionPolicy('RECOVERY WINDOW OF 7 DAYS'), { backups, keepTarget, minimumRedundancy: 4, now: NOW, serverName: 'srv' });
    const warnings = win.messages.filter((m) => m.level === 'warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.text).toMatch(/^Keeping obsolete backup 20261114T120000 for server srv \(older than \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d\) due to minimum redundancy requirements \(4\)$/);
  });

  it('REDUNDANCY 0 makes every unkept DONE backup obsolete; -m 1 saves the newest', () => {
    const { backups, keepTarget } = six();
    const zero = evaluateRetention({ kind: 'redundancy', value: 0 }, { backups, keepTarget, minimumRedundancy: 0, now: NOW });
    expect(obsoleteBackupIds(zero)).toHaveLength(5);
    const one = evaluateRetention({ kind: 'redundancy', value: 0 }, { backups, keepTarget, minimumRedundancy: 1, now: NOW });
    expect(one.statuses.get('20261128T120000')).toBe('VALID');
  });

  it('keeps the first backup ending before the window, even when the window is empty of backups', () => {
    const backups = catalogOf(backup('20260101T000000', { daysAgo: 300 }), backup('20260201T000000', { daysAgo: 200 }));
    const r = evaluateRetention(parseRetentionPolicy('RECOVERY WINDOW OF 1 MONTHS'), { backups, keepTarget: () => null, minimumRedundancy: 0, now: NOW });
    expect([...r.statuses]).toEqual([['20260201T000000', 'VALID'], ['20260101T000000', 'OBSOLETE']]);
  });

  it('orders by backup ID (string), not by end time, and ignores WAITING_FOR_WALS/FAILED', () => {
    const backups = catalogOf(
      backup('20260101T000000', { daysAgo: 1 }), // oldest ID, newest end: still the oldest for barman
      backup('20260102T000000', { daysAgo: 50, status: 'WAITING_FOR_WALS' }),
      backup('20260103T000000', { daysAgo: 40 }),
    );
    const r = evaluateRetention(parseRetentionPolicy('REDUNDANCY 1'), { backups, keepTarget: () => null, minimumRedundancy: 0, now: NOW });
    expect(Object.fromEntries(r.statuses)).toEqual({ '20260103T000000': 'VALID', '20260102T000000': '-', '20260101T000000': 'OBSOLETE' });
  });

  it('reads keep annotations like barman: "standalone" exactly, any other non-empty value is full', () => {
    expect(keepStatus('standalone')).toBe('KEEP:STANDALONE');
    expect(keepStatus('full')).toBe('KEEP:FULL');
    expect(keepStatus('standalone\n')).toBe('KEEP:FULL');
    expect(keepStatus('whatever')).toBe('KEEP:FULL');
    expect(keepStatus('')).toBeNull();
    expect(keepStatus(null)).toBeNull();
  });

  it('skips incremental backups and propagates the parent status to children (hook-mode uploads)', () => {
    const backups = catalogOf(
      backup('20260101T000000', { daysAgo: 30, children_backup_ids: ['20260102T000000'] }),
      backup('20260102T000000', { daysAgo: 29, parent_backup_id: '20260101T000000' }),
      backup('20260103T000000', { daysAgo: 2 }),
    );
    const r = evaluateRetention(parseRetentionPolicy('REDUNDANCY 1'), { backups, keepTarget: () => null, minimumRedundancy: 0, now: NOW });
    expect(Object.fromEntries(r.statuses)).toEqual({ '20260103T000000': 'VALID', '20260101T000000': 'OBSOLETE', '20260102T000000': 'OBSOLETE' });
  });

  it('treats a DONE backup without end_time as inside the window (conservative)', () => {
    const backups = catalogOf(backup('20260101T000000', { daysAgo: 100 }), backup('20260102T000000', {}), backup('20260103T000000', { daysAgo: 1 }));
    const r = evaluateRetention(parseRetentionPolicy('RECOVERY WINDOW OF 7 DAYS'), { backups, keepTarget: () => null, minimumRedundancy: 0, now: NOW });
    expect(Object.fromEntries(r.statuses)).toEqual({ '20260103T000000': 'VALID', '20260102T000000': 'VALID', '20260101T000000': 'VALID' });
  });

  it('compares end times as instants whatever their offsets', () => {
    const point = NOW.getTime() - 7 * DAY;
    const before = pyDatetimeStr(timestampFromDate(new Date(point - 60_000), 3600, 0)); // +01:00, one minute before
    const after = pyDatetimeStr(timestampFromDate(new Date(point + 60_000), -5 * 3600, 0)); // -05:00, one minute after
    const backups = catalogOf(
      backup('20260101T000000', { end_time: before }),
      backup('20260102T000000', { end_time: before }),
      backup('20260103T000000', { end_time: after }),
    );
    const r = evaluateRetention(parseRetentionPolicy('RECOVERY WINDOW OF 7 DAYS'), { backups, keepTarget: () => null, minimumRedundancy: 0, now: NOW });
    expect(Object.fromEntries(r.statuses)).toEqual({ '20260103T000000': 'VALID', '20260102T000000': 'VALID', '20260101T000000': 'OBSOLETE' });
  });
});

// ---------------------------------------------------------------------------------------------
const W = (seg: number, tli = 1, log = 0) =>
  `${tli.toString(16).toUpperCase().padStart(8, '0')}${log.toString(16).toUpperCase().padStart(8, '0')}${seg.toString(16).toUpperCase().padStart(8, '0')}`;

describe('WAL names and directories', () => {
  it.each<[string, string | null]>([
    ['p/s/wals/0000000100000000/000000010000000000000006', '000000010000000000000006'],
    ['p/s/wals/0000000100000000/000000010000000000000006.gz', '000000010000000000000006'],
    ['p/s/wals/0000000100000000/000000010000000000000006.zst', '000000010000000000000006'],
    ['p/s/wals/0000000100000000/000000010000000000000006.00000028.backup.bz2', '000000010000000000000006.00000028.backup'],
    ['p/s/wals/0000000100000000/000000010000000000000006.partial.lz4', '000000010000000000000006.partial'],
    ['p/s/wals/00000002.history', '00000002.history'],
    ['p/s/wals/00000002.history.gz', '00000002.history'],
    ['p/s/wals/0000000100000000/000000010000000000000006.gz.gz', null],
    ['p/s/wals/0000000100000000/000000010000000000000006.tmp', null],
    ['p/s/wals/0000000100000000/README', null],
    ['p/s/wals/0000000100000000/0000000100000000000000zz', null],
  ])('%s → %s', (key, name) => {
    expect(walNameFromKey(key)).toBe(name);
  });

  it('decodes hash directories', () => {
    expect(decodeHashDir('000000020000000A')).toEqual({ tli: 2, log: 10 });
    expect(decodeHashDir('000000020000000a')).toEqual({ tli: 2, log: 10 });
    expect(decodeHashDir('00000002')).toBeNull();
    expect(decodeHashDir('junk')).toBeNull();
  });
});

/** WAL entries for the given names in one hash directory layout (key = P/S/wals/<dir>/<name>[sfx]). */
function walEntries(names: string[], suffix = ''): WalEntry[] {
  return names.map((name) => ({
    name,
    key: name.endsWith('.history') ? `p/srv/wals/${name}${suffix}` : `p/srv/wals/${name.slice(0, 16)}/${name}${suffix}`,
  }));
}

describe('WAL cleanup planning (docs/format.md#wal-cleanup)', () => {
  // The verified example: REDUNDANCY 1, backups at WAL 06 (kept standalone), 08, 0A.
  const b06 = backup('20260106T000000', { begin_wal: W(6), end_wal: W(6), daysAgo: 6 });
  const b08 = backup('20260108T000000', { begin_wal: W(8), end_wal: W(8), daysAgo: 4 });
  const b0A = backup('20260110T000000', { begin_wal: W(10), end_wal: W(10), daysAgo: 2 });
  const backups = catalogOf(b06, b08, b0A);
  const keep = (id: string) => (id === b06.backup_id ? 'standalone' : null);
  const names = [
    ...Array.from({ length: 10 }, (_, i) => W(i + 1)),
    `${W(4)}.00000028.backup`, `${W(6)}.00000028.backup`, `${W(8)}.00000028.backup`, `${W(10)}.00000028.backup`,
  ].sort();

  it('reports 08 OBSOLETE and deletes WALs 01-05, 07-09 and the .backup files of 04 and 08', () => {
    const report = evaluateRetention(parseRetentionPolicy('REDUNDANCY 1'), { backups, keepTarget: keep, minimumRedundancy: 0, now: NOW });
    expect(obsoleteBackupIds(report)).toEqual([b08.backup_id]);
    const decision = decideWalCleanup({ deleted: b08, backups, keepTarget: keep, fromRetentionPolicy: true });
    expect(decision).toMatchObject({ allowed: true, removeUntil: b0A, protectedRanges: [[W(6), W(6)]] });
    expect([...decision.protectedTimelines]).toEqual([]);
    const doomed = deletableWals(decision, walEntries(names, '.gz')).map((w) => w.name);
    expect(doomed).toEqual([
      // sorted by key: `…04.00000028.backup.gz` < `…04.gz`
      W(1), W(2), W(3), `${W(4)}.00000028.backup`, W(4), W(5), W(7), `${W(8)}.00000028.backup`, W(8), W(9),
    ]);
    const kept = names.filter((n) => !doomed.includes(n));
    expect(kept).toEqual([W(6), `${W(6)}.00000028.backup`, W(10), `${W(10)}.00000028.backup`]);
    // One hash directory holds everything: it is below nothing, so it is not deleted whole.
    expect(deletablePrefixes(decision, ['p/srv/wals/0000000100000000/']).prefixes).toEqual([]);
  });

  it('with -b the standalone backup before it blocks the cleanup', () => {
    expect(decideWalCleanup({ deleted: b08, backups, keepTarget: keep, fromRetentionPolicy: false }).allowed).toBe(false);
  });

  it.each<[string, (id: string) => string | null, BackupInfo[], boolean]>([
    ['no previous backup', () => null, [b08, b0A], true],
    ['previous backup without keep', () => null, [b06, b08, b0A], false],
    ['previous backup kept full', (id) => (id === b06.backup_id ? 'full' : null), [b06, b08, b0A], false],
    ['previous FAILED backup does not count', () => null, [{ ...b06, status: 'FAILED' }, b08, b0A], true],
    ['previous WAITING_FOR_WALS backup counts', () => null, [{ ...b06, status: 'WAITING_FOR_WALS' }, b08, b0A], false],
  ])('%s', (_label, keepTarget, list, allowed) => {
    const decision = decideWalCleanup({ deleted: b08, backups: catalogOf(...list), keepTarget, fromRetentionPolicy: true });
    expect(decision.allowed).toBe(allowed);
  });

  it('removes only up to the deleted backup itself when it is the newest', () => {
    const decision = decideWalCleanup({ deleted: b0A, backups: catalogOf(b0A), keepTarget: () => null, fromRetentionPolicy: false });
    expect(decision.removeUntil).toBe(b0A);
    expect(deletableWals(decision, walEntries(names)).map((w) => w.name)).toEqual(names.filter((n) => n < W(10)));
  });

  it('skips to the next DONE/WAITING_FOR_WALS backup, over FAILED ones', () => {
    const failed = backup('20260109T000000', { begin_wal: W(9), status: 'FAILED' });
    const list = catalogOf(b08, failed, b0A);
    expect(neighbourBackup(list, b08.backup_id, 1)).toBe(b0A);
    expect(neighbourBackup(list, b0A.backup_id, -1)).toBe(b08);
    expect(neighbourBackup(list, b08.backup_id, -1)).toBeNull();
  });

  it('a backup whose deletion was interrupted counts as it did before the mark (docs/format.md#delete-backup)', () => {
    const marked = backup('20260109T000000', { begin_wal: W(9), status: 'FAILED', error: DELETION_ERROR });
    const list = catalogOf(b08, marked, b0A);
    expect(neighbourBackup(list, b08.backup_id, 1)).toBe(marked);
    expect(neighbourBackup(list, b0A.backup_id, -1)).toBe(marked);
    // a backup that failed to be taken stays out, whatever its error says
    const failed = { ...marked, error: 'failure uploading data (disk full)' };
    expect(neighbourBackup(catalogOf(b08, failed, b0A), b08.backup_id, 1)).toBe(b0A);
  });

  it('protects other timelines holding backups, lower timelines without backups are deleted, higher never', () => {
    const t1 = backup('20260101T000000', { begin_wal: W(2, 1), end_wal: W(2, 1), timeline: 1 });
    const t2 = backup('20260102T000000', { begin_wal: W(5, 2), end_wal: W(5, 2), timeline: 2 });
    const t3 = backup('20260103T000000', { begin_wal: W(8, 3), end_wal: W(8, 3), timeline: 3 });
    const wals = walEntries([W(1, 1), W(2, 1), W(3, 1), '00000002.history', W(4, 2), W(5, 2), W(6, 2), '00000003.history', W(7, 3), W(8, 3), W(9, 3), W(1, 4)]);
    // Deleting t2: next is t3 on timeline 3; t1's timeline 1 is protected, and so is t2's own
    // timeline (barman-cloud quirk: the deleted backup is still in the catalog it compares with).
    const d = decideWalCleanup({ deleted: t2, backups: catalogOf(t1, t2, t3), keepTarget: () => null, fromRetentionPolicy: true });
    expect(d.allowed).toBe(false); // t1 is older and not kept
    const d2 = decideWalCleanup({ deleted: t1, backups: catalogOf(t1, t2, t3), keepTarget: () => null, fromRetentionPolicy: true });
    expect(d2.removeUntil).toBe(t2);
    expect([...d2.protectedTimelines].sort()).toEqual([1, 3]);
    expect(deletableWals(d2, wals).map((w) => w.name)).toEqual([W(4, 2)]);
    // Once t1 is gone, deleting t2 deletes what is below t3's begin_wal on timelines without backups.
    const rest = catalogOf(t2, t3);
    const d3 = decideWalCleanup({ deleted: t2, backups: rest, keepTarget: () => null, fromRetentionPolicy: true });
    expect([...d3.protectedTimelines]).toEqual([2]);
    expect(deletableWals(d3, wals).map((w) => w.name)).toEqual([W(1, 1), W(2, 1), W(3, 1), W(7, 3)]);
  });

  it('deletes whole hash directories below remove_until, except protected ones', () => {
    const s = backup('20260101T000000', { begin_wal: W(3, 1, 2), end_wal: W(5, 1, 2) });
    const del = backup('20260102T000000', { begin_wal: W(1, 1, 4), end_wal: W(1, 1, 4) });
    const next = backup('20260103T000000', { begin_wal: W(1, 1, 7), end_wal: W(1, 1, 7) });
    const keep2 = (id: string) => (id === s.backup_id ? 'standalone' : null);
    const d = decideWalCleanup({ deleted: del, backups: catalogOf(s, del, next), keepTarget: keep2, fromRetentionPolicy: true });
    const dirs = ['0000000100000000', '0000000100000001', '0000000100000002', '0000000100000006', '0000000100000007', '0000000100000008',
      '0000000200000000', 'garbage', '00000001000000'].map((x) => `p/srv/wals/${x}/`);
    const plan = deletablePrefixes(d, dirs);
    expect(plan.prefixes).toEqual(['p/srv/wals/0000000100000000/', 'p/srv/wals/0000000100000001/', 'p/srv/wals/0000000100000006/']);
    expect(plan.malformed).toEqual(['p/srv/wals/garbage/', 'p/srv/wals/00000001000000/']);
    // WALs under a deleted prefix are not listed again; the rest follows the per-name rules.
    const wals = walEntries([W(1, 1, 0), W(2, 1, 2), W(4, 1, 2), W(9, 1, 2), W(0, 1, 7)]);
    expect(deletableWals(d, wals, plan.prefixes).map((w) => w.name)).toEqual([W(2, 1, 2), W(9, 1, 2), W(0, 1, 7)]);
  });

  it('refuses the cleanup instead of guessing when remove_until has no begin_wal', () => {
    const lone = backup('20260101T000000', { status: 'FAILED', begin_wal: null });
    expect(decideWalCleanup({ deleted: lone, backups: catalogOf(lone), keepTarget: () => null, fromRetentionPolicy: false }).allowed).toBe(false);
  });

  it('compares names as strings, .partial like its segment, history files never', () => {
    const until = backup('20260102T000000', { begin_wal: W(5) });
    const gone = backup('20260101T000000', { begin_wal: W(1) });
    const d = decideWalCleanup({ deleted: gone, backups: catalogOf(gone, until), keepTarget: () => null, fromRetentionPolicy: false });
    const wals = walEntries([`${W(4)}.partial`, `${W(5)}.partial`, '00000001.history', `${W(4)}.0000ABCD.backup`]);
    expect(deletableWals(d, wals).map((w) => w.name)).toEqual([`${W(4)}.0000ABCD.backup`, `${W(4)}.partial`]);
  });
});

describe('WalListing (the cached WAL listing)', () => {
  it('answers below(limit, skipDirs) like a plain filter, through removals and compactions', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const prefix = 'p/srv/wals/';
    for (let round = 0; round < 20; round++) {
      const entries: WalEntry[] = [];
      for (let i = 0; i < 3000; i++) {
        const tli = 1 + Math.floor(rand() * 2);
        const name = W(Math.floor(rand() * 256), tli, Math.floor(rand() * 12));
        const shown = rand() < 0.05 ? name.toLowerCase() : name;
        const dir = shown.slice(0, 16).toUpperCase();
        const key = rand() < 0.02 ? `${prefix}${dir}/sub/${shown}` : rand() < 0.02 ? `${prefix}${tli.toString(16).padStart(8, '0')}.history` : `${prefix}${dir}/${shown}`;
        entries.push({ name: key.endsWith('.history') ? key.slice(prefix.length) : shown, key });
      }
      const listing = new WalListing(prefix, entries);
      const alive = new Map<string, WalEntry>();
      for (const e of entries) alive.set(e.name, e);
      for (let step = 0; step < 30; step++) {
        const limit = W(Math.floor(rand() * 256), 1 + Math.floor(rand() * 2), Math.floor(rand() * 12));
        const skip = new Set<string>();
        for (let k = 0; k < 3; k++) skip.add(`${prefix}${W(0, 1 + Math.floor(rand() * 2), Math.floor(rand() * 12)).slice(0, 16)}/`);
        const expected = [...alive.values()].filter((e) => e.name < limit && ![...skip].some((d) => e.key.startsWith(d)))
          .sort((a, b) => (a.name < b.name ? -1 : 1));
        expect(listing.below(limit, skip)).toEqual(expected);
        // remove a few, or a whole directory
        for (const e of [...alive.values()].filter(() => rand() < 0.2)) {
          listing.remove(e);
          alive.delete(e.name);
        }
        if (rand() < 0.3) {
          const d = [...skip][0]!;
          listing.removeUnder(d);
          for (const [n, e] of alive) if (e.key.startsWith(d)) alive.delete(n);
        }
        expect(listing.size).toBe(alive.size);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('backup archive files (docs/format.md#layout, #delete-backup)', () => {
  const prefix = 'p/srv/base/20260101T000000/';
  const obj = (name: string, size = 1) => ({ key: prefix + name, size });
  const info = backup('20260101T000000', { tablespaces: [{ name: 'b', oid: 16385, location: '/b' }, { name: 'a', oid: 16384, location: '/a' }] });

  it('orders data, then tablespaces by OID, main file then parts, and skips what is not an archive', () => {
    const objects = ['16384.tar.gz', '16384_0001.tar.gz', '163840.tar', '16385.tar.gz', 'backup.info', 'data.tar.gz', 'data_0002.tar.gz',
      'data_0001.tar.gz', 'data.txt', 'datafile.tar', 'data_0003.tar.rar'].sort().map((n) => obj(n));
    const { files, warnings } = backupArchiveFiles(objects, prefix, info, 'srv');
    expect(files.map((f) => f.key.slice(prefix.length))).toEqual([
      'data.tar.gz', 'data_0001.tar.gz', 'data_0002.tar.gz', '16384.tar.gz', '16384_0001.tar.gz', '16385.tar.gz',
    ]);
    expect(warnings).toEqual(['Skipping unknown extension: txt', 'Skipping unknown extension: tar.rar']);
  });

  it('warns about a missing main file and carries on', () => {
    const { files, warnings } = backupArchiveFiles([obj('16384.tar')], prefix, info, 'srv');
    expect(files.map((f) => f.key)).toEqual([`${prefix}16384.tar`]);
    expect(warnings).toEqual([`Missing file ${prefix}data.* for server srv`, `Missing file ${prefix}16385.* for server srv`]);
  });

  it('prints lists as Python does', () => {
    expect(pyListRepr([])).toBe('[]');
    expect(pyListRepr(['a', "b'c"])).toBe(`['a', "b'c"]`);
  });

  it('formats the summary line and JSON', () => {
    const s = { backupIds: ['20260101T000000'], backupObjectsDeleted: 4, walObjectsDeleted: 1, bytesFreed: 1234, errors: 0 };
    expect(formatSummary(s, 'console')).toBe('Deleted 1 backup (4 objects) and 1 WAL object, 1234 bytes freed');
    expect(JSON.parse(formatSummary(s, 'json'))).toEqual({
      backups_deleted: 1, backup_ids: ['20260101T000000'], backup_objects_deleted: 4, wal_objects_deleted: 1, bytes_freed: 1234, errors: 0,
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('BackupDeleter on the directory store', () => {
  let root: string;
  let store: ObjectStore;
  let logs: string[];
  const layout = new ServerLayout('p', 'srv');

  const write = (key: string, body: string | Buffer) => {
    mkdirSync(dirname(join(root, key)), { recursive: true });
    writeFileSync(join(root, key), body);
  };
  const allKeys = (): string[] => {
    const out: string[] = [];
    const walk = (dir: string, rel: string) => {
      for (const e of readdirSync(dir)) {
        const p = join(dir, e);
        if (statSync(p).isDirectory()) walk(p, `${rel}${e}/`);
        else if (!e.startsWith('.')) out.push(`${rel}${e}`);
      }
    };
    walk(root, '');
    return out.sort();
  };

  /** The docs/format.md#wal-cleanup example as objects: 3 data objects per backup, WALs 01-0A and four .backup files. */
  function seed(): void {
    const ts = [{ name: 'tbs', oid: 16384, location: '/tbs' }];
    for (const [id, seg, days] of [['20260106T000000', 6, 6], ['20260108T000000', 8, 4], ['20260110T000000', 10, 2]] as const) {
      const info = backup(id, { begin_wal: W(seg), end_wal: W(seg), daysAgo: days, tablespaces: ts });
      write(layout.backupInfoKey(id), serializeBackupInfo(info));
      for (const f of ['data.tar.gz', 'data_0001.tar.gz', '16384.tar.gz']) write(`${layout.backupPrefix(id)}${f}`, `${id}/${f}`);
    }
    write(layout.annotationKey('20260106T000000', 'keep'), 'standalone');
    for (let i = 1; i <= 10; i++) write(layout.walKey(W(i)) + '.gz', 'x'.repeat(100));
    for (const i of [4, 6, 8, 10]) write(layout.walKey(`${W(i)}.00000028.backup`), 'label');
    write(layout.walKey('00000002.history'), 'history');
  }

  async function runDelete(ids: string[], fromRetentionPolicy: boolean, dryRun = false) {
    const catalog = new BackupCatalog(store, layout);
    const backups = await catalog.getBackupList();
    const keeps = new Map<string, string | null>();
    for (const id of backups.keys()) keeps.set(id, await catalog.getKeepTarget(id));
    const printed: string[] = [];
    const deleter = new BackupDeleter(store, catalog, layout, keeps, { dryRun, batchSize: 2, print: (l) => printed.push(l) });
    const summary = await deleter.deleteAll(ids, fromRetentionPolicy);
    return { summary, printed };
  }

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'bc-retention-'));
    store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    logs = [];
    setLogSink((l) => logs.push(l));
    seed();
  });
  afterEach(async () => {
    setLogSink((l) => process.stderr.write(l));
    await store.close();
    rmSync(root, { recursive: true, force: true });
  });

  const EXPECTED_GONE = [
    ...['data.tar.gz', 'data_0001.tar.gz', '16384.tar.gz', 'backup.info'].map((f) => `p/srv/base/20260108T000000/${f}`),
    ...[1, 2, 3, 4, 5, 7, 8, 9].map((i) => `${layout.walKey(W(i))}.gz`),
    layout.walKey(`${W(4)}.00000028.backup`), layout.walKey(`${W(8)}.00000028.backup`),
  ].sort();

  it('deletes exactly the docs/format.md#wal-cleanup example and prints barman\'s dry-run lines first', async () => {
    const before = allKeys();
    const sizes = new Map(before.map((k) => [k, statSync(join(root, k)).size]));
    const dry = await runDelete(['20260108T000000'], true, true);
    expect(allKeys()).toEqual(before);
    expect(dry.printed).toEqual([
      `Skipping deletion of objects ${pyListRepr(['data.tar.gz', 'data_0001.tar.gz', '16384.tar.gz', 'backup.info'].map((f) => `p/srv/base/20260108T000000/${f}`))} due to --dry-run option`,
      `Skipping deletion of objects ${pyListRepr(EXPECTED_GONE.filter((k) => k.includes('/wals/')))} due to --dry-run option`,
    ]);
    const real = await runDelete(['20260108T000000'], true);
    expect(real.printed).toEqual([]);
    expect(before.filter((k) => !allKeys().includes(k))).toEqual(EXPECTED_GONE);
    expect(real.summary).toMatchObject({
      backupIds: ['20260108T000000'], backupObjectsDeleted: 4, walObjectsDeleted: 10, errors: 0,
    });
    expect(real.summary.bytesFreed).toBe(EXPECTED_GONE.reduce((n, k) => n + sizes.get(k)!, 0));
  });

  it('a dry run, or a deletion a check refuses, leaves backup.info as it was: DONE (docs/format.md#delete-backup)', async () => {
    const infoPath = join(root, layout.backupInfoKey('20260108T000000'));
    const before = readFileSync(infoPath, 'utf8');
    expect(before).toContain('status=DONE');
    await runDelete(['20260108T000000'], false, true);
    await runDelete(['20260108T000000', '20260110T000000'], true, true);
    expect(readFileSync(infoPath, 'utf8')).toBe(before);
    // --check-object-lock refusing one object: nothing deleted, nothing rewritten
    const catalog = new BackupCatalog(store, layout);
    const locked = new BackupDeleter(store, catalog, layout, new Map(), {
      dryRun: false, batchSize: 2, print: () => {},
      checkLocks: async () => { throw new GeneralError('Deletion aborted: object is locked'); },
    });
    const summary = await locked.deleteAll(['20260108T000000'], false);
    expect(summary.failure).toBeInstanceOf(OperationError);
    expect(readFileSync(infoPath, 'utf8')).toBe(before);
    expect(allKeys()).toContain('p/srv/base/20260108T000000/data.tar.gz');
  });

  it('-r: a backup whose FAILED mark cannot be written is left whole and DONE; the others go; the run fails', async () => {
    const refused = layout.backupInfoKey('20260110T000000');
    const failing = new Proxy(store, {
      get: (target, name) => {
        if (name === 'put') {
          return async (key: string, ...rest: unknown[]) => {
            if (key === refused) throw new AccessDeniedError('PutObject refused');
            return (target.put as (...a: unknown[]) => Promise<void>).call(target, key, ...rest);
          };
        }
        const value = Reflect.get(target, name) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const before = readFileSync(join(root, refused), 'utf8');
    const catalog = new BackupCatalog(failing, layout);
    await catalog.getBackupList();
    const deleter = new BackupDeleter(failing, catalog, layout, new Map(), { dryRun: false, batchSize: 2, print: () => {} });
    const summary = await deleter.deleteAll(['20260108T000000', '20260110T000000'], true);
    expect(summary.failure).toBeInstanceOf(OperationError);
    expect((summary.failure as Error).message).toBe('Could not delete backup 20260110T000000: PutObject refused');
    expect(summary.backupIds).toEqual(['20260108T000000']);
    expect(allKeys().filter((k) => k.startsWith('p/srv/base/20260108T000000/'))).toEqual([]);
    expect(allKeys().filter((k) => k.startsWith('p/srv/base/20260110T000000/')).length).toBe(4);
    expect(readFileSync(join(root, refused), 'utf8')).toBe(before);
  });

  it('finishes a deletion interrupted after the data objects: same end state as one clean run', async () => {
    // Simulate a run killed after deleting two of the three data objects.
    rmSync(join(root, 'p/srv/base/20260108T000000/data.tar.gz'));
    rmSync(join(root, 'p/srv/base/20260108T000000/16384.tar.gz'));
    const r = await runDelete(['20260108T000000'], true);
    expect(r.summary.failure).toBeUndefined();
    expect(logs.some((l) => l.includes('WARNING: Missing file p/srv/base/20260108T000000/data.* for server srv'))).toBe(true);
    const remaining = allKeys();
    for (const k of EXPECTED_GONE) expect(remaining).not.toContain(k);
    expect(remaining).toContain(layout.walKey(W(6)) + '.gz');
    expect(remaining).toContain(layout.walKey(W(10)) + '.gz');
    expect(remaining).toContain('p/srv/wals/00000002.history');
    // A second run has nothing left to do.
    const again = await runDelete(['20260108T000000'], true);
    expect(again.summary).toMatchObject({ backupIds: [], walObjectsDeleted: 0 });
    expect(allKeys()).toEqual(remaining);
  });

  it('a bulk -r run lists base/ once for every backup\'s objects and keep annotations (and once more for keeps after its marks), and deletes data objects in full batches', async () => {
    const lists: string[] = [];
    const deletes: string[][] = [];
    const counting: ObjectStore = Object.create(store) as ObjectStore;
    counting.list = (prefix, options) => {
      lists.push(`${prefix}${options?.delimiter ? ' /' : ''}`);
      return store.list(prefix, options);
    };
    counting.deleteMany = (keys, size) => {
      deletes.push(keys);
      return store.deleteMany(keys, size);
    };
    rmSync(join(root, layout.annotationKey('20260106T000000', 'keep')));
    const catalog = new BackupCatalog(counting, layout);
    await catalog.getBackupList();
    // The keep appears after the report was made (keep targets below are from before it).
    write(layout.annotationKey('20260110T000000', 'keep'), 'full');
    const deleter = new BackupDeleter(counting, catalog, layout, new Map(), { dryRun: false, batchSize: 10, print: () => {} });
    const s = await deleter.deleteAll(['20260106T000000', '20260108T000000', '20260110T000000'], true);
    expect(s.failure).toBeUndefined();
    expect(s.backupIds).toEqual(['20260106T000000', '20260108T000000']);
    expect(logs.join('')).toContain('Skipping delete of backup 20260110T000000 for server srv: a keep request was added during this run');
    expect(existsSync(join(root, 'p/srv/base/20260110T000000/data.tar.gz'))).toBe(true);
    // No listing per backup directory: one of base/ (beside the catalog's own with the delimiter).
    expect(lists.filter((l) => l.startsWith('p/srv/base/2'))).toEqual([]);
    // The second: the look for keep annotations after the marks (docs/format.md#keep-handshake).
    expect(lists.filter((l) => l === 'p/srv/base/')).toHaveLength(2);
    // The six data objects of the two backups in two requests, before any backup.info: first the
    // data archives' first parts, then the rest (docs/format.md#delete-backup).
    const dataBatches = deletes.filter((keys) => keys.some((k) => k.includes('/base/') && !k.endsWith('backup.info')));
    expect(dataBatches).toHaveLength(2);
    expect(dataBatches[0]).toEqual(['p/srv/base/20260106T000000/data.tar.gz', 'p/srv/base/20260108T000000/data.tar.gz']);
    expect(dataBatches[1]).toHaveLength(4);
    expect(s.backupObjectsDeleted).toBe(8);
  });

  it('a failed batch of several backups\' data objects names the oldest backup with an object left', async () => {
    const failing: ObjectStore = Object.create(store) as ObjectStore;
    // Only the newer backup's objects fail, in the same request as the older one's.
    failing.deleteMany = async (keys, size) => {
      const bad = keys.filter((k) => k.includes('20260110T000000/data'));
      const r = await store.deleteMany(keys.filter((k) => !bad.includes(k)), size);
      return { deleted: r.deleted, errors: bad.map((key) => ({ key, message: 'AccessDenied: nope' })) };
    };
    const catalog = new BackupCatalog(failing, layout);
    await catalog.getBackupList();
    const deleter = new BackupDeleter(failing, catalog, layout, new Map(), { dryRun: false, batchSize: 10, print: () => {} });
    const s = await deleter.deleteAll(['20260108T000000', '20260110T000000'], true);
    expect(s).toMatchObject({ errors: 1, backupIds: [] });
    expect(logs.join('')).toContain('ERROR: Could not delete backup 20260110T000000: Error from cloud provider while deleting objects');
    expect(existsSync(join(root, 'p/srv/base/20260108T000000/backup.info'))).toBe(true);
    expect(existsSync(join(root, 'p/srv/base/20260110T000000/backup.info'))).toBe(true);
  });

  it('stops at the first backup whose data cannot be deleted, leaving its backup.info', async () => {
    const failing: ObjectStore = Object.create(store) as ObjectStore;
    failing.deleteMany = async (keys) => ({ deleted: [], errors: keys.map((key) => ({ key, message: 'AccessDenied: nope' })) });
    const catalog = new BackupCatalog(failing, layout);
    await catalog.getBackupList();
    const deleter = new BackupDeleter(failing, catalog, layout, new Map(), { dryRun: false, batchSize: 10, print: () => {} });
    const s = await deleter.deleteAll(['20260108T000000', '20260110T000000'], true);
    expect(s).toMatchObject({ errors: 1, backupIds: [] });
    expect(s.failure).toBeInstanceOf(OperationError);
    expect(logs.join('')).toContain('ERROR: Could not delete backup 20260108T000000: Error from cloud provider while deleting objects');
    expect(existsSync(join(root, 'p/srv/base/20260108T000000/backup.info'))).toBe(true);
  });
});

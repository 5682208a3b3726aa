import { describe, expect, it } from 'vitest';
import {
  GENERIC_EXCLUDE_RULES,
  PGDATA_EXCLUDE_RULES,
  PathFilter,
  buildRules,
  childMemberName,
  compileRule,
  createPathFilter,
  isPathIncluded,
  majorVersionString,
  matchRules,
  tablespaceIncludeRule,
  translatePattern,
} from '../../src/backup/exclude.ts';

const PGDATA = '/var/lib/postgresql/15/main';
const TABLESPACES = [
  { oid: 16384, location: '/srv/tbs/one', name: 'one' },
  { oid: '16390', location: `${PGDATA}/inside/tbs`, name: 'inside' },
];

describe('rule lists (docs/format.md#tar-members)', () => {
  it('PGDATA-only and generic lists are barman’s, in order', () => {
    expect(PGDATA_EXCLUDE_RULES).toEqual(['/pg_log/*', '/log/*', '/pg_xlog/*', '/pg_wal/*', '/global/pg_control']);
    expect(GENERIC_EXCLUDE_RULES).toEqual([
      'pgsql_tmp*',
      'postgresql.auto.conf.tmp',
      'current_logfiles.tmp',
      'pg_internal.init',
      'postmaster.pid',
      'postmaster.opts',
      'recovery.conf',
      'standby.signal',
      '**/[0-9]*/t[0-9]*_[0-9]*',
      'pg_dynshmem/*',
      'pg_notify/*',
      'pg_replslot/*',
      'pg_serial/*',
      'pg_stat_tmp/*',
      'pg_snapshots/*',
      'pg_subtrans/*',
    ]);
  });

  it('PGDATA rules: PGDATA list + generic list + tablespace rules', () => {
    const r = buildRules({ kind: 'pgdata', majorVersion: '15', pgdata: PGDATA, tablespaces: TABLESPACES });
    expect(r.include).toEqual([]);
    expect(r.exclude).toEqual([
      ...PGDATA_EXCLUDE_RULES,
      ...GENERIC_EXCLUDE_RULES,
      '/pg_tblspc/16384',
      '/inside/tbs',
      '/pg_tblspc/16390',
    ]);
  });

  it('a location that merely shares the PGDATA prefix is not "inside" PGDATA', () => {
    const r = buildRules({
      kind: 'pgdata',
      majorVersion: '15',
      pgdata: PGDATA,
      tablespaces: [{ oid: 1, location: `${PGDATA}2/tbs` }],
    });
    expect(r.exclude.slice(-1)).toEqual(['/pg_tblspc/1']);
  });

  it('tablespace rules: include /PG_<major>_*, exclude /* + generic', () => {
    const r = buildRules({ kind: 'tablespace', majorVersion: '15' });
    expect(r.include).toEqual(['/PG_15_*']);
    expect(r.exclude).toEqual(['/*', ...GENERIC_EXCLUDE_RULES]);
    expect(tablespaceIncludeRule('9.6')).toBe('/PG_9.6_*');
  });

  it('major version spelling', () => {
    expect(majorVersionString(150004)).toBe('15');
    expect(majorVersionString(100023)).toBe('10');
    expect(majorVersionString(170000)).toBe('17');
    expect(majorVersionString(90624)).toBe('9.6');
  });
});

describe('pattern translation', () => {
  it('* stays in one component, ** crosses /, ? is any character, the rest is literal', () => {
    expect(translatePattern('a*').test('abc')).toBe(true);
    expect(translatePattern('a*').test('ab/c')).toBe(false);
    expect(translatePattern('a**').test('ab/c')).toBe(true);
    expect(translatePattern('a?c').test('a/c')).toBe(true);
    expect(translatePattern('a.c').test('abc')).toBe(false);
    expect(translatePattern('a+(b)').test('a+(b)')).toBe(true);
    expect(translatePattern('x').test('ax')).toBe(false); // anchored both ends
  });

  it('[...] classes, negation, unterminated bracket', () => {
    expect(translatePattern('[0-9]*').test('123')).toBe(true);
    expect(translatePattern('[0-9]*').test('a12')).toBe(false);
    expect(translatePattern('[!0-9]x').test('ax')).toBe(true);
    expect(translatePattern('[!0-9]x').test('1x')).toBe(false);
    expect(translatePattern('[!0-9]x').test('/x')).toBe(false);
    expect(translatePattern('[]a]').test(']')).toBe(true);
    expect(translatePattern('a[b').test('a[b')).toBe(true);
    // barman's own translator: brackets are literal
    expect(translatePattern('[0-9]*', false).test('123')).toBe(false);
    expect(translatePattern('[0-9]*', false).test('[0-9]x')).toBe(true);
  });

  it('anchored rules match at the root only, unanchored at any depth, trailing / = directories', () => {
    const anchored = [compileRule('/log/*')];
    expect(matchRules(anchored, 'log/x', false)).toBe(true);
    expect(matchRules(anchored, 'base/log/x', false)).toBe(false);
    const deep = [compileRule('pg_internal.init')];
    expect(matchRules(deep, './pg_internal.init', false)).toBe(true);
    expect(matchRules(deep, 'base/1/pg_internal.init', false)).toBe(true);
    expect(matchRules(deep, 'base/1/pg_internal.init.x', false)).toBe(false);
    const dirOnly = [compileRule('foo/')];
    expect(matchRules(dirOnly, 'a/foo', true)).toBe(true);
    expect(matchRules(dirOnly, 'a/foo', false)).toBe(false);
  });

  it('member names in barman spelling', () => {
    expect(childMemberName('.', 'base', true)).toBe('base');
    expect(childMemberName('.', 'PG_VERSION', false)).toBe('./PG_VERSION');
    expect(childMemberName('base', '1', true)).toBe('base/1');
    expect(childMemberName('base/1', '1259', false)).toBe('base/1/1259');
  });
});

type Row = [path: string, isDir: boolean, included: boolean];

const PGDATA_TABLE: Row[] = [
  ['.', true, true],
  ['PG_VERSION', false, true],
  ['postgresql.conf', false, true],
  ['postgresql.auto.conf', false, true],
  ['pg_hba.conf', false, true],
  // PGDATA-only rules
  ['pg_wal', true, true],
  ['pg_wal/000000010000000000000001', false, false],
  ['pg_wal/000000010000000000000001.partial', false, false],
  ['pg_wal/archive_status', true, false],
  ['pg_wal/archive_status/000000010000000000000001.ready', false, false],
  ['pg_wal/summaries', true, false],
  ['pg_wal/summaries/x.summary', false, false],
  ['pg_xlog', true, true],
  ['pg_xlog/000000010000000000000001', false, false],
  ['pg_xlog/archive_status', true, false],
  ['pg_log', true, true],
  ['pg_log/postgresql-Mon.log', false, false],
  ['log', true, true],
  ['log/postgresql.log', false, false],
  ['log/2024', true, false],
  ['log/2024/01.log', false, false],
  ['base/log', true, true], // anchored: only at the root
  ['base/log/x', false, true],
  ['global', true, true],
  ['global/pg_control', false, false],
  ['global/1262', false, true],
  ['global/pg_filenode.map', false, true],
  // tablespaces
  ['pg_tblspc', true, true],
  ['pg_tblspc/16384', false, false],
  ['pg_tblspc/16390', false, false],
  ['pg_tblspc/99999', false, true],
  ['inside', true, true],
  ['inside/tbs', true, false],
  ['inside/tbs/PG_15_202209061', true, false],
  ['inside/tbs/PG_15_202209061/5/1', false, false],
  ['inside/other', false, true],
  // generic files, at any depth
  ['postmaster.pid', false, false],
  ['postmaster.opts', false, false],
  ['base/1/postmaster.pid', false, false],
  ['postgresql.auto.conf.tmp', false, false],
  ['current_logfiles.tmp', false, false],
  ['current_logfiles', false, true],
  ['pg_internal.init', false, false],
  ['global/pg_internal.init', false, false],
  ['base/16384/pg_internal.init', false, false],
  ['recovery.conf', false, false],
  ['standby.signal', false, false],
  ['recovery.signal', false, true],
  ['backup_label', false, true],
  ['backup_label.old', false, true],
  ['tablespace_map', false, true],
  // pgsql_tmp*, at any depth, files and directories
  ['pgsql_tmp', true, false],
  ['pgsql_tmp12.0', false, false],
  ['base/pgsql_tmp', true, false],
  ['base/pgsql_tmp/pgsql_tmp1234.0', false, false],
  ['base/pgsql_tmp/pgsql_tmp1234.0.fileset', true, false],
  ['base/pgsql_tmp/pgsql_tmp1234.0.fileset/i1of2.p0.0', false, false],
  ['base/16384/pgsql_tmp_leftover', false, false],
  ['base/16384/my_pgsql_tmp', false, true],
  // temporary relations
  ['base/1/t3_1234', false, false],
  ['base/1/t3_1234_fsm', false, false],
  ['base/1/t3_1234_vm', false, false],
  ['base/1/t3_1234.1', false, false],
  ['base/16384/t12_16385', false, false],
  ['base/1/1234', false, true],
  ['base/1/1234_fsm', false, true],
  ['base/1/1234.1', false, true],
  ['base/1/t3', false, true],
  ['base/1/tx_1', false, true],
  ['base/abc/t3_1', false, true],
  ['global/t3_1', false, true],
  // contents of these directories are excluded, the directories kept
  ...['pg_dynshmem', 'pg_notify', 'pg_replslot', 'pg_serial', 'pg_stat_tmp', 'pg_snapshots', 'pg_subtrans'].flatMap(
    (d): Row[] => [
      [d, true, true],
      [`${d}/0000`, false, false],
      [`${d}/sub`, true, false],
      [`${d}/sub/state`, false, false],
    ],
  ),
  ['pg_replslot/slot1', true, false],
  ['pg_replslot/slot1/state', false, false],
  // kept
  ['pg_stat', true, true],
  ['pg_stat/pgstat.stat', false, true],
  ['pg_logical', true, true],
  ['pg_logical/snapshots/0-1.snap', false, true],
  ['pg_xact/0000', false, true],
  ['pg_multixact/offsets/0000', false, true],
  ['pg_commit_ts', true, true],
  ['pg_twophase', true, true],
  ['base', true, true],
  ['base/1', true, true],
  ['base/1/1259', false, true],
  ['base/1/PG_VERSION', false, true],
];

describe('PGDATA decisions', () => {
  const filter = createPathFilter({ kind: 'pgdata', majorVersion: '15', pgdata: PGDATA, tablespaces: TABLESPACES });
  it.each(PGDATA_TABLE)('%s (dir=%s) → %s', (path, isDir, included) => {
    expect(isPathIncluded(filter, path, isDir)).toBe(included);
  });

  it('decide(): excluded directories are pruned, "contents of" rules keep the directory', () => {
    expect(filter.decide('pg_wal', true)).toEqual({ include: true, descend: true });
    expect(filter.decide('pg_wal/archive_status', true)).toEqual({ include: false, descend: false });
    // The default WAL spool (src/wal/spool.ts) never travels into a base backup.
    expect(filter.decide('pg_wal/.barman-cloud-spool-26', true)).toEqual({ include: false, descend: false });
    expect(isPathIncluded(filter, 'pg_wal/.barman-cloud-spool-26/0123456789abcdef/restore/000000010000000000000002', false)).toBe(false);
    expect(filter.decide('pg_replslot', true)).toEqual({ include: true, descend: true });
    expect(filter.decide('pg_replslot/s', true)).toEqual({ include: false, descend: false });
    expect(filter.decide('./postmaster.pid', false)).toEqual({ include: false, descend: false });
    expect(filter.decide('./PG_VERSION', false)).toEqual({ include: true, descend: false });
  });

  it('barman literal brackets: the temp-relation rule only matches "[0-9]" literally', () => {
    const literal = createPathFilter({ kind: 'pgdata', majorVersion: '15', bracketClasses: false });
    expect(isPathIncluded(literal, 'base/1/t3_1234', false)).toBe(true);
    expect(isPathIncluded(literal, 'base/[0-9]/t[0-9]_[0-9]', false)).toBe(false);
  });

  it('descendExcluded reproduces os.walk visiting below excluded directories', () => {
    const walkAll = createPathFilter({ kind: 'pgdata', majorVersion: '15', descendExcluded: true });
    expect(isPathIncluded(walkAll, 'pg_wal/archive_status', true)).toBe(false);
    expect(isPathIncluded(walkAll, 'pg_wal/archive_status/x.ready', false)).toBe(false);
    // a directory two levels below an excluded one is matched on its own
    expect(isPathIncluded(walkAll, 'log/2024/01', true)).toBe(true);
    expect(isPathIncluded(walkAll, 'log/2024/01/x.log', false)).toBe(true);
  });
});

const TABLESPACE_TABLE: Row[] = [
  ['.', true, false],
  ['README', false, false],
  ['PG_15_202209061', true, true],
  ['PG_15_202209061/16384', true, true],
  ['PG_15_202209061/16384/16385', false, true],
  ['PG_15_202209061/16384/16385_fsm', false, true],
  ['PG_15_202209061/16384/16385.1', false, true],
  ['PG_15_202209061/16384/t3_16400', false, false],
  ['PG_15_202209061/16384/pg_internal.init', false, false],
  ['PG_15_202209061/pgsql_tmp', true, false],
  ['PG_15_202209061/pgsql_tmp/pgsql_tmp77.1', false, false],
  ['PG_15_202209061/16384/postmaster.pid', false, false],
  ['PG_16_202307071', true, false],
  ['PG_16_202307071/16384', true, false],
  ['PG_16_202307071/16384/16385', false, false],
  ['PG_15', true, false],
  ['PG_150_1', true, false],
  ['other', true, false],
  ['other/x', false, false],
];

describe('tablespace decisions', () => {
  const filter = createPathFilter({ kind: 'tablespace', majorVersion: '15' });
  it.each(TABLESPACE_TABLE)('%s (dir=%s) → %s', (path, isDir, included) => {
    expect(isPathIncluded(filter, path, isDir)).toBe(included);
  });

  it('the root is not stored but walked', () => {
    expect(filter.decide('.', true)).toEqual({ include: false, descend: true });
  });

  it('9.6 spelling: the dot is literal', () => {
    const f96 = createPathFilter({ kind: 'tablespace', majorVersion: '9.6' });
    expect(isPathIncluded(f96, 'PG_9.6_201608131', true)).toBe(true);
    expect(isPathIncluded(f96, 'PG_9x6_201608131', true)).toBe(false);
  });

  it('include rules win over exclude rules', () => {
    const f = new PathFilter({ include: ['/keep*'], exclude: ['/*'] });
    expect(f.allowed('keepme', true)).toBe(true);
    expect(f.allowed('other', true)).toBe(false);
    expect(f.allowed('./keepme', false)).toBe(true); // unmatched by both: a file directly at the root
  });
});

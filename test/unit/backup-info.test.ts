// backup.info codec and the Python-literal reader/writer behind it (docs/format.md#backup-info), checked byte for byte
// against the real files of docs/format.md#backup-info-fields and against Python's repr() rules.
import { describe, it, expect } from 'vitest';
import {
  PyBytes, PyFloat, PySet, PyTuple, floatRepr, parsePyLiteral, pyFloat, pyJsonDumps, pyRepr, strRepr, type PyValue,
} from '../../src/catalog/python-literal.ts';
import {
  BACKUP_INFO_FIELDS, BackupInfoParseError, DELETION_ERROR, FIELD_NAMES, UnknownBackupInfoField, ctime, emptyBackupInfoFields, isInterruptedDeletion, isoformat,
  markDeletionStarted,
  newBackupInfo, normalizeTimestamp, parseBackupInfo, parseTimestamp, pyDatetimeStr, serializeBackupInfo, strftimeSeconds,
  timestampFromDate, timestampToDate,
} from '../../src/catalog/backup-info.ts';
import { EXIT } from '../../src/errors.ts';
import { HEAD_DONE, HEAD_FAILED } from '../fixtures/backup-info.ts';

const NEWER_KEYS = ['children_backup_ids', 'cluster_size', 'data_checksums', 'encryption', 'parent_backup_id', 'summarize_wal'];
// The 3.4 file for the same backup: the same lines minus the six newer keys (docs/format.md#backup-info-fields).
const V34_DONE = HEAD_DONE.split('\n').filter((l) => !NEWER_KEYS.some((k) => l.startsWith(`${k}=`))).join('\n');

describe('Python repr() writer', () => {
  it.each([
    ['plain', "'plain'"],
    ["it's", `"it's"`],
    [`say "hi"`, `'say "hi"'`],
    [`both ' and "`, `'both \\' and "'`],
    ['back\\slash', "'back\\\\slash'"],
    ['a\nb\rc\td', "'a\\nb\\rc\\td'"],
    ['\x00\x1f\x7f', "'\\x00\\x1f\\x7f'"],
    ['\x80\xa0\xad', "'\\x80\\xa0\\xad'"],
    ['é日本🐘', "'é日本🐘'"],
    ['\u2028\u200b\ufeff', "'\\u2028\\u200b\\ufeff'"],
    ['\u{e0001}', "'\\U000e0001'"],
    ['', "''"],
  ])('str %j', (s, expected) => expect(strRepr(s)).toBe(expected));

  it.each([
    [44.262411, '44.262411'],
    [0, '0.0'],
    [-0, '-0.0'],
    [1e-5, '1e-05'],
    [0.0001, '0.0001'],
    [1.5e-7, '1.5e-07'],
    [1e16, '1e+16'],
    [1e15, '1000000000000000.0'],
    [123.0, '123.0'],
    [0.1, '0.1'],
    [2.5, '2.5'],
    [1 / 3, '0.3333333333333333'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
    [5e-324, '5e-324'],
    [-12345.678, '-12345.678'],
    [Infinity, 'inf'],
    [NaN, 'nan'],
  ])('float %d', (x, expected) => expect(floatRepr(x)).toBe(expected));

  it('writes ints, None, booleans and containers', () => {
    expect(pyRepr(0)).toBe('0');
    expect(pyRepr(-42)).toBe('-42');
    expect(pyRepr(12345678901234567890n)).toBe('12345678901234567890');
    expect(pyRepr(null)).toBe('None');
    expect(pyRepr(true)).toBe('True');
    expect(pyRepr(false)).toBe('False');
    expect(pyRepr(pyFloat(1))).toBe('1.0');
    expect(pyRepr(pyFloat(0.5))).toBe('0.5');
    expect(pyRepr([])).toBe('[]');
    expect(pyRepr(['a', 1])).toBe("['a', 1]");
    expect(pyRepr(new PyTuple([]))).toBe('()');
    expect(pyRepr(new PyTuple(['a']))).toBe("('a',)");
    expect(pyRepr(new PyTuple(['tbs1', 16384, '/srv/tbs1']))).toBe("('tbs1', 16384, '/srv/tbs1')");
    expect(pyRepr(new Map())).toBe('{}');
    expect(pyRepr(new Map<PyValue, PyValue>([['b', 1], ['a', new Map([['x', 0.5]])]]))).toBe("{'b': 1, 'a': {'x': 0.5}}");
    expect(pyRepr(new PySet([]))).toBe('set()');
    expect(pyRepr(new PySet([1, 2]))).toBe('{1, 2}');
    expect(pyRepr(new PyBytes(Uint8Array.from([0x61, 0x27, 0x0a, 0xff])))).toBe(`b"a'\\n\\xff"`);
  });
});

describe('Python literal reader (ast.literal_eval)', () => {
  it('reads strings in every spelling', () => {
    expect(parsePyLiteral(`'a\\'b'`)).toBe("a'b");
    expect(parsePyLiteral(`"it's"`)).toBe("it's");
    expect(parsePyLiteral(`u'old'`)).toBe('old');
    expect(parsePyLiteral(`U"old"`)).toBe('old');
    expect(parsePyLiteral(`r'a\\nb'`)).toBe('a\\nb');
    expect(parsePyLiteral(`'''tri'ple\nline'''`)).toBe("tri'ple\nline");
    expect(parsePyLiteral(`"""x"y"""`)).toBe('x"y');
    expect(parsePyLiteral(`'\\x41\\u00e9\\U0001F418\\101\\0\\n\\t\\r\\a\\b\\f\\v\\\\'`)).toBe('Aé🐘A\0\n\t\r\x07\b\f\v\\');
    expect(parsePyLiteral(`'\\q'`)).toBe('\\q');
    expect(parsePyLiteral(`'a' "b" u'c'`)).toBe('abc');
    expect(parsePyLiteral(`'é日本'`)).toBe('é日本');
    const b = parsePyLiteral(`b'a\\x00\\n'`);
    expect(b).toBeInstanceOf(PyBytes);
    expect([...(b as PyBytes).bytes]).toEqual([0x61, 0, 0x0a]);
  });

  it('reads numbers, constants and containers', () => {
    expect(parsePyLiteral('0')).toBe(0);
    expect(parsePyLiteral('-40')).toBe(-40);
    expect(parsePyLiteral('+7')).toBe(7);
    expect(parsePyLiteral('1_000')).toBe(1000);
    expect(parsePyLiteral('0x1F')).toBe(31);
    expect(parsePyLiteral('0o17')).toBe(15);
    expect(parsePyLiteral('0b101')).toBe(5);
    expect(parsePyLiteral('12345678901234567890')).toBe(12345678901234567890n);
    expect(parsePyLiteral('44.262411')).toBe(44.262411);
    expect(parsePyLiteral('-0.5')).toBe(-0.5);
    expect(parsePyLiteral('.5')).toBe(0.5);
    expect(parsePyLiteral('1e-05')).toBe(1e-5);
    expect(parsePyLiteral('1.0')).toEqual(new PyFloat(1));
    expect(parsePyLiteral('None')).toBe(null);
    expect(parsePyLiteral('True')).toBe(true);
    expect(parsePyLiteral('False')).toBe(false);
    expect(parsePyLiteral('[1, [2, (3,)], ]')).toEqual([1, [2, new PyTuple([3])]]);
    expect(parsePyLiteral('(1)')).toBe(1);
    expect(parsePyLiteral('()')).toEqual(new PyTuple([]));
    expect(parsePyLiteral('(1, 2,)')).toEqual(new PyTuple([1, 2]));
    expect(parsePyLiteral('1, 2')).toEqual(new PyTuple([1, 2]));
    expect(parsePyLiteral('{1, 2}')).toEqual(new PySet([1, 2]));
    expect(parsePyLiteral('set()')).toEqual(new PySet([]));
    const d = parsePyLiteral(`{'b': 1, 'a': {'x': [None]}, 3: 'three'}`) as Map<PyValue, PyValue>;
    expect([...d.keys()]).toEqual(['b', 'a', 3]);
    expect(d.get('a')).toEqual(new Map([['x', [null]]]));
    expect(parsePyLiteral(' \t[\n 1 ,\n 2 ] ')).toEqual([1, 2]);
  });

  it('rejects what is not a literal', () => {
    for (const bad of ['', 'foo', "'open", '[1, 2', '{1: }', '1 + 2', 'os.system("x")', '1j', "f'x'", '(1 2)', "b'é'"]) {
      expect(() => parsePyLiteral(bad), bad).toThrow();
    }
  });

  it('round-trips repr() output exactly', () => {
    for (const text of [
      "{'total_time': 44.262411, 'number_of_workers': 2, 'analysis_time': 0, 'analysis_time_per_item': {'16384': 0, 'data': 0}, 'copy_time': 1.0, 'x': 1e-05}",
      "[('tbs1', 16384, '/srv/tbs1'), ('té', 16385, \"/srv/it's\")]",
      "('a',)", "{'k': (1, [2.5, None, True]), 2: b'\\x00'}", "-0.0", "[1e+16, inf]".replace('inf', '1.5'),
    ]) {
      expect(pyRepr(parsePyLiteral(text))).toBe(text);
    }
  });
});

describe('Python json.dumps', () => {
  it('uses Python separators, float repr and ensure_ascii', () => {
    const v = parsePyLiteral(`{'a': [1, 2.0, 0.078708, None, True], 'é': 'snow☃\\n"\\x7f', 16384: (1,), None: 1}`);
    expect(pyJsonDumps(v)).toBe('{"a": [1, 2.0, 0.078708, null, true], "\\u00e9": "snow\\u2603\\n\\"\\u007f", "16384": [1], "null": 1}');
    expect(pyJsonDumps('🐘')).toBe('"\\ud83d\\udc18"');
    expect(() => pyJsonDumps(new PySet([]))).toThrow(/not JSON serializable/);
  });
});

describe('backup.info reader and writer (docs/format.md#backup-info)', () => {
  it('reads the HEAD DONE example and writes it back byte for byte', () => {
    const info = parseBackupInfo(HEAD_DONE);
    expect(info.status).toBe('DONE');
    expect(info.backup_name).toBe('firsthead');
    expect(info.begin_offset).toBe(40);
    expect(info.systemid).toBe('7713454245083309119');
    expect(info.timeline).toBe(1);
    expect(info.version).toBe(150018);
    expect(info.tablespaces).toEqual([{ name: 'tbs1', oid: 16384, location: '/srv/tbs1' }]);
    expect(info.backup_label).toMatch(/^START WAL LOCATION: 0\/6000028 \(file 000000010000000000000006\)\nCHECKPOINT/);
    expect(info.copy_stats?.get('copy_time')).toBe(0.113994);
    expect(info.copy_stats?.get('analysis_time')).toBe(0);
    expect(info.children_backup_ids).toBeNull();
    expect(info.mode).toBeNull();
    expect(info.begin_time).toBe('2026-11-29 05:04:19.003382+00:00');
    expect(serializeBackupInfo(info)).toBe(HEAD_DONE);
    expect(serializeBackupInfo(parseBackupInfo(Buffer.from(HEAD_DONE)))).toBe(HEAD_DONE);
  });

  it('writes the FAILED example back byte for byte (backup_name left out when null)', () => {
    const info = parseBackupInfo(HEAD_FAILED);
    expect(info.status).toBe('FAILED');
    expect(info.backup_name).toBeNull();
    expect(info.end_time).toBeNull();
    expect(serializeBackupInfo(info)).toBe(HEAD_FAILED);
  });

  it('reads a 3.4 file (newer keys default to null) and writes it back in 3.4 mode', () => {
    expect(V34_DONE.split('\n')).toHaveLength(HEAD_DONE.split('\n').length - 6);
    const info = parseBackupInfo(V34_DONE);
    for (const k of NEWER_KEYS) expect(info[k as keyof typeof info]).toBeNull();
    expect(serializeBackupInfo(info, { compat: '3.4' })).toBe(V34_DONE);
    // In HEAD mode the six keys come back as None.
    const head = serializeBackupInfo(info);
    expect(head).toContain('\nchildren_backup_ids=None\ncluster_size=None\n');
    expect(serializeBackupInfo(parseBackupInfo(HEAD_DONE), { compat: '3.4' })).toBe(V34_DONE);
  });

  it('keeps the field table sorted and complete', () => {
    expect(FIELD_NAMES).toEqual([...FIELD_NAMES].sort());
    expect(FIELD_NAMES).toHaveLength(35);
    expect(FIELD_NAMES.filter((f) => !BACKUP_INFO_FIELDS[f].in34).sort()).toEqual(NEWER_KEYS);
    const empty = emptyBackupInfoFields();
    expect(empty.status).toBe('EMPTY');
    expect(empty.xlog_segment_size).toBe(16777216);
  });

  it('follows the reader rules: blanks, comments, first "=", stripping, None', () => {
    const info = parseBackupInfo('# a comment\n\n   \nstatus = DONE \r\nerror=a=b\nbegin_offset= 4_0\nserver_name=None\nsnapshots_info=None');
    expect(info.status).toBe('DONE');
    expect(info.error).toBe('a=b');
    expect(info.begin_offset).toBe(40);
    expect(info.server_name).toBeNull();
    expect(info.snapshots_info).toBeNull();
    // barman's slots are accepted and not written back
    expect(() => parseBackupInfo('backup_id=x\n')).not.toThrow();
  });

  it('rejects unreadable content with BackupInfoParseError', () => {
    expect(() => parseBackupInfo('status=DONE\nnot a key value line\n')).toThrow(BackupInfoParseError);
    expect(() => parseBackupInfo('status=DONE\nnot a key value line\n')).toThrow('invalid line not a key value line in file <UNKNOWN>');
    expect(() => parseBackupInfo('begin_offset=forty\n')).toThrow("invalid literal for int() with base 10: 'forty'");
    expect(() => parseBackupInfo('begin_time=yesterday\n')).toThrow(BackupInfoParseError);
    expect(() => parseBackupInfo("copy_stats={'a': \n")).toThrow(BackupInfoParseError);
    expect(() => parseBackupInfo(Uint8Array.from([0x73, 0x3d, 0xff, 0x0a]))).toThrow(BackupInfoParseError);
  });

  it('raises UnknownBackupInfoField (exit 1) for a key barman does not know', () => {
    let err: unknown;
    try {
      parseBackupInfo('status=DONE\nfuture_key=1\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownBackupInfoField);
    expect((err as UnknownBackupInfoField).field).toBe('future_key');
    expect((err as UnknownBackupInfoField).exitCode).toBe(EXIT.OPERATION);
    expect((err as Error).message).toBe(
      "Unsupported field 'future_key' found in backup metadata. This indicates the backup was created with a newer version of Barman. Please upgrade to a compatible or newer version.",
    );
  });

  it('writes values like barman: empty literals as None, tuples for tablespaces, joined ids', () => {
    const info = newBackupInfo('20260101T000000', {
      status: 'DONE',
      backup_label: '',
      included_files: [],
      copy_stats: new Map(),
      tablespaces: [{ name: "it's", oid: 1, location: '/é' }],
      children_backup_ids: ['a', 'b'],
      snapshots_info: null,
      backup_name: null,
      begin_time: '2026-01-01T00:00:00Z',
    });
    const text = serializeBackupInfo(info);
    expect(text).toContain('\nbackup_label=None\n'.slice(1));
    expect(text).toContain('\nincluded_files=None\n');
    expect(text).toContain('\ncopy_stats=None\n');
    expect(text).toContain(`\ntablespaces=[("it's", 1, '/é')]\n`);
    expect(text).toContain('\nchildren_backup_ids=a,b\n');
    expect(text).toContain('\nbegin_time=2026-01-01 00:00:00+00:00\n');
    expect(text).not.toContain('backup_name');
    expect(text).not.toContain('snapshots_info');
    expect(text.endsWith('xlog_segment_size=16777216\n')).toBe(true);
  });
});

describe('timestamps (docs/format.md#backup-info-fields, #list-json)', () => {
  it('parses barman timestamps and prints str(), isoformat(), ctime(), strftime()', () => {
    const ts = parseTimestamp('2026-11-29 05:04:19.003382+00:00');
    expect(ts).toEqual({ year: 2026, month: 11, day: 29, hour: 5, minute: 4, second: 19, microsecond: 3382, offsetSeconds: 0 });
    expect(pyDatetimeStr(ts)).toBe('2026-11-29 05:04:19.003382+00:00');
    expect(isoformat(ts)).toBe('2026-11-29T05:04:19.003382+00:00');
    expect(ctime(ts)).toBe('Sun Nov 29 05:04:19 2026');
    expect(strftimeSeconds(ts)).toBe('2026-11-29 05:04:19');
  });

  it('pads the ctime day with a space, drops zero microseconds and keeps the stored offset', () => {
    const ts = parseTimestamp('2026-11-01 23:30:00+05:30');
    expect(ctime(ts)).toBe('Sun Nov  1 23:30:00 2026');
    expect(isoformat(ts)).toBe('2026-11-01T23:30:00+05:30');
    expect(pyDatetimeStr(ts)).toBe('2026-11-01 23:30:00+05:30');
    expect(timestampToDate(ts).toISOString()).toBe('2026-11-01T18:00:00.000Z');
    expect(pyDatetimeStr(parseTimestamp('2020-10-20 11:52:31-09:30'))).toBe('2020-10-20 11:52:31-09:30');
  });

  it('normalizes the spellings dateutil accepts', () => {
    expect(normalizeTimestamp('2026-01-01T05:04:19Z')).toBe('2026-01-01 05:04:19+00:00');
    expect(normalizeTimestamp('2026-01-01 05:04:19.5+0100')).toBe('2026-01-01 05:04:19.500000+01:00');
    expect(normalizeTimestamp('2026-01-01 05:04:19.123456789+01')).toBe('2026-01-01 05:04:19.123456+01:00');
    expect(() => parseTimestamp('2026-02-30 00:00:00+00:00')).toThrow();
  });

  it('builds timestamps from instants', () => {
    const ts = timestampFromDate(new Date('2026-11-29T05:04:19.003Z'), 3600, 3382);
    expect(pyDatetimeStr(ts)).toBe('2026-11-29 06:04:19.003382+01:00');
  });
});

describe('a backup.info marked as being deleted (docs/format.md#delete-backup)', () => {
  const marked = (text: string) => markDeletionStarted(text).split('\n');
  const changed = (before: string) => {
    const old = new Set(before.split('\n'));
    return marked(before).filter((l) => !old.has(l));
  };

  it.each([['3.17', HEAD_DONE], ['3.4', V34_DONE]])('a %s file: status and error replaced in place, every other line as it was', (_, text) => {
    expect(changed(text)).toEqual([`error=${DELETION_ERROR}`, 'status=FAILED']);
    const out = marked(text);
    expect(out.filter((l) => !l.startsWith('error=') && !l.startsWith('status='))).toEqual(
      text.split('\n').filter((l) => !l.startsWith('error=') && !l.startsWith('status=')),
    );
    // still sorted (barman's writer), and the 3.4 file gains none of the newer keys 3.4 cannot read
    const keys = out.filter(Boolean).map((l) => l.slice(0, l.indexOf('=')));
    expect(keys).toEqual([...keys].sort());
    expect(keys.length).toBe(text.split('\n').filter(Boolean).length);
    const info = parseBackupInfo(out.join('\n'));
    expect(isInterruptedDeletion(info)).toBe(true);
    expect(info.begin_wal).toBe('000000010000000000000006');
  });

  it('a file without status or error lines gets both, in key order; comments stay', () => {
    expect(markDeletionStarted('# written by hand\nbegin_wal=000000010000000000000006\ntimeline=1\n')).toBe(
      `# written by hand\nbegin_wal=000000010000000000000006\nerror=${DELETION_ERROR}\nstatus=FAILED\ntimeline=1\n`,
    );
  });

  it('only our own error marks an interrupted deletion: a backup that failed to be taken is not one', () => {
    expect(isInterruptedDeletion(parseBackupInfo(HEAD_FAILED))).toBe(false);
    expect(isInterruptedDeletion(parseBackupInfo(HEAD_DONE))).toBe(false);
    expect(isInterruptedDeletion({ status: 'DONE', error: DELETION_ERROR })).toBe(false);
    expect(DELETION_ERROR).toMatch(/^failure \w[\w ]* \(.*\)$/);
  });
});

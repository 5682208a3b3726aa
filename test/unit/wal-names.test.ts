import { describe, it, expect } from 'vitest';
import { isWalName, nextSegment, isValidSegmentSize, segmentsPerLogId } from '../../src/xlog.ts';
import { ServerLayout, joinKey, hashDir } from '../../src/catalog/layout.ts';
import { parseCsvRecord, parseTags } from '../../src/cli/tags.ts';

describe('WAL names (docs/format.md#wal-names)', () => {
  it.each([
    '000000010000000000000001', '0000000100000000000000ab', '000000010000000000000001.partial',
    '000000010000000000000001.00000028.backup', '00000002.history',
  ])('accepts %s', (n) => expect(isWalName(n)).toBe(true));
  it.each(['00000001000000000000001', '000000010000000000000001.gz', 'RECOVERYXLOG', '00000002.history.gz', 'x00000002.history'])(
    'rejects %s', (n) => expect(isWalName(n)).toBe(false),
  );
});

describe('segment arithmetic with the real segment size', () => {
  it('rolls over the log id at 256 segments for 16 MiB', () => {
    expect(segmentsPerLogId(16 * 1024 * 1024)).toBe(256);
    expect(nextSegment('0000000100000000000000FE', 16 * 1024 * 1024)).toBe('0000000100000000000000FF');
    expect(nextSegment('0000000100000000000000FF', 16 * 1024 * 1024)).toBe('000000010000000100000000');
  });
  it('handles 1 MiB and 1 GiB segments', () => {
    expect(nextSegment('000000010000000000000FFF', 1 << 20)).toBe('000000010000000100000000');
    expect(nextSegment('0000000100000000000000FF', 1 << 20)).toBe('000000010000000000000100');
    expect(nextSegment('000000030000000A00000003', 1 << 30)).toBe('000000030000000B00000000');
  });
  it('validates segment sizes', () => {
    expect(isValidSegmentSize(16 << 20)).toBe(true);
    expect(isValidSegmentSize(3 << 20)).toBe(false);
    expect(isValidSegmentSize(512 << 10)).toBe(false);
  });
});

describe('bucket layout (docs/format.md#layout)', () => {
  it('joins keys like os.path.join', () => {
    expect(joinKey('', 'srv', 'wals', '')).toBe('srv/wals/');
    expect(joinKey('pfx/', 'srv')).toBe('pfx/srv');
    expect(joinKey('pfx', 'srv')).toBe('pfx/srv');
  });
  it('places segments in the upper-case hash directory and history files directly under wals/', () => {
    const l = new ServerLayout('pfx', 'srv');
    expect(l.walKey('0000000100000000000000ab')).toBe('pfx/srv/wals/0000000100000000/0000000100000000000000ab');
    expect(hashDir('0000000a0000000b00000001')).toBe('0000000A0000000B');
    expect(l.walKey('00000002.history')).toBe('pfx/srv/wals/00000002.history');
    expect(l.walKey('000000010000000000000006.00000028.backup')).toBe('pfx/srv/wals/0000000100000000/000000010000000000000006.00000028.backup');
    expect(new ServerLayout('', 'srv').walKey('00000002.history')).toBe('srv/wals/00000002.history');
  });
  it('keeps the annotation double-slash quirk', () => {
    expect(new ServerLayout('pfx/', 'srv').annotationKey('20260101T000000', 'keep')).toBe('pfx//srv/base/20260101T000000/annotations/keep');
    expect(new ServerLayout('pfx/', 'srv').backupInfoKey('20260101T000000')).toBe('pfx/srv/base/20260101T000000/backup.info');
    expect(new ServerLayout('', 'srv').annotationKey('x', 'keep')).toBe('srv/base/x/annotations/keep');
  });
});

describe('tags (docs/format.md#tags)', () => {
  it('reads --tags words as CSV and --tag pairs split on the first comma', () => {
    expect(parseCsvRecord('"a,b",c')).toEqual(['a,b', 'c']);
    expect(parseTags(['k,v', '"a,b",c'], undefined)).toEqual([['k', 'v'], ['a,b', 'c']]);
    expect(parseTags(['ignored,x'], [' k , v w '])).toEqual([['k', 'v w']]);
    expect(() => parseTags(undefined, ['k,v,w'])).toThrow();
  });
  it('rejects malformed tags', () => {
    expect(() => parseTags(['novalue'], undefined)).toThrow(/Invalid tag format/);
    expect(() => parseTags(undefined, ['aws:x,y'])).toThrow(/aws:/);
    expect(() => parseTags(undefined, ['k,v&w'])).toThrow();
    expect(() => parseTags(undefined, [`${'k'.repeat(129)},v`])).toThrow();
  });
});

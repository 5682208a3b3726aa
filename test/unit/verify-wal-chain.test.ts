// The WAL continuity rules of `verify` (src/verify/wal-chain.ts), on names computed by hand.
import { describe, it, expect } from 'vitest';
import { backupRange, indexSegments, missingRuns, parseHistoryFile, planChain, segmentNameAt } from '../../src/verify/wal-chain.ts';

const M16 = 16 * 1024 * 1024;

describe('parseHistoryFile', () => {
  it('reads the parent timeline and switch LSN of each line, skipping comments and blank lines', () => {
    const text = '1\t0/3000000\tno recovery target specified\n\n# comment\n2\t1/A0000D8\tbefore 2026-12-01 00:00:00+00\n';
    expect(parseHistoryFile(text, 3)).toEqual([
      { parent: 1, switchLsn: 0x3000000n },
      { parent: 2, switchLsn: (1n << 32n) | 0xa0000d8n },
    ]);
  });
  it('refuses a line of another shape', () => {
    expect(parseHistoryFile('1\tnot-an-lsn\treason\n', 2)).toBeNull();
  });
  it('refuses what PostgreSQL refuses: parents not increasing, or not below the file\'s own timeline', () => {
    expect(parseHistoryFile('1\t0/3000000\tx\n1\t0/4000000\tx\n', 3)).toBeNull();
    expect(parseHistoryFile('2\t0/3000000\tx\n1\t0/4000000\tx\n', 3)).toBeNull();
    expect(parseHistoryFile('1\t0/3000000\tx\n3\t0/4000000\tx\n', 3)).toBeNull();
    expect(parseHistoryFile('0\t0/3000000\tx\n', 3)).toBeNull();
    expect(parseHistoryFile('99999999999\t0/3000000\tx\n', 0xffffffff)).toBeNull();
    expect(parseHistoryFile('1\t0/3000000\tx\r\n2\t0/4000000\tx\r\n', 3)).toEqual([
      { parent: 1, switchLsn: 0x3000000n },
      { parent: 2, switchLsn: 0x4000000n },
    ]);
  });
});

describe('planChain', () => {
  it('16 MiB segments across a log boundary: 0000000100000000000000FF is followed by 000000010000000100000000', () => {
    expect(segmentNameAt(1, 0xff, M16)).toBe('0000000100000000000000FF');
    expect(segmentNameAt(1, 0x100, M16)).toBe('000000010000000100000000');
    const plan = planChain({
      timeline: 1, endWal: '0000000100000000000000FE', segmentSize: M16,
      newestByTimeline: new Map([[1, '000000010000000100000001']]), histories: new Map(),
    });
    expect(plan.ranges).toEqual([{ timeline: 1, first: 0xff, last: 0x101 }]);
  });

  it('follows two switches (1 → 2 → 4), ignoring timeline 3 that branched off 1 before the backup ended', () => {
    const plan = planChain({
      timeline: 1, endWal: '000000010000000000000005', segmentSize: M16,
      newestByTimeline: new Map([[1, '000000010000000000000009'], [2, '00000002000000000000000C'], [3, '00000003000000000000000F'], [4, '000000040000000000000010']]),
      histories: new Map([
        [2, [{ parent: 1, switchLsn: 0x8000000n }]],
        [3, [{ parent: 1, switchLsn: 0x4000000n }]],
        // switch exactly on a segment boundary: timeline 2 needs segments up to 0B
        [4, [{ parent: 1, switchLsn: 0x8000000n }, { parent: 2, switchLsn: 0xc000000n }]],
      ]),
    });
    expect(plan.targetTimeline).toBe(4);
    expect(plan.newest).toBe('000000040000000000000010');
    expect(plan.ranges).toEqual([
      { timeline: 1, first: 6, last: 7 },
      { timeline: 2, first: 8, last: 0xb },
      { timeline: 4, first: 0xc, last: 0x10 },
    ]);
  });

  it('a timeline whose history does not list the backup timeline is not followed', () => {
    const plan = planChain({
      timeline: 2, endWal: '000000020000000000000005', segmentSize: M16,
      newestByTimeline: new Map([[2, '000000020000000000000006'], [3, '000000030000000000000009']]),
      histories: new Map([[3, [{ parent: 1, switchLsn: 0x2000000n }]]]),
    });
    expect(plan).toEqual({ targetTimeline: 2, newest: '000000020000000000000006', ranges: [{ timeline: 2, first: 6, last: 6 }] });
  });
});

describe('backupRange and missingRuns', () => {
  it('collapses consecutive missing segments into runs', () => {
    const range = backupRange('000000010000000000000002', '000000010000000000000009', M16)!;
    const have = new Set(['000000010000000000000002', '000000010000000000000005', '000000010000000000000009']);
    expect(missingRuns(range, indexSegments(have, M16))).toEqual([
      { timeline: 1, first: 3, last: 4 },
      { timeline: 1, first: 6, last: 8 },
    ]);
  });
  it('walks the archived segments, not the range: a range of 2^44 segments is one run at once', () => {
    const range = { timeline: 1, first: 5, last: 2 ** 44 - 1 };
    const have = ['000000010000000000000007', '0000000100000000000000FF', '000000020000000000000006'];
    expect(missingRuns(range, indexSegments(have, M16))).toEqual([
      { timeline: 1, first: 5, last: 6 },
      { timeline: 1, first: 8, last: 0xfe },
      { timeline: 1, first: 0x100, last: 2 ** 44 - 1 },
    ]);
  });
  it('a name past the last segment of its log id stands for no segment', () => {
    // 16 MiB: 256 segments per log id, so ...00000100 is not ...0000000100000000
    const range = { timeline: 1, first: 0x100, last: 0x100 };
    expect(missingRuns(range, indexSegments(['000000010000000000000100'], M16))).toEqual([range]);
    expect(missingRuns(range, indexSegments(['000000010000000100000000'], M16))).toEqual([]);
  });
  it('an end before the beginning is not a range', () => {
    expect(backupRange('000000010000000000000009', '000000010000000000000002', M16)).toBeNull();
  });
});

// The prefetcher's download deadline (four read timeouts) with the longest --read-timeout the CLI
// keeps: Node's timers hold at most 2^31 − 1 ms and fire at once past it, which abandoned every
// download the moment it started. And a refused object is downloaded once while it is unchanged
// (docs/commands/wal-restore.md#prefetch-failures). Run on the directory store, through
// runPrefetcher itself.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { setLogSink } from '../../src/log.ts';
import { DEFAULT_RETRY, LONGEST_TIMER_MS } from '../../src/storage/config.ts';
import { FileObjectStore } from '../../src/storage/file/file.ts';
import { runPrefetcher } from '../../src/wal/async.ts';
import { RestoreSpool } from '../../src/wal/spool.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const SEGMENT = 1 << 20;
const NAMES = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '000000010000000000000004'];
const dir = mkdtempSync(join(tmpdir(), 'bc-prefetch-deadline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A 1 MiB segment whose first page is the long page header PostgreSQL writes for `name`. */
const segment = (name: string): Buffer => withLongPageHeader(Buffer.alloc(SEGMENT, name.at(-1)), name);

/** A directory store `<dir>/store<suffix>` with NAMES archived for server srv, and a spool `<dir>/spool<suffix>` that wants the first. */
function archivedWithSpool(suffix: string): { root: string; wals: string; spoolDir: string } {
  const root = join(dir, `store${suffix}`);
  const wals = join(root, 'srv', 'wals', '0000000100000000');
  mkdirSync(wals, { recursive: true });
  for (const n of NAMES) writeFileSync(join(wals, n), segment(n));
  const spoolDir = join(dir, `spool${suffix}`);
  mkdirSync(spoolDir, { mode: 0o700 });
  writeFileSync(join(spoolDir, 'want'), NAMES[0]!);
  return { root, wals, spoolDir };
}

it('keeps downloading when the deadline is past what a timer holds: every segment of the window arrives', async () => {
  const { root, spoolDir } = archivedWithSpool('');
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  const store = new FileObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
  try {
    await runPrefetcher(store, new ServerLayout('', 'srv'), new RestoreSpool(spoolDir), {
      ahead: 3, segmentSize: SEGMENT, idleMs: 1_500, missRetryMs: 200, failRetryMaxMs: 1_000, downloadDeadlineMs: 4 * LONGEST_TIMER_MS,
    });
  } finally {
    setLogSink((l) => process.stderr.write(l));
    await store.close();
  }
  expect(lines.filter((l) => / WARNING: /.test(l))).toEqual([]);
  for (const n of NAMES.slice(1)) {
    expect(existsSync(join(spoolDir, n)), n).toBe(true);
    expect(readFileSync(join(spoolDir, n)).equals(segment(n)), n).toBe(true);
  }
}, 30_000);

it('downloads a refused object once while it is unchanged, and again once it changed: then it arrives', async () => {
  const { root, wals, spoolDir } = archivedWithSpool('-refused');
  // The third segment's object holds the fourth: its page header names another segment.
  const damaged = NAMES[2]!;
  writeFileSync(join(wals, damaged), segment(NAMES[3]!));
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  const files = new FileObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
  // The directory store itself, its reads of the damaged object counted.
  let gets = 0;
  const store = Object.create(files) as FileObjectStore;
  store.get = (key, options) => {
    if (key.endsWith(damaged)) gets++;
    return files.get(key, options);
  };
  let getsWhileDamaged = -1;
  const fixed = (async () => {
    await new Promise((r) => setTimeout(r, 2_500)); // twelve retry times of 200 ms
    getsWhileDamaged = gets;
    writeFileSync(join(wals, damaged), segment(damaged)); // archived again: a new size or time
  })();
  try {
    await runPrefetcher(store, new ServerLayout('', 'srv'), new RestoreSpool(spoolDir), {
      ahead: 3, segmentSize: SEGMENT, idleMs: 4_000, missRetryMs: 200, failRetryMaxMs: 1_000, downloadDeadlineMs: 60_000,
    });
  } finally {
    setLogSink((l) => process.stderr.write(l));
    await fixed;
    await files.close();
  }
  expect(getsWhileDamaged).toBe(1);
  expect(lines.filter((l) => / WARNING: /.test(l))).toEqual([expect.stringMatching(new RegExp(`Prefetch of ${damaged} refused: .* is another segment`))]);
  for (const n of NAMES.slice(1)) expect(readFileSync(join(spoolDir, n)).equals(segment(n)), n).toBe(true);
}, 30_000);

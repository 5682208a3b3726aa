// DBAs restoring by hand see progress on a terminal; scripts see none of it (src/cli/progress.ts).
// The restore runs under util-linux `script`, which gives it a pseudo-terminal, from a directory
// store holding a hand-made backup large enough to be read for a while.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin, runProcess } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';

const BACKUP_ID = '20261129T050418';
const SERVER = 'pg';
let scratch: string;
let store: string;

/** What a terminal shows of `raw`: cursor-to-column-1 acts as a carriage return, other CSI sequences draw nothing. */
function visibleLines(raw: string): string[] {
  const text = raw.replace(/\x1b\[1G/g, '\r').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  return text.split(/\r?\n/).map((line) => line.slice(line.lastIndexOf('\r') + 1));
}

function restoreCommand(dest: string): string {
  return [process.execPath, join(import.meta.dirname, '..', '..', 'bin', 'barman-cloud-restore'), '-v', `file://${store}`, SERVER, BACKUP_ID, dest].join(' ');
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'bc-progress-'));
  store = join(scratch, 'store');
  const dir = join(store, SERVER, 'base', BACKUP_ID);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'backup.info'), handMadeDone());
  // 96 MiB in 12 files: read for long enough that the spinner draws the byte count more than once
  const members = [{ name: '.', type: 'directory' as const }, { name: './PG_VERSION', data: '15\n' }];
  for (let i = 0; i < 12; i++) members.push({ name: `./base/1/${16384 + i}`, data: String(i % 10).repeat(8 << 20) } as never);
  members.splice(2, 0, { name: './base', type: 'directory' as const }, { name: './base/1', type: 'directory' as const });
  writeFileSync(join(dir, 'data.tar'), await tarOf(members));
}, 60_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('barman-cloud-restore progress line', () => {
  it('on a terminal: bytes read of the total, and log records on lines of their own', async () => {
    const dest = join(scratch, 'tty');
    // `script`'s terminal has no size until one is set, as an interactive one has
    const command = `stty cols 120 rows 40; ${restoreCommand(dest)}`;
    // ora draws nothing under CI=true (its "interactive" test): a DBA's terminal has no CI variable
    const r = await runProcess('script', ['-qfec', command, '/dev/null'], { env: cleanEnv({ CI: undefined, TERM: 'xterm' }), timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const lines = visibleLines(r.stdout);
    expect(r.stdout).toMatch(/restoring: [\d.]+\/96\.0 MiB, [\d.]+ MiB\/s read/);
    const records = lines.filter((l) => / INFO: /.test(l));
    expect(records.length).toBeGreaterThan(0);
    // each record starts its line: never glued to the spinner's text
    for (const l of records) expect(l).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] INFO: /);
  });

  it('on a terminal of unknown width (0 columns): no spinner, and the restore ends', async () => {
    const dest = join(scratch, 'zero');
    // ora's line count divided by 0 columns and looped for ever clearing lines (no guard: timeout)
    const r = await runProcess('script', ['-qfec', restoreCommand(dest), '/dev/null'], { env: cleanEnv({ CI: undefined, TERM: 'xterm' }), timeoutMs: 30_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/restoring:/);
    expect(r.stdout).toMatch(/ INFO: /);
  });

  it('without a terminal: nothing but the log', async () => {
    const dest = join(scratch, 'pipe');
    const r = await runBin('barman-cloud-restore', [`file://${store}`, SERVER, BACKUP_ID, dest], { env: cleanEnv({ CI: undefined }), timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('');
  });
});

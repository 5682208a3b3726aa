// Spool pruning: entries last changed longer ago than the limit go, younger ones and the restore
// spool's segment-size record stay (an old record still states the archive's segment size).
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArchiveSpool, RestoreSpool } from '../../src/wal/spool.ts';

const HOUR = 3600_000;
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function entries(names: Record<string, number>): string {
  dir = mkdtempSync(join(tmpdir(), 'bc-spool-prune-'));
  const now = Date.now();
  for (const [name, ageMs] of Object.entries(names)) {
    writeFileSync(join(dir, name), 'x');
    utimesSync(join(dir, name), (now - ageMs) / 1000, (now - ageMs) / 1000);
  }
  return dir;
}

describe('spool prune', () => {
  it('the archive spool drops markers older than the limit and keeps younger ones', async () => {
    const d = entries({ '000000010000000000000001': 2 * HOUR, '000000010000000000000002': 60_000, '000000010000000000000003': 3 * HOUR });
    await new ArchiveSpool(d).prune(HOUR);
    expect(readdirSync(d)).toEqual(['000000010000000000000002']);
  });

  it('the restore spool drops old prefetched files but keeps its segment-size record', async () => {
    const names: Record<string, number> = { 'segment-size': 5 * HOUR, '000000010000000000000004': 1_000 };
    for (let i = 0; i < 40; i++) names[`0000000100000000000000${(0x10 + i).toString(16).toUpperCase()}`] = 2 * HOUR;
    const d = entries(names);
    await new RestoreSpool(d).prune(HOUR);
    expect(readdirSync(d).sort()).toEqual(['000000010000000000000004', 'segment-size']);
  });
});

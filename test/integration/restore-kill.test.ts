// A restore killed part-way leaves part of the backup in its destination; the next restore into
// it is refused before anything is read or written (exit 1), with barman's message followed by
// what to do (docs/commands/restore.md step 2), and into a fresh directory it succeeds.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBin, spawnBin, exitOf } from '../helpers/run-bin.ts';
import { treeKeys, writeTree } from '../helpers/object-tree.ts';
import { tarOf } from '../helpers/tar.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';

const ID = '20260101T000000';
const FILES = 3000;

describe('barman-cloud-restore after a killed restore, on the directory store', () => {
  let work: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'bc-restore-kill-'));
    const members = Array.from({ length: FILES }, (_, i) => ({ name: `base/1/${i}`, data: `file ${i}\n`.repeat(50) }));
    writeTree(join(work, 'store'), new Map<string, string | Buffer>([
      [`srv/base/${ID}/backup.info`, serializeBackupInfo(newBackupInfo(ID, { status: 'DONE', version: 150000, timeline: 1 }))],
      [`srv/base/${ID}/data.tar`, await tarOf(members)],
    ]));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('the next restore into the partly written destination is refused (exit 1) and says what to do; nothing in it changes', async () => {
    const dest = join(work, 'dest');
    const args = (to: string) => [`file://${join(work, 'store')}`, 'srv', ID, to];
    const child = spawnBin('barman-cloud-restore', args(dest), { stdio: ['ignore', 'ignore', 'ignore'] });
    const exit = exitOf(child);
    const poll = () => {
      if (child.exitCode !== null) return;
      if (existsSync(join(dest, 'base', '1', '10'))) child.kill('SIGKILL');
      else setImmediate(poll);
    };
    poll();
    expect(await exit).toBe('SIGKILL');
    const partial = treeKeys(dest);
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(FILES);

    const again = await runBin('barman-cloud-restore', args(dest));
    expect(again.code).toBe(1);
    const lines = again.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`ERROR: Destination ${dest} already exists and it is not empty: restore into an empty or new directory \\(a restore that was interrupted leaves part of a backup there; remove it first\\)$`));
    expect(treeKeys(dest)).toEqual(partial);

    const fresh = await runBin('barman-cloud-restore', args(join(work, 'fresh')));
    expect({ code: fresh.code }).toEqual({ code: 0 });
    expect(readdirSync(join(work, 'fresh', 'base', '1'))).toHaveLength(FILES);
  }, 120_000);
});

// restore --write-recovery-conf writes values that PostgreSQL's own configuration parser must read
// back unchanged: inside a quoted string it takes backslash escapes (`\t`, `\047`, `\'`) besides
// doubled quotes, so a quote or backslash in an argument of restore_command (a server name, a path)
// used to end the string early (PostgreSQL refused to start) or change the command. Checked with
// `postgres -C`, then the command is split by sh as PostgreSQL's restore_command would be.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';
import { segmentFor } from '../helpers/wal-segment.ts';
import { PG_BIN, asPostgres, pgTempDir, postgresAvailable, requireTool } from '../helpers/postgres.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BACKUP_ID = '20261129T050418';
const SEGMENT = '000000010000000000000006';

/** What PostgreSQL 15 does to restore_command before `sh -c` (BuildRestoreCommand): %f, %p, %r, %%; any other % stays. */
function expand(command: string, file: string, path: string): string {
  return command.replace(/%([fpr%])/g, (_, c: string) => (c === 'f' ? file : c === 'p' ? path : c === 'r' ? '000000010000000000000001' : '%'));
}

describe.skipIf(skip)('postgresql.auto.conf written by restore', () => {
  it("keeps quotes, backslashes and octal-looking text of restore_command's arguments, and the target time on its line", async () => {
    const work = pgTempDir('bc-recovery-conf-');
    const store = join(work, 'store');
    const server = "o'neil\\tab\\047x";
    const dir = join(store, server, 'base', BACKUP_ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'backup.info'), handMadeDone());
    writeFileSync(join(dir, 'data.tar'), await tarOf([
      { name: '.', type: 'directory' }, { name: './PG_VERSION', data: '15\n' }, { name: './postgresql.conf', data: '' },
    ]));
    const dest = join(work, 'pgdata');
    const r = await runBin('barman-cloud-restore', [
      '--write-recovery-conf', '--target-time', '2026-11-30 00:00:00+00\n', `file://${store}`, server, 'auto', dest,
    ], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    chmodSync(dest, 0o700);
    expect(spawnSync('chown', ['-R', 'postgres:', dest]).status).toBe(0);

    const show = (name: string) => {
      const c = asPostgres([join(PG_BIN, 'postgres'), '-D', dest, '-C', name]);
      expect(c.status, c.stderr).toBe(0);
      return c.stdout.replace(/\n$/, '');
    };
    const command = show('restore_command');
    const words = spawnSync('sh', ['-c', 'eval "set -- $1"; printf "%s\\0" "$@"', 'sh', command], { encoding: 'utf8' });
    expect(words.status, words.stderr).toBe(0);
    const args = words.stdout.split('\0').slice(0, -1);
    expect(args.slice(-4)).toEqual([`file://${store}`, server, '%f', '%p']);
    expect(show('recovery_target_time')).toBe('2026-11-30 00:00:00+00');
  }, 60_000);

  it('a store path with %p, %%, a backslash, a quote and a space: the command PostgreSQL expands restores the segment', async () => {
    const work = pgTempDir('bc-recovery-conf-');
    const store = join(work, "st 50%p %% \\ it's");
    const dir = join(store, 'srv', 'base', BACKUP_ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'backup.info'), handMadeDone());
    writeFileSync(join(dir, 'data.tar'), await tarOf([{ name: 'PG_VERSION', data: '15\n' }, { name: 'postgresql.conf', data: '' }]));
    const segment = segmentFor(SEGMENT);
    mkdirSync(join(store, 'srv', 'wals', '0000000100000000'), { recursive: true });
    writeFileSync(join(store, 'srv', 'wals', '0000000100000000', SEGMENT), segment);
    const dest = join(work, 'pgdata');
    const r = await runBin('barman-cloud-restore', ['--write-recovery-conf', store, 'srv', BACKUP_ID, dest], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    chmodSync(dest, 0o700);
    expect(spawnSync('chown', ['-R', 'postgres:', dest]).status).toBe(0);
    const c = asPostgres([join(PG_BIN, 'postgres'), '-D', dest, '-C', 'restore_command']);
    expect(c.status, c.stderr).toBe(0);

    // run as PostgreSQL would: %f and %p expanded, then `sh -c`
    const target = join(dest, 'pg_wal', 'RECOVERYXLOG');
    const w = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', expand(c.stdout.replace(/\n$/, ''), SEGMENT, target)], { env: cleanEnv() });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(w).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(target).equals(segment)).toBe(true);
  }, 60_000);
});

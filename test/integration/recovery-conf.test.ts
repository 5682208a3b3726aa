// restore --write-recovery-conf writes values that PostgreSQL's own configuration parser must read
// back unchanged: inside a quoted string it takes backslash escapes (`\t`, `\047`, `\'`) besides
// doubled quotes, so a quote or backslash in an argument of restore_command (a server name, a path)
// used to end the string early (PostgreSQL refused to start) or change the command. Checked with
// `postgres -C`, then the command is split by sh as PostgreSQL's restore_command would be.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HEAD_DONE } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';
import { PG_BIN, asPostgres, pgTempDir, postgresAvailable, requireTool } from '../helpers/postgres.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BACKUP_ID = '20261129T050418';

describe.skipIf(skip)('postgresql.auto.conf written by restore', () => {
  it("keeps quotes, backslashes and octal-looking text of restore_command's arguments, and the target time on its line", async () => {
    const work = pgTempDir('bc-recovery-conf-');
    const store = join(work, 'store');
    const server = "o'neil\\tab\\047x";
    const dir = join(store, server, 'base', BACKUP_ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'backup.info'), HEAD_DONE.replace(/^tablespaces=.*$/m, 'tablespaces=None'));
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
});

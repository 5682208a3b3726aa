// A throw-away PostgreSQL 15 cluster for the benchmarks (run as `postgres` when we are root).
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './servers.mjs';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const asRoot = process.getuid?.() === 0;

export function asPostgres(bin, args, opts = {}) {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024, ...opts });
}

/** initdb + start in `dir` (made readable by postgres); `conf` lines are appended to postgresql.auto.conf. */
export async function startPostgres(dir, conf = []) {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  const sock = join(dir, 'sock');
  const data = join(dir, 'data');
  const port = await freePort();
  asPostgres('mkdir', ['-p', sock]);
  asPostgres(join(PG_BIN, 'initdb'), ['-k', '-D', data, '-U', 'postgres', '-A', 'trust', '--no-locale', '-E', 'UTF8']);
  appendFileSync(join(data, 'postgresql.auto.conf'), [
    `port = ${port}`, `unix_socket_directories = '${sock}'`, "listen_addresses = ''", 'fsync = off', 'max_wal_size = 4GB',
    ...conf, '',
  ].join('\n'));
  asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', join(dir, 'pg.log'), '-w', 'start']);
  const env = { PGHOST: sock, PGPORT: String(port), PGUSER: 'postgres' };
  const pg = {
    dir, sock, data, port, env,
    psql: (sql) => asPostgres(join(PG_BIN, 'psql'), ['-h', sock, '-p', String(port), '-U', 'postgres', '-XAtc', sql]).trim(),
    pgbench: (scale) => asPostgres(join(PG_BIN, 'pgbench'), ['-h', sock, '-p', String(port), '-U', 'postgres', '-i', '-s', String(scale), '-q']),
    stop: () => {
      try {
        asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-w', 'stop', '-m', 'immediate']);
      } catch {}
    },
  };
  process.once('exit', pg.stop);
  return pg;
}

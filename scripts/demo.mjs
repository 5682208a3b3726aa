// `npm run demo`: the main job end to end on the embedded local-directory store, no cloud needed.
// A throw-away PostgreSQL archives its WAL with barman-cloud-wal-archive into file://<dir>;
// barman-cloud-backup takes a base backup there; more data is written; barman-cloud-backup-list
// shows the backup; barman-cloud-restore restores it with --write-recovery-conf, and the copy
// starts through barman-cloud-wal-restore and must come back with every row. PostgreSQL runs as the
// `postgres` user when started as root (it refuses root). Everything lives in one temp directory,
// removed at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const PG_BIN = process.env.PG_BINDIR ?? '/usr/lib/postgresql/15/bin';
const asRoot = process.getuid?.() === 0;
const step = (text) => process.stdout.write(`\n==> ${text}\n`);

if (!existsSync(join(PG_BIN, 'initdb'))) {
  console.error(`PostgreSQL server binaries not found in ${PG_BIN} (set PG_BINDIR)`);
  process.exit(1);
}
if (!existsSync(join(root, 'dist', 'cli', 'run.js'))) execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });

const work = mkdtempSync(join(tmpdir(), 'barman-cloud-demo-'));
chmodSync(work, 0o755);
const store = join(work, 'store');
const sock = join(work, 'sock');

/** Run a PostgreSQL program, as postgres when we are root. */
function pg(bin, args, opts = {}) {
  const cmd = asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...args]] : [join(PG_BIN, bin), args];
  return execFileSync(cmd[0], cmd[1], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}
const chown = (p) => asRoot && execFileSync('chown', ['-R', 'postgres:postgres', p]);

/** The tool must be runnable by the postgres user: use the checkout, or a copy in the temp dir. */
function toolRoot() {
  if (!asRoot) return root;
  const ok = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-r', join(root, 'dist', 'cli', 'run.js')]).status === 0;
  if (ok) return root;
  const copy = join(work, 'tool');
  for (const d of ['bin', 'dist']) cpSync(join(root, d), join(copy, d), { recursive: true });
  cpSync(join(root, 'package.json'), join(copy, 'package.json'));
  execFileSync('cp', ['-al', join(root, 'node_modules'), join(copy, 'node_modules')]);
  execFileSync('chmod', ['-R', 'a+rX', copy]);
  return copy;
}

async function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sh = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
let started = [];
try {
  execFileSync('mkdir', ['-p', sock, store]);
  chown(work);
  const tool = toolRoot();
  const cmd = (bin, args) => [process.execPath, join(tool, 'bin', bin), ...args].map(sh).join(' ');
  const storeUrl = `file://${store}`;
  const port = await freePort();
  const psql = (dataPort, sql) =>
    pg('psql', ['-XAtq', '-h', sock, '-p', String(dataPort), '-U', 'postgres', '-d', 'postgres', '-c', sql]).trim();

  step(`initdb and start a throw-away PostgreSQL archiving to ${storeUrl}`);
  const data = join(work, 'primary');
  pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-k', '--no-locale', '-E', 'UTF8']);
  appendFileSync(join(data, 'postgresql.auto.conf'), [
    `port = ${port}`, `unix_socket_directories = '${sock}'`, "listen_addresses = ''",
    'archive_mode = on', `archive_command = '${cmd('barman-cloud-wal-archive', ['--lz4', storeUrl, 'demo']).replace(/'/g, "''")} %p'`,
    'fsync = off', '',
  ].join('\n'));
  pg('pg_ctl', ['-D', data, '-l', join(work, 'primary.log'), '-w', 'start']);
  started.push(data);

  step('check that the archive is empty and usable (barman-cloud-check-wal-archive)');
  execFileSync(process.execPath, [join(root, 'bin', 'barman-cloud-check-wal-archive'), storeUrl, 'demo'], { stdio: 'inherit' });

  step('write data, take a base backup with barman-cloud-backup, write more data, switch WAL');
  psql(port, "CREATE TABLE demo (id int primary key, note text); INSERT INTO demo SELECT g, 'before the backup' FROM generate_series(1, 5000) g;");
  // As the server's OS user, like barman: it reads PGDATA and writes into the same store.
  const pgEnv = { ...process.env, PGHOST: sock, PGPORT: String(port), PGUSER: 'postgres' };
  const backupArgs = [join(tool, 'bin', 'barman-cloud-backup'), '--lz4', '--immediate-checkpoint', '-n', 'demo-backup', storeUrl, 'demo'];
  if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', process.execPath, ...backupArgs], { env: pgEnv, stdio: 'inherit', cwd: work });
  else execFileSync(process.execPath, backupArgs, { env: pgEnv, stdio: 'inherit' });
  psql(port, "INSERT INTO demo SELECT g, 'after the backup' FROM generate_series(5001, 10000) g;");
  const last = psql(port, 'SELECT pg_walfile_name(pg_switch_wal())');
  for (let i = 0; i < 200 && psql(port, 'SELECT last_archived_wal FROM pg_stat_archiver') < last; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const expected = psql(port, 'SELECT count(*) FROM demo');
  pg('pg_ctl', ['-D', data, '-w', 'stop', '-m', 'fast']);
  started = started.filter((d) => d !== data);
  const walFiles = readdirSync(join(store, 'demo', 'wals'), { recursive: true }).filter((f) => /\.lz4$/.test(String(f)));
  console.log(`archived ${walFiles.length} WAL files (lz4) under ${join(store, 'demo', 'wals')}; primary had ${expected} rows`);

  step('barman-cloud-backup-list');
  execFileSync(process.execPath, [join(tool, 'bin', 'barman-cloud-backup-list'), storeUrl, 'demo'], { stdio: 'inherit' });

  step('barman-cloud-restore latest --write-recovery-conf, then start the copy (restore_command = barman-cloud-wal-restore)');
  const base = join(work, 'restored');
  execFileSync(process.execPath, [join(tool, 'bin', 'barman-cloud-restore'), '--write-recovery-conf', storeUrl, 'demo', 'latest', base], { stdio: 'inherit' });
  const rport = await freePort();
  appendFileSync(join(base, 'postgresql.auto.conf'), [`port = ${rport}`, 'archive_mode = off', "recovery_target_action = 'promote'", ''].join('\n'));
  chown(base);
  chmodSync(base, 0o700);
  pg('pg_ctl', ['-D', base, '-l', join(work, 'restored.log'), '-w', 'start']);
  started.push(base);
  let inRecovery = 't';
  for (let i = 0; i < 300 && inRecovery === 't'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    inRecovery = psql(rport, 'SELECT pg_is_in_recovery()');
  }
  const got = psql(rport, 'SELECT count(*) FROM demo');
  console.log(`restored copy has ${got} rows (expected ${expected}), in recovery: ${inRecovery}`);
  if (got !== expected || inRecovery !== 'f') throw new Error('the restored copy does not hold every row');
  step('done: every row came back from the local-directory store (base backup + WAL)');
} catch (e) {
  console.error(`demo failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  for (const d of started) {
    try {
      pg('pg_ctl', ['-D', d, '-w', 'stop', '-m', 'immediate']);
    } catch {}
  }
  if (!process.env.BC_KEEP_DEMO) rmSync(work, { recursive: true, force: true });
}

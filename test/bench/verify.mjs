// `barman-cloud verify` throughput and peak RSS: a pgbench database (BENCH_SCALE, default 100),
// backed up with --lz4 into the local directory store, its WAL archived there by our wal-archive
// from the backup on, then verified (every part read, hashed, decompressed, every tar parsed, every
// member's CRC-32C computed, the WAL checked). Three runs; the median is reported.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asPostgres } from './lib.mjs';
import { freePort } from './servers.mjs';

export const title = '`barman-cloud verify` of an lz4 backup in the local directory store';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const asRoot = process.getuid?.() === 0;

/** Peak RSS (MB), wall time (s) and stdout of one command, through GNU time. */
function measured(cmd, args, env) {
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stdout.slice(-800)}${r.stderr.slice(-800)}`);
  return { secs, rssMb: Number(r.stderr.trim().split('\n').at(-1)) / 1024, stdout: r.stdout };
}

function treeBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? treeBytes(p) : statSync(p).size;
  }
  return n;
}

export async function run({ root }) {
  const scale = Number(process.env.BENCH_SCALE ?? 100);
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-verify-'));
  chmodSync(work, 0o755);
  if (asRoot) execFileSync('chown', ['postgres:postgres', work]);
  const sock = join(work, 'sock');
  const data = join(work, 'data');
  const store = join(work, 'store');
  const node = process.execPath;
  const ours = (bin) => join(root, 'bin', bin);
  const port = await freePort();
  let started = false;
  try {
    asPostgres('mkdir', ['-p', sock, store]);
    asPostgres(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-locale', '-E', 'UTF8']);
    appendFileSync(join(data, 'postgresql.auto.conf'), [
      `port = ${port}`, `unix_socket_directories = '${sock}'`, "listen_addresses = ''", 'fsync = off',
      'archive_mode = on', "archive_command = '/bin/true'", 'max_wal_size = 4GB', '',
    ].join('\n'));
    asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', join(work, 'pg.log'), '-w', 'start']);
    started = true;
    const env = { ...process.env, PGHOST: sock, PGPORT: String(port), PGUSER: 'postgres' };
    delete env.NODE_EXTRA_CA_CERTS;
    const psql = (sql) => asPostgres(join(PG_BIN, 'psql'), ['-h', sock, '-p', String(port), '-U', 'postgres', '-XAtc', sql], { env }).trim();
    // The load's WAL is not needed by the backup: only what is written from the backup on is archived.
    asPostgres(join(PG_BIN, 'pgbench'), ['-h', sock, '-p', String(port), '-U', 'postgres', '-i', '-s', String(scale), '-q'], { env });
    const dbMb = Number(psql("SELECT pg_database_size('postgres')")) / 1e6;
    const archive = `${node} ${ours('barman-cloud-wal-archive')} file://${store} srv %p`;
    psql(`ALTER SYSTEM SET archive_command = '${archive}'`);
    psql('SELECT pg_reload_conf()');
    psql('SELECT pg_switch_wal()');
    execFileSync(node, [ours('barman-cloud-backup'), '--lz4', '--immediate-checkpoint', `file://${store}`, 'srv'], { env, stdio: 'ignore' });
    // wait until the backup's last segment is archived
    const last = JSON.parse(execFileSync(node, [ours('barman-cloud-backup-list'), '--format', 'json', `file://${store}`, 'srv'], { env, encoding: 'utf8' })).backups_list.at(-1).end_wal;
    for (let i = 0; i < 600 && psql('SELECT coalesce(last_archived_wal, \'\') FROM pg_stat_archiver') < last; i++) await new Promise((r) => setTimeout(r, 200));
    const storedMb = treeBytes(join(store, 'srv', 'base')) / 1e6;
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(measured(node, [ours('barman-cloud'), 'verify', `file://${store}`, 'srv'], env));
    const med = runs.map((r) => r.secs).sort((a, b) => a - b)[1];
    // The backup's line shows whether parts.json and backup_manifest were checked (no "unavailable").
    const summary = runs[0].stdout.trim().split('\n').filter((l) => /^(backup|verify) /.test(l)).join(' / ');
    return {
      headers: ['what', 'result'],
      rows: [
        [`verify, database ${dbMb.toFixed(0)} MB (pgbench scale ${scale}) / wall time, median of 3`, `${(dbMb / med).toFixed(1)} MB/s`],
        [`verify, stored lz4 parts ${storedMb.toFixed(0)} MB / wall time`, `${(storedMb / med).toFixed(1)} MB/s`],
        ['wall time, median of 3', `${med.toFixed(2)} s`],
        ['peak RSS, largest of 3', `${Math.max(...runs.map((r) => r.rssMb)).toFixed(0)} MB`],
      ],
      notes: [
        `Report of the first run: \`${summary}\`.`,
        'Wall time of the whole command (start, listing, every part read, SHA-256 of the stored bytes, lz4 decompression, tar parsing, CRC-32C of every member, the WAL listing). Throughput is database size / wall time, as in the backup section (lz4 shrinks pgbench data ~9×, so the stored bytes go by far slower than the data they hold). Target (issue 12): ≥ 200 MB/s at scale 100 with bounded memory.',
      ],
    };
  } finally {
    if (started) {
      try {
        asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-w', 'stop', '-m', 'immediate']);
      } catch {}
    }
    // BENCH_KEEP=1 keeps the store (and the stopped cluster) for profiling
    if (process.env.BENCH_KEEP) process.stderr.write(`kept ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

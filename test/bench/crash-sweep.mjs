// Crash sweep: SIGKILL a mutating command after the store answered its Nth request, for every N
// of its run, then check what the next runs see. Not a benchmark; it lives here for the servers.
//
//   node scripts/build.mjs && node test/bench/crash-sweep.mjs            # every scenario
//   SWEEP=delete-b,keep node test/bench/crash-sweep.mjs                  # some of them
//   SWEEP_STEP=3 node test/bench/crash-sweep.mjs                         # every third kill point
//
// Needs moto_server, PostgreSQL 15, the aws CLI and (for the barman column) barman-cli-cloud; runs
// as root or postgres. A counting HTTP proxy sits between the command and moto: when moto answers
// request N, the command is killed before the answer reaches it (the request took effect, the
// command never learnt it). After each kill, with the real commands:
//   - every backup backup-list shows DONE passes `barman-cloud verify` (parts, tars, manifest, WAL);
//   - barman 3.4's backup-list still reads the catalog, with our status for every backup (a backup
//     whose deletion has begun is FAILED for both: docs/format.md#delete-backup);
//   - the same command run again (no proxy) exits as a clean run does and the store converges to
//     what one clean run leaves (same keys);
//   - no multipart upload is left once the next run is over.
// Scenarios: delete-b (oldest backup, with WAL cleanup), delete-r (REDUNDANCY 1), keep (add, then
// release), backup (a backup of a live cluster archiving to the same prefix). Prints one line per
// kill point and a summary; exit 1 when any invariant broke.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startMoto } from './servers.mjs';
import { startPostgres, asPostgres } from './pg.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const bin = (name) => join(root, 'bin', name);
const STEP = Number(process.env.SWEEP_STEP ?? 1);
const WANTED = (process.env.SWEEP ?? 'delete-b,delete-r,keep,backup').split(',');
const KEYS = { AWS_ACCESS_KEY_ID: 'sweep', AWS_SECRET_ACCESS_KEY: 'sweep', AWS_DEFAULT_REGION: 'us-east-1' };
const BUCKET = 'sweep';
const env = { ...process.env, ...KEYS };

function run(cmd, args, opts = {}) {
  return new Promise((res) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => res({ code: code ?? signal, stdout, stderr }));
    opts.onSpawn?.(child);
  });
}

/** A proxy to moto that counts requests and kills `victim` when moto answers request `killAt`. */
async function countingProxy(motoPort) {
  const state = { count: 0, killAt: Infinity, victim: null, killed: false };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (state.killed) return res.destroy();
      const n = ++state.count;
      const up = httpRequest({ host: '127.0.0.1', port: motoPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        const body = [];
        answer.on('data', (c) => body.push(c));
        answer.on('end', () => {
          if (n >= state.killAt && !state.killed) {
            state.killed = true;
            state.victim?.kill('SIGKILL');
            return res.destroy();
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(body));
        });
      });
      up.on('error', () => res.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    arm(killAt) {
      Object.assign(state, { count: 0, killAt, victim: null, killed: false });
    },
    state,
    close: () => (server.closeAllConnections(), new Promise((r) => server.close(r))),
  };
}

const aws = (args) => execFileSync('aws', ['--endpoint-url', moto.url, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const keysUnder = (prefix) => {
  const out = aws(['s3api', 'list-objects-v2', '--bucket', BUCKET, '--prefix', `${prefix}/`, '--query', 'Contents[].Key', '--output', 'json']);
  return (JSON.parse(out) ?? []).map((k) => k.slice(prefix.length + 1)).sort();
};
const uploadsUnder = (prefix) => {
  const out = aws(['s3api', 'list-multipart-uploads', '--bucket', BUCKET, '--prefix', `${prefix}/`, '--output', 'json']);
  return out.trim() ? (JSON.parse(out).Uploads ?? []).map((u) => u.Key) : [];
};
const seed = (prefix) => aws(['s3', 'cp', '--recursive', '--quiet', frozen, `s3://${BUCKET}/${prefix}/`]);
const url = (prefix) => `s3://${BUCKET}/${prefix}`;

/** The invariants every state must keep; returns the broken ones as words. */
async function invariants(prefix) {
  const broken = [];
  const list = await run(bin('barman-cloud-backup-list'), ['--endpoint-url', moto.url, '--format', 'json', url(prefix), 'srv']);
  if (list.code !== 0) return [`backup-list exit ${list.code}: ${list.stderr.trim().split('\n').pop()}`];
  const backups = JSON.parse(list.stdout).backups_list;
  const done = backups.filter((b) => b.status === 'DONE').map((b) => b.backup_id);
  if (done.length) {
    const v = await run(bin('barman-cloud'), ['verify', '--endpoint-url', moto.url, '--format', 'json', url(prefix), 'srv']);
    let doc;
    try {
      doc = JSON.parse(v.stdout);
    } catch {
      broken.push(`verify exit ${v.code}: ${v.stderr.trim().split('\n').pop()}`);
    }
    for (const b of doc?.backups ?? []) {
      if (b.status === 'DONE' && b.result !== 'ok') broken.push(`DONE ${b.backup_id} fails verify: ${b.problems.map((p) => p.kind).join(',')}`);
    }
    for (const p of doc?.wal?.problems ?? []) broken.push(`wal: ${p.kind} ${p.segment ?? ''}`);
  }
  const barman = await run('barman-cloud-backup-list', ['--endpoint-url', moto.url, '--format', 'json', url(prefix), 'srv']);
  if (barman.code !== 0) broken.push(`barman list exit ${barman.code}`);
  else {
    // barman 3.4 sees every backup with our status: never DONE where a deletion has begun
    const theirs = new Map(JSON.parse(barman.stdout).backups_list.map((b) => [b.backup_id, b.status]));
    for (const b of backups) if (theirs.get(b.backup_id) !== b.status) broken.push(`barman lists ${b.backup_id} ${theirs.get(b.backup_id)}, ours ${b.status}`);
  }
  return broken;
}

/**
 * One scenario: `prepare(prefix)` makes the starting state, `args(prefix, endpoint)` the command.
 * A clean run gives the request count and the end state; then every STEP-th kill point.
 */
async function sweep(name, { prepare, command, args, rerunArgs = args, endKeys = (keys) => keys, acceptRerun = (r) => r.code === 0, prefixOf = (n) => `${name}-${n}` }) {
  const cleanPrefix = prefixOf('clean');
  await prepare(cleanPrefix);
  proxy.arm(Infinity);
  const clean = await run(bin(command), args(cleanPrefix, proxy.url), { onSpawn: (c) => (proxy.state.victim = c) });
  const total = proxy.state.count;
  if (clean.code !== 0) throw new Error(`${name}: clean run exit ${clean.code}: ${clean.stderr}`);
  const cleanKeys = endKeys(keysUnder(cleanPrefix));
  console.log(`${name}: clean run ${total} requests${cleanKeys ? `, ${cleanKeys.length} keys after` : ''}`);
  const failures = [];
  for (let n = 1; n <= total; n += STEP) {
    const prefix = prefixOf(`k${n}`);
    await prepare(prefix);
    const uploadsBefore = uploadsUnder(prefix);
    proxy.arm(n);
    const killed = await run(bin(command), args(prefix, proxy.url), { onSpawn: (c) => (proxy.state.victim = c) });
    const notes = [];
    if (killed.code !== 'SIGKILL') notes.push(`not killed: exit ${killed.code}`);
    const after = await invariants(prefix);
    const rerun = await run(bin(command), rerunArgs(prefix, moto.url));
    if (!acceptRerun(rerun)) notes.push(`rerun exit ${rerun.code}: ${rerun.stderr.trim().split('\n').slice(-1)[0]}`);
    const end = endKeys(keysUnder(prefix));
    if (end && JSON.stringify(end) !== JSON.stringify(cleanKeys)) {
      const extra = end.filter((k) => !cleanKeys.includes(k));
      const missing = cleanKeys.filter((k) => !end.includes(k));
      notes.push(`end state differs: +[${extra.join(' ')}] -[${missing.join(' ')}]`);
    }
    const uploads = uploadsUnder(prefix).filter((k) => !uploadsBefore.includes(k));
    if (uploads.length) notes.push(`multipart uploads left: ${uploads.join(' ')}`);
    const final = await invariants(prefix);
    const line = [...after.map((a) => `after kill: ${a}`), ...notes, ...final.map((a) => `after rerun: ${a}`)];
    console.log(`${name} kill@${n}/${total}: ${line.length ? line.join('; ') : 'ok'}`);
    if (line.length) failures.push({ name, n, line });
  }
  return failures;
}

// ---- setup: a live PostgreSQL 15 archiving into moto, three backups in a local directory seed ----
const work = mkdtempSync(join(tmpdir(), 'bc-crash-sweep-'));
chmodSync(work, 0o755);
const moto = await startMoto();
const proxy = await countingProxy(moto.port);
aws(['s3', 'mb', `s3://${BUCKET}`]);
const seedDir = join(work, 'seed');
mkdirSync(seedDir);
if (process.getuid() === 0) chownSync(seedDir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
const awsEnv = Object.entries(KEYS).map(([k, v]) => `${k}=${v}`).join(' ');
const pg = await startPostgres(join(work, 'pg'), [
  'archive_mode = on', 'wal_level = replica',
  // every segment goes to the seed directory and to moto's `live` prefix (the backup scenario's)
  `archive_command = '${bin('barman-cloud-wal-archive')} file://${seedDir} srv %p && ${awsEnv} ${bin('barman-cloud-wal-archive')} --endpoint-url ${moto.url} ${url('live')} srv %p'`,
]);
asPostgres('/usr/lib/postgresql/15/bin/pg_ctl', ['-D', pg.data, '-w', 'restart', '-l', join(pg.dir, 'pg.log')]);
pg.pgbench(1);
Object.assign(env, pg.env);
const backup = (target, extra = []) => asPostgres(bin('barman-cloud-backup'), ['--immediate-checkpoint', ...extra, target, 'srv'], { env: { ...env, ...pg.env } });
for (let i = 0; i < 3; i++) {
  pg.psql(`insert into pgbench_history (tid, bid, aid, delta, mtime) values (${i}, 1, 1, 1, now()); select pg_switch_wal();`);
  backup(`file://${seedDir}`);
}
pg.psql('select pg_switch_wal(); checkpoint; select pg_switch_wal();');
await new Promise((r) => setTimeout(r, 3000)); // let the archiver catch up
// PostgreSQL goes on archiving into seedDir: the scenarios start from a copy frozen now.
const frozen = join(work, 'frozen');
execFileSync('cp', ['-a', seedDir, frozen]);
// backup.info as barman 3.4 writes it (without the six keys 3.4 cannot read), so that 3.4 lists the
// backups and the invariants compare its statuses with ours
for (const id of readdirSync(join(frozen, 'srv', 'base'))) {
  const file = join(frozen, 'srv', 'base', id, 'backup.info');
  const newer = /^(children_backup_ids|cluster_size|data_checksums|encryption|parent_backup_id|summarize_wal)=/;
  writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((l) => !newer.test(l)).join('\n'));
}

const failures = [];
const ids = () => execFileSync('ls', [join(frozen, 'srv', 'base')], { encoding: 'utf8' }).trim().split('\n');
try {
  if (WANTED.includes('delete-b')) {
    failures.push(...await sweep('delete-b', {
      prepare: seed, command: 'barman-cloud-backup-delete',
      args: (p, ep) => ['--endpoint-url', ep, '-b', ids()[0], url(p), 'srv'],
      // barman's WARNING + exit 0 when the backup.info is already gone
      acceptRerun: (r) => r.code === 0,
    }));
  }
  if (WANTED.includes('delete-r')) {
    failures.push(...await sweep('delete-r', {
      prepare: seed, command: 'barman-cloud-backup-delete',
      args: (p, ep) => ['--endpoint-url', ep, '-r', 'REDUNDANCY 1', url(p), 'srv'],
    }));
  }
  if (WANTED.includes('keep')) {
    const id = ids()[1];
    failures.push(...await sweep('keep-add', {
      prepare: seed, command: 'barman-cloud-backup-keep',
      args: (p, ep) => ['--endpoint-url', ep, '--target', 'full', url(p), 'srv', id],
    }));
    failures.push(...await sweep('keep-release', {
      prepare: async (p) => {
        seed(p);
        await run(bin('barman-cloud-backup-keep'), ['--endpoint-url', moto.url, '--target', 'standalone', url(p), 'srv', id]);
      },
      command: 'barman-cloud-backup-keep',
      args: (p, ep) => ['--endpoint-url', ep, '--release', url(p), 'srv', id],
    }));
  }
  if (WANTED.includes('backup')) {
    // Every kill point backs up into the same live prefix (the one PostgreSQL archives to): the
    // next run must not be blocked, and whatever the killed run left must never be listed DONE.
    // No end state to compare (each run adds a backup); uploads are those this kill point left.
    failures.push(...await sweep('backup', {
      prepare: async () => {},
      command: 'barman-cloud-backup',
      args: (_p, ep) => ['--endpoint-url', ep, '--immediate-checkpoint', url('live'), 'srv'],
      prefixOf: () => 'live',
      endKeys: () => null,
    }));
  }
} finally {
  pg.stop();
  await proxy.close();
  moto.stop();
  rmSync(work, { recursive: true, force: true });
}
console.log(`${failures.length} kill points broke an invariant`);
process.exit(failures.length ? 1 : 0);

// Retention at scale: barman-cloud-backup-delete -r over a large synthetic catalog, removing half of
// it: 1,000 backups and 200,000 WAL objects, in the directory store, in Ceph RGW (seeded by a
// keep-alive parallel client) and, with BENCH_RETENTION_STORES including moto, in moto (seeded
// in-process by moto-seeded.py, since moto takes only 60-90 PUT/s over HTTP) beside barman 3.4.
// Floors: `node -e 0` plus a bare walk of the same catalog (find for the directory store, a bare
// ListObjectsV2 walk for RGW) — any retention run must list it once — and, on RGW, a bare client's
// DeleteObjects of as many keys as ours deleted (the half ours left, after our run), with the RGW
// cluster's CPU read from /proc during ours and during it.
// Also: peak RSS of backup-list / backup-show --format json over BENCH_LIST_BACKUPS (5,000) backups.
// Reported: wall time, peak RSS (GNU time), and the delete requests moto saw (batched vs single).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './servers.mjs';
import { startStores, seedObjects } from './stores.mjs';
import { compare, fmt, runOnce } from './lib.mjs';
import { timed } from './retention-seed.mjs';

export const title = 'Retention: backup-delete -r removing half of a large catalog';

const FILE_BACKUPS = Number(process.env.BENCH_RETENTION_BACKUPS ?? 1000);
const FILE_WALS = Number(process.env.BENCH_RETENTION_WALS ?? 200_000);
const MOTO_BACKUPS = Number(process.env.BENCH_RETENTION_MOTO_BACKUPS ?? 1000);
const MOTO_WALS = Number(process.env.BENCH_RETENTION_MOTO_WALS ?? 200_000);
const RETENTION_STORES = (process.env.BENCH_RETENTION_STORES ?? 'file,rgw').split(',');
const LIST_BACKUPS = Number(process.env.BENCH_LIST_BACKUPS ?? 5000);
/** The bare deletion's requests in flight: as many as ours (WAL_DELETE_CONCURRENCY in src/retention/delete.ts). */
const BARE_DELETES_IN_FLIGHT = 4;

const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, '0');
/** 16 MiB segments: 256 per log number, so 200,000 WALs span ~780 hash directories. */
const walName = (pos) => `00000001${hex8(Math.floor(pos / 256))}${hex8(pos % 256)}`;
const walKey = (name) => `srv/wals/${name.slice(0, 16)}/${name}`;

function backupId(i) {
  const d = new Date(Date.UTC(2023, 0, 1) + i * 3_600_000 * 6);
  return d.toISOString().slice(0, 19).replace(/[-:]/g, '');
}

/** A DONE backup.info readable by barman 3.4 and by us (sorted keys, 3.4's key set). */
function backupInfo(i, begin, end) {
  const d = new Date(Date.UTC(2023, 0, 1) + i * 3_600_000 * 6);
  const t = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}+00:00`;
  return [
    'backup_label=None', 'begin_offset=40', `begin_time=${t(d.getTime())}`, `begin_wal=${walName(begin)}`, 'begin_xlog=0/1000028',
    'compression=None', 'config_file=/pg/postgresql.conf', 'copy_stats=None', 'deduplicated_size=None', 'end_offset=256',
    `end_time=${t(d.getTime() + 60_000)}`, `end_wal=${walName(end)}`, 'end_xlog=0/1000100', 'error=None', 'hba_file=/pg/pg_hba.conf',
    'ident_file=/pg/pg_ident.conf', 'included_files=None', 'mode=None', 'pgdata=/pg', 'server_name=cloud', 'size=None', 'status=DONE',
    'systemid=7713454245083309119', 'tablespaces=None', 'timeline=1', 'version=150018', 'xlog_segment_size=16777216', '',
  ].join('\n');
}

/** The catalog as [key, body] pairs: per backup backup.info + two tar parts + .backup file; the WALs. */
export function* catalog(backups, wals) {
  const per = Math.max(1, Math.floor(wals / backups));
  for (let i = 0; i < backups; i++) {
    const id = backupId(i);
    const begin = 1 + i * per;
    yield [`srv/base/${id}/backup.info`, backupInfo(i, begin, begin)];
    yield [`srv/base/${id}/data.tar.gz`, `data ${id}`];
    yield [`srv/base/${id}/data_0001.tar.gz`, `data part ${id}`];
    yield [`${walKey(`${walName(begin)}.00000028.backup`)}.gz`, `label ${id}`];
  }
  for (let p = 1; p <= wals; p++) yield [`${walKey(walName(p))}.gz`, 'w'];
}

/** Writes the catalog as files under `dir` (the directory store's layout); returns the object count. */
function writeCatalog(dir, backups, wals) {
  const made = new Set();
  let objects = 0;
  for (const [key, body] of catalog(backups, wals)) {
    const parent = join(dir, key.slice(0, key.lastIndexOf('/')));
    if (!made.has(parent)) {
      mkdirSync(parent, { recursive: true });
      made.add(parent);
    }
    writeFileSync(join(dir, key), body);
    objects++;
  }
  return objects;
}

/** A bare ListObjectsV2 walk (1,000-key pages, keep-alive): the least any retention run must do. Returns the keys. */
async function listAll(store, bucket, prefix) {
  let token;
  const keys = [];
  do {
    const q = `list-type=2&prefix=${encodeURIComponent(prefix)}${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`;
    const xml = await store.s3('GET', `/${bucket}?${q}`);
    for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(unescapeXml(m[1]));
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? xml.match(/<NextContinuationToken>([^<]+)</)?.[1] : undefined;
  } while (token);
  return keys;
}

const unescapeXml = (s) => s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]);
const escapeXml = (s) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);

/**
 * The bare deletion: `keys` in DeleteObjects requests of 1,000 (Quiet, Content-MD5), `inFlight` at
 * a time, from this process's keep-alive client; what any client must at least send. Throws on a
 * key the server reports as not deleted.
 */
async function bareDelete(store, bucket, keys, inFlight) {
  const batches = [];
  for (let i = 0; i < keys.length; i += 1000) batches.push(keys.slice(i, i + 1000));
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const body = `<Delete><Quiet>true</Quiet>${batch.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`;
      const md5 = createHash('md5').update(body).digest('base64');
      const xml = await store.s3('POST', `/${bucket}?delete=`, body, { 'content-md5': md5, 'content-type': 'application/xml' });
      if (/<Error>/.test(xml)) throw new Error(`bare DeleteObjects: ${xml.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

/** The Python that runs moto_server (a pyenv shim or a script with a #! line). */
function motoPython() {
  let script = execFileSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).trim();
  try {
    script = execFileSync('pyenv', ['which', 'moto_server'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {}
  const first = readFileSync(script, 'utf8').split('\n')[0];
  return first.startsWith('#!') && !first.includes('bash') ? first.slice(2).trim().split(/\s+/).at(-1) : 'python3';
}

/** moto_server whose bucket already holds `items` ([key, body] pairs), with a log of delete requests. */
async function startLoggingMoto(bucket, items, work) {
  const port = await freePort();
  const seed = join(work, 'moto-seed.tsv');
  writeFileSync(seed, items.map(([k, b]) => `${k}\t${b.replace(/\n/g, '\\n')}\n`).join(''));
  const script = join(import.meta.dirname, 'moto-seeded.py');
  const child = spawn(motoPython(), [script, seed, bucket, '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const counts = { batch: 0, single: 0 };
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (/"POST \S+\?delete/.test(line)) counts.batch++;
      else if (/"DELETE \//.test(line)) counts.single++;
    }
  });
  const deadline = Date.now() + 600_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('moto_server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
  process.once('exit', stop);
  return { url: `http://127.0.0.1:${port}`, counts, stop };
}

export async function run({ root }) {
  const node = process.execPath;
  const binDir = process.env.BENCH_BIN_DIR ?? join(root, 'bin');
  const bin = join(binDir, 'barman-cloud-backup-delete');
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_DEFAULT_REGION: 'us-east-1' };
  delete env.NODE_EXTRA_CA_CERTS;
  const rows = [];
  const notes = [];
  const targets = {};
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-retention-'));
  const node0 = (await compare([{ label: 'node -e 0', cmd: node, args: ['-e', '0'], env }], { rounds: 5, warmup: 1 }))[0].median;
  try {
    // ---- listings: peak RSS of backup-list / backup-show --format json over many backups ----
    {
      const dir = join(work, 'list');
      writeCatalog(dir, LIST_BACKUPS, LIST_BACKUPS);
      const url = `file://${dir}`;
      const list = await timed(node, [join(binDir, 'barman-cloud-backup-list'), '--format', 'json', url, 'srv'], env);
      const last = JSON.parse(list.stdout).backups_list.at(-1).backup_id;
      const show = await timed(node, [join(binDir, 'barman-cloud-backup-show'), '--format', 'json', url, 'srv', last], env);
      rows.push([`directory store, backup-list --format json, ${LIST_BACKUPS} backups`, fmt(list.ms), `${list.mb.toFixed(0)} MB`, '', '']);
      rows.push([`directory store, backup-show --format json, ${LIST_BACKUPS} backups`, fmt(show.ms), `${show.mb.toFixed(0)} MB`, '', '']);
      const worst = Math.max(list.mb, show.mb);
      targets[`peak RSS backup-list/show --format json, ${LIST_BACKUPS} backups`] = { target: '≤ 128 MB over 5,000 backups', value: `max ${worst.toFixed(0)} MB`, met: worst <= 128 };
    }

    // ---- the directory store, full size ----
    if (RETENTION_STORES.includes('file')) {
      const dir = join(work, 'file');
      const t0 = Date.now();
      const objects = writeCatalog(dir, FILE_BACKUPS, FILE_WALS);
      notes.push(`Directory store: ${FILE_BACKUPS} backups, ${FILE_WALS} WAL objects, ${objects} objects in all (seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s).`);
      const policy = `REDUNDANCY ${Math.ceil(FILE_BACKUPS / 2)}`;
      const url = `file://${dir}`;
      const walk = await runOnce('sh', ['-c', `find ${dir} -type f | wc -l`], { env });
      const floor = node0 + walk;
      const dry = await compare([{ label: 'dry run', cmd: node, args: [bin, '--dry-run', '-r', policy, url, 'srv'], env }], { rounds: 3, warmup: 0 });
      rows.push([`directory store, -r '${policy}' --dry-run`, fmt(dry[0].median), '', `floor ${fmt(floor)} (node -e 0 + find walk)`, '']);
      const real = await timed(node, [bin, '--format', 'json', '-r', policy, url, 'srv'], env);
      const s = JSON.parse(real.stdout);
      rows.push([`directory store, -r '${policy}'`, fmt(real.ms), `${real.mb.toFixed(0)} MB`, `floor ${fmt(floor)}; ours − floor ${fmt(real.ms - floor)}`,
        `${s.backups_deleted} backups, ${s.backup_objects_deleted + s.wal_objects_deleted} objects`]);
      targets[`retention, file store`] = { target: '≤ 20 s (1,000 backups, 200,000 WAL, half removed)', value: `${(real.ms / 1000).toFixed(1)} s (${FILE_BACKUPS} backups, ${FILE_WALS} WAL)`, met: real.ms <= 20_000 && FILE_WALS >= 200_000 };
    }

    // ---- Ceph RGW, seeded by a parallel keep-alive client ----
    if (RETENTION_STORES.includes('rgw') && existsSync('/usr/bin/radosgw')) {
      const { stores, stopAll } = await startStores(join(work, 'rgw'), ['rgw']);
      try {
        const rgw = stores[0];
        await rgw.makeBucket('bench-retention');
        const t0 = Date.now();
        const n = await seedObjects(rgw, 'bench-retention', [...catalog(FILE_BACKUPS, FILE_WALS)].map(([k, b]) => [`ours/${k}`, b]), 32);
        notes.push(`RGW: ${FILE_BACKUPS} backups, ${FILE_WALS} WAL objects, ${n} objects seeded by 32 parallel keep-alive PUTs in ${((Date.now() - t0) / 1000).toFixed(0)} s (memstore: the seeded state lives in RAM and is not cached between runs).`);
        const t1 = process.hrtime.bigint();
        const listed = (await listAll(rgw, 'bench-retention', 'ours/')).length;
        const walk = Number(process.hrtime.bigint() - t1) / 1e6;
        const policy = `REDUNDANCY ${Math.ceil(FILE_BACKUPS / 2)}`;
        // The server's CPU (radosgw, its OSD and monitor: the store's process group), before and after.
        const serverMs = () => rgw.serverCpu() * 1000;
        const cpu0 = serverMs();
        const real = await timed(node, [bin, '--format', 'json', '--endpoint-url', rgw.url, '-r', policy, 's3://bench-retention/ours', 'srv'], rgw.env);
        const ourServerMs = serverMs() - cpu0;
        const s = JSON.parse(real.stdout);
        const deleted = s.backup_objects_deleted + s.wal_objects_deleted;
        // The bare deletion of as many keys: the half our run left (the newer backups and their WAL),
        // so the bucket is half the size ours met; timed in two halves to show whether that matters.
        const left = (await listAll(rgw, 'bench-retention', 'ours/')).slice(0, deleted);
        const halves = [left.slice(0, left.length >> 1), left.slice(left.length >> 1)].map((keys) => ({ keys }));
        for (const h of halves) {
          const c = serverMs();
          const t = process.hrtime.bigint();
          await bareDelete(rgw, 'bench-retention', h.keys, BARE_DELETES_IN_FLIGHT);
          h.ms = Number(process.hrtime.bigint() - t) / 1e6;
          h.serverMs = serverMs() - c;
        }
        const bareMs = halves[0].ms + halves[1].ms;
        const bareServerMs = halves[0].serverMs + halves[1].serverMs;
        const floor = node0 + walk + bareMs;
        const perKey = (ms, n) => `${(ms / n).toFixed(2)} ms/key`;
        rows.push([`RGW, -r '${policy}'`, fmt(real.ms), `${real.mb.toFixed(0)} MB`,
          `floor ${fmt(floor)} (node -e 0 + bare ListObjectsV2 walk of ${listed} keys ${fmt(walk)} + bare DeleteObjects of ${left.length} keys ${fmt(bareMs)}); ours − floor ${fmt(real.ms - floor)}`,
          `${s.backups_deleted} backups, ${deleted} objects; server CPU ${(ourServerMs / 1000).toFixed(1)} s (${perKey(ourServerMs, deleted)}), bare delete's ${(bareServerMs / 1000).toFixed(1)} s (${perKey(bareServerMs, left.length)})`]);
        notes.push(`RGW floor: the bare deletion is ${BARE_DELETES_IN_FLIGHT} DeleteObjects of 1,000 keys (Quiet, Content-MD5) in flight from a keep-alive aws4 client in the bench process, run after ours on the ${left.length} keys ours left, in a bucket half the size ours met: its first half took ${fmt(halves[0].ms)} and ${perKey(halves[0].serverMs, halves[0].keys.length)} of server CPU, its second ${fmt(halves[1].ms)} and ${perKey(halves[1].serverMs, halves[1].keys.length)}. Server CPU is radosgw + OSD + monitor (/proc); our own run's CPU: ${(real.cpuMs / 1000).toFixed(1)} s.`);
        targets['retention, RGW'] = { target: '≤ 60 s (1,000 backups, 200,000 WAL, half removed)', value: `${(real.ms / 1000).toFixed(1)} s (${FILE_BACKUPS} backups, ${FILE_WALS} WAL)`, met: real.ms <= 60_000 && FILE_WALS >= 200_000 };
      } finally {
        await stopAll();
      }
    }

    // ---- moto, full size, seeded in-process; side by side with barman 3.4 ----
    if (RETENTION_STORES.includes('moto')) {
      const haveBarman = existsSync('/usr/bin/barman-cloud-backup-delete');
      const prefixes = haveBarman ? ['ours', 'theirs'] : ['ours'];
      const items = [...catalog(MOTO_BACKUPS, MOTO_WALS)].flatMap(([k, b]) => prefixes.map((p) => [`${p}/${k}`, b]));
      const t0 = Date.now();
      const moto = await startLoggingMoto('bench-retention', items, work);
      try {
        notes.push(`moto: ${MOTO_BACKUPS} backups, ${MOTO_WALS} WAL objects per copy (${items.length} objects seeded in-process in ${((Date.now() - t0) / 1000).toFixed(0)} s).`);
        const mpolicy = `REDUNDANCY ${Math.ceil(MOTO_BACKUPS / 2)}`;
        const contenders = [['ours', node, [bin, '--format', 'json']]];
        if (haveBarman) contenders.push(['theirs', '/usr/bin/barman-cloud-backup-delete', []]);
        const results = {};
        for (const [prefix, cmd, pre] of contenders) {
          const before = { ...moto.counts };
          const r = await timed(cmd, [...pre, '--endpoint-url', moto.url, '-r', mpolicy, `s3://bench-retention/${prefix}`, 'srv'], env);
          await new Promise((res) => setTimeout(res, 300)); // the last log lines
          const batch = moto.counts.batch - before.batch;
          const single = moto.counts.single - before.single;
          results[prefix] = r;
          const label = prefix === 'ours' ? 'ours' : 'barman-cloud-backup-delete 3.4';
          rows.push([`moto, ${label} -r '${mpolicy}'`, fmt(r.ms), `${r.mb.toFixed(0)} MB`, '', `${batch} bulk delete requests, ${single} single deletes`]);
        }
        if (results.theirs) notes.push(`moto wall-time ratio barman 3.4 / ours: ${(results.theirs.ms / results.ours.ms).toFixed(2)}×.`);
      } finally {
        moto.stop();
      }
    }
    if (!RETENTION_STORES.includes('moto')) notes.push('moto is left out by default: it answers every listing page by scanning and sorting the whole bucket in Python (~1 s per 1,000-key page at 200,000 objects), so a full-size run takes ~10 minutes whatever the client; `BENCH_RETENTION_STORES=file,rgw,moto` adds it beside barman 3.4.');
    notes.push('Peak RSS from GNU time (%M). Destructive runs are measured once each; the dry run is a median of 3.');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { headers: ['what', 'wall time', 'peak RSS', 'floor', 'work'], rows, notes, targets };
}

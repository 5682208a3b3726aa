// backup-delete -r of two (or more) builds, interleaved, over the same catalog seeded afresh before
// every call: what a change to the deletion costs (the seventeenth session's: each deleted backup's
// backup.info is read and rewritten FAILED before its objects go, two requests more per backup).
// Each round runs every build once, in rotated order; prints each build's median wall time and the
// paired ratio of each build against the first.
//
//   BUILDS='{"before":"/tmp/old/bin","after":"bin"}' ROUNDS=5 STORES=file,moto BACKUPS=200 WALS=4000 \
//     node test/bench/retention-builds.mjs
//
// The catalog: BACKUPS DONE backups (backup.info + one data.tar), WALS segments spread over them;
// the policy is REDUNDANCY BACKUPS/2, so half the backups and their WAL go.
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStores } from './stores.mjs';
import { median } from './lib.mjs';

const root = join(import.meta.dirname, '..', '..');
const builds = JSON.parse(process.env.BUILDS ?? JSON.stringify({ this: join(root, 'bin') }));
const rounds = Number(process.env.ROUNDS ?? 5);
const backups = Number(process.env.BACKUPS ?? 200);
const wals = Number(process.env.WALS ?? 4000);
const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, '0');
const walName = (pos) => `00000001${hex8(Math.floor(pos / 256))}${hex8(pos % 256)}`;

function catalog() {
  const items = [];
  const per = Math.max(1, Math.floor(wals / backups));
  for (let i = 0; i < backups; i++) {
    const when = new Date(Date.UTC(2025, 0, 1) + i * 6 * 3_600_000);
    const id = when.toISOString().slice(0, 19).replace(/[-:]/g, '');
    const time = when.toISOString().slice(0, 19).replace('T', ' ') + '+00:00';
    const begin = 1 + i * per;
    const info = [
      `begin_time=${time}`, `begin_wal=${walName(begin)}`, `end_time=${time}`, `end_wal=${walName(begin)}`,
      'error=None', 'server_name=cloud', 'status=DONE', 'timeline=1', 'version=150000', '',
    ].join('\n');
    items.push([`srv/base/${id}/backup.info`, info], [`srv/base/${id}/data.tar`, `data ${id}`]);
    for (let p = begin; p < begin + per; p++) items.push([`srv/wals/${walName(p).slice(0, 16)}/${walName(p)}`, `wal ${p}`]);
  }
  return items;
}

const work = mkdtempSync(join(tmpdir(), 'retention-builds-'));
const { stores, stopAll } = await startStores(work, (process.env.STORES ?? 'file,moto').split(','));
const items = catalog();
const template = join(work, 'template');
for (const [key, body] of items) {
  mkdirSync(join(template, key, '..'), { recursive: true });
  writeFileSync(join(template, key), body);
}
try {
  for (const store of stores) {
    const times = Object.fromEntries(Object.keys(builds).map((b) => [b, []]));
    let call = 0;
    for (let r = 0; r < rounds; r++) {
      const names = Object.keys(builds);
      const order = names.slice(r % names.length).concat(names.slice(0, r % names.length));
      for (const name of order) {
        const prefix = `c${call++}`;
        let target;
        if (store.kind === 'file') {
          const dir = join(store.dir, 'b', prefix);
          mkdirSync(join(store.dir, 'b'), { recursive: true });
          execFileSync('cp', ['-a', template, dir]);
          execFileSync('sync');
          target = [`file://${dir}`, 'srv'];
        } else {
          // the aws CLI from a local copy (moto takes small PUTs slowly whoever sends them)
          await store.makeBucket('retention');
          execFileSync('aws', ['--endpoint-url', store.url, 's3', 'cp', '--recursive', '--quiet', template, `s3://retention/${prefix}/`], { env: store.env });
          target = store.ours('retention', prefix);
        }
        const started = process.hrtime.bigint();
        const res = spawnSync(join(builds[name], 'barman-cloud-backup-delete'), ['-r', `REDUNDANCY ${backups / 2}`, ...target], { env: store.env, encoding: 'utf8' });
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (res.status !== 0) throw new Error(`${name} on ${store.name}: exit ${res.status}: ${res.stderr}`);
        if (!res.stdout.startsWith(`Deleted ${backups / 2} backups`)) throw new Error(`${name}: ${res.stdout}${res.stderr}`);
        times[name].push(ms);
        if (store.kind === 'file') rmSync(join(store.dir, 'b', prefix), { recursive: true, force: true });
      }
    }
    const [first, ...others] = Object.keys(builds);
    console.log(`${store.name}: ${backups} backups, ${wals} WAL, REDUNDANCY ${backups / 2}, ${rounds} rounds`);
    for (const name of Object.keys(builds)) console.log(`  ${name}: median ${median(times[name]).toFixed(0)} ms  [${times[name].map((t) => t.toFixed(0)).join(' ')}]`);
    for (const name of others) {
      const ratios = times[name].map((t, i) => t / times[first][i]);
      console.log(`  ${name}/${first}: paired median ${median(ratios).toFixed(3)}  [${ratios.map((x) => x.toFixed(2)).join(' ')}]`);
    }
  }
} finally {
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}

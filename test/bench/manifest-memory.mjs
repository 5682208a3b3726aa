// Memory of writing backup_manifest (issue 14): a BackupManifestBuilder of N files named like a
// database's relation files (`base/16384/<n>`), then the manifest rendered and read to its end, as
// the tar writer does. Per checkout's src/backup/manifest.ts (bundled with esbuild into this
// repository, so that node_modules resolves, and deleted afterwards), interleaved by round, in a
// child under GNU time: RSS before the files are added, before the render and after it, the peak
// (maxrss), what V8's heap and array buffers grew by (after a full collection) with the builder filled: what it keeps per file, the
// render's wall time, and the SHA-256 of the manifest (the same for every checkout, or the script
// fails). A checkout whose render() returns a Buffer (before the streamed one) is measured whole.
//
//   CHECKOUTS=/work/main,. ENTRIES=100000,300000 ROUNDS=3 node test/bench/manifest-memory.mjs
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { median } from './lib.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const checkouts = (process.env.CHECKOUTS ?? '.').split(',').map((c) => resolve(c));
const entries = (process.env.ENTRIES ?? '100000,300000').split(',').map(Number);
const rounds = Number(process.env.ROUNDS ?? 3);

const child = (source) => `
import { createHash } from 'node:crypto';
import { BackupManifestBuilder } from ${JSON.stringify(source)};
const n = Number(process.argv[2]);
const mb = (x) => Math.round(x / 10485.76) / 100; // MiB
globalThis.gc();
const kept = () => { const u = process.memoryUsage(); return u.heapUsed + u.arrayBuffers; };
const heapStart = kept();
const rssStart = process.memoryUsage().rss;
const b = new BackupManifestBuilder();
for (let i = 0; i < n; i++) b.addFile(\`base/16384/\${100000 + i}\`, 8192 * (i % 100), 1733300000, i * 2654435761);
globalThis.gc();
const heap = kept() - heapStart;
const rssBefore = process.memoryUsage().rss;
const t = performance.now();
const out = b.render([{ timeline: 1, startLsn: '0/2000028', endLsn: '0/2000100' }]);
const hash = createHash('sha256');
let bytes = 0, pieces = 0, largest = 0;
for (const c of Buffer.isBuffer(out) ? [out] : out.chunks) { hash.update(c); bytes += c.length; pieces++; largest = Math.max(largest, c.length); }
if (!Buffer.isBuffer(out) && bytes !== out.byteLength) throw new Error('length');
const ms = performance.now() - t;
console.log(JSON.stringify({ rssStart: mb(rssStart), heap: mb(heap), rssBefore: mb(rssBefore), rssAfter: mb(process.memoryUsage().rss), ms: Math.round(ms), bytes, pieces, largest, sha: hash.digest('hex') }));
`;

const bundles = [];
try {
  for (const [k, checkout] of checkouts.entries()) {
    const outfile = join(root, `.manifest-memory-${process.pid}-${k}.mjs`);
    await build({
      stdin: { contents: child(join(checkout, 'src', 'backup', 'manifest.ts')), resolveDir: root, loader: 'js' },
      bundle: true, platform: 'node', format: 'esm', outfile, external: ['@node-rs/crc32'], logLevel: 'warning',
    });
    bundles.push(outfile);
  }
  const results = new Map();
  for (let r = 0; r < rounds; r++) {
    for (const n of entries) {
      for (let j = 0; j < checkouts.length; j++) {
        const k = (j + r) % checkouts.length;
        const res = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, '--expose-gc', bundles[k], String(n)], { encoding: 'utf8' });
        if (res.status !== 0) throw new Error(`${checkouts[k]}, ${n} files: ${res.stderr}`);
        const m = JSON.parse(res.stdout);
        m.peak = Math.round(Number(res.stderr.trim().split('\n').at(-1)) / 102.4) / 10; // GNU time: KiB
        const key = `${n}`;
        if (!results.has(key)) results.set(key, { sha: m.sha, runs: checkouts.map(() => []) });
        const entry = results.get(key);
        if (entry.sha !== m.sha) throw new Error(`${checkouts[k]}: another manifest for ${n} files`);
        entry.runs[k].push(m);
      }
    }
  }
  console.log(`| files | checkout | manifest MB | RSS start / before render / after (MiB) | kept (bytes per file) | peak RSS (MiB) | render ms | pieces (largest) |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [n, { runs }] of results) {
    for (const [k, list] of runs.entries()) {
      const med = (f) => median(list.map(f));
      console.log(`| ${n} | ${checkouts[k]} | ${(list[0].bytes / 1e6).toFixed(1)} | ${med((m) => m.rssStart)} / ${med((m) => m.rssBefore)} / ${med((m) => m.rssAfter)} | ${med((m) => m.heap)} MiB (${Math.round((med((m) => m.heap) * 1048576) / Number(n))}) | ${med((m) => m.peak)} | ${med((m) => m.ms)} | ${list[0].pieces} (${list[0].largest}) |`);
    }
  }
} finally {
  for (const f of bundles) rmSync(f, { force: true });
}

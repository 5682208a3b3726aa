import l from 'lz4-napi'; import { readFileSync } from 'node:fs';
const seg = readFileSync('/tmp/walseg');
const a = seg.subarray(0, 4 << 20);
const mode = process.argv[2]; const n = +process.argv[3]; let peak = 0;
for (let i = 0; i < n; i++) {
  if (mode === 'compressSync') l.compressSync(a);
  else if (mode === 'compress') await Promise.all([l.compress(a), l.compress(seg.subarray(4 << 20, 8 << 20))]);
  peak = Math.max(peak, process.memoryUsage.rss());
}
console.log(mode, n, process.env.MIMALLOC_PURGE_DELAY ?? '', 'peak', (peak / 1e6).toFixed(0), 'end rss', (process.memoryUsage.rss() / 1e6).toFixed(0));

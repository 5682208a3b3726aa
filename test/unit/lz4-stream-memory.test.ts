// The LZ4 stream a base backup compresses through (codec.compressStream()) must not grow the
// process by what lz4-napi's allocator keeps per thread (issue 14). Compressed in the thread pool,
// each 257 KiB output was allocated on a pool thread and freed on the main one, and every pool
// thread kept its freed pages: 512 MiB through the stream grew the RSS by 28-29 MB here, against
// 8-9 MB compressed on the main thread. The stream runs in a child process of its own (bundled
// from src/ with esbuild), fed 1 MiB at a time with a turn of the event loop in between, as the
// backup's file reads give it, and with the backup's scavenge every 4 MiB (src/reclaim.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

/** Growth of the child's RSS over its level before compressing, in MB (thread pool: 28-29). */
const GROWTH_LIMIT_MB = 14;

const PROBE = `
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { bytesMoved, setYoungCollector } from './src/reclaim.ts';
import { loadCodec } from './src/compression/index.ts';
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
setYoungCollector(() => gc({ type: 'minor' }), 4 << 20);
const MiB = 1 << 20;
// Compresses about 2.5 to 1, as pgbench's tables do: one run of 8 bytes in 4 pseudo-random.
const chunk = Buffer.allocUnsafe(MiB);
let seed = 1;
for (let i = 0; i < MiB; i++) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  chunk[i] = (i >> 3) % 4 === 0 ? seed >>> 24 : 48 + ((i * 7) % 61);
}
const stream = (await loadCodec('lz4')).compressStream();
let out = 0;
stream.on('data', (b) => (out += b.length));
const ended = new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject));
const before = process.memoryUsage().rss;
for (let n = 0; n < 512; n++) {
  await new Promise((resolve, reject) => stream.write(chunk, (e) => (e ? reject(e) : resolve())));
  bytesMoved(MiB);
  await new Promise((resolve) => setImmediate(resolve));
}
stream.end();
await ended;
console.log(JSON.stringify({ growthMb: (process.resourceUsage().maxRSS * 1024 - before) / MiB, out }));
`;

describe('peak memory of the backup LZ4 stream', () => {
  let dir: string;
  let probe: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bc-lz4-memory-'));
    probe = join(dir, 'probe.mjs');
    // Everything inlined but the native addons, which lz4.ts requires at run time (NODE_PATH below).
    buildSync({ stdin: { contents: PROBE, resolveDir: ROOT, loader: 'ts' }, bundle: true, platform: 'node', format: 'esm', outfile: probe, logLevel: 'error' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('512 MiB through compressStream() grow the RSS by a few MB only', () => {
    const out = execFileSync(process.execPath, [probe], { env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') }, encoding: 'utf8' });
    const { growthMb, out: compressed } = JSON.parse(out) as { growthMb: number; out: number };
    console.log(`lz4 compressStream: RSS +${growthMb.toFixed(1)} MB for 512 MiB in, ${(compressed / 2 ** 20).toFixed(0)} MiB out`);
    expect(compressed).toBeGreaterThan(100 * 2 ** 20);
    expect(compressed).toBeLessThan(300 * 2 ** 20);
    expect(growthMb).toBeLessThanOrEqual(GROWTH_LIMIT_MB);
  }, 60_000);
});

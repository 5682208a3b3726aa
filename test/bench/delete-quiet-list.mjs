// What a quiet DeleteObjects proved by a listing would cost on Ceph RGW, beside today's answer that
// names every key (docs/format.md#result-answers): the same 1,000-key batches with Quiet true; Quiet
// false; and Quiet true followed by a ListObjectsV2 (`start-after` the key before the batch,
// `max-keys` 1) that must show none of the batch's keys. Wall time and RGW's CPU per batch, the
// order rotating per round; seeding is not timed.
//
//   node test/bench/delete-quiet-list.mjs [--rounds 6] [--keys 2000]
import { parseArgs } from 'node:util';
import { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { median } from './lib.mjs';
import { groupCpuSecs, RGW_KEYS, startRgw } from './servers.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, keys: { type: 'string', default: '2000' } } });
const rounds = Number(values.rounds);
const count = Number(values.keys);
const rgw = await startRgw({ memstoreMib: 1024 });
const s3 = new S3Client({ endpoint: rgw.url, forcePathStyle: true, region: 'us-east-1', credentials: RGW_KEYS });
await s3.send(new CreateBucketCommand({ Bucket: 'quiet' }));

async function seed(prefix) {
  const keys = Array.from({ length: count }, (_, i) => `${prefix}/wals/0000000100000000/${(i + 1).toString(16).toUpperCase().padStart(24, '0')}`);
  for (let i = 0; i < keys.length; i += 32) {
    await Promise.all(keys.slice(i, i + 32).map((Key) => s3.send(new PutObjectCommand({ Bucket: 'quiet', Key, Body: 'x' }))));
  }
  return keys;
}

const V = ['quiet', 'loud', 'quiet+list'];
const results = Object.fromEntries(V.map((v) => [v, { wall: [], cpu: [] }]));
try {
  for (let r = 0; r < rounds; r++) {
    const order = [...V.slice(r % 3), ...V.slice(0, r % 3)];
    for (const v of order) {
      const keys = await seed(`r${r}-${v}`);
      const cpu0 = groupCpuSecs(rgw.pgid);
      const t0 = performance.now();
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        const out = await s3.send(new DeleteObjectsCommand({ Bucket: 'quiet', Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: v !== 'loud' } }));
        if ((out.Errors ?? []).length) throw new Error('deletion failed');
        if (v === 'quiet+list') {
          const page = await s3.send(new ListObjectsV2Command({ Bucket: 'quiet', Prefix: `r${r}-${v}/`, ...(i > 0 ? { StartAfter: keys[i - 1] } : {}), MaxKeys: 1 }));
          if ((page.Contents ?? []).some((c) => c.Key <= batch.at(-1))) throw new Error('a key is still listed');
        }
      }
      const batches = Math.ceil(keys.length / 1000);
      results[v].wall.push((performance.now() - t0) / batches);
      results[v].cpu.push(((groupCpuSecs(rgw.pgid) - cpu0) * 1000) / batches);
    }
  }
  for (const v of V) console.log(`${v}: wall per batch median ${median(results[v].wall).toFixed(1)} ms, RGW CPU median ${median(results[v].cpu).toFixed(1)} ms`);
  for (const v of ['loud', 'quiet+list']) console.log(`${v} / quiet paired: wall ${median(results[v].wall.map((x, i) => x / results.quiet.wall[i])).toFixed(3)}, CPU ${median(results[v].cpu.map((x, i) => x / results.quiet.cpu[i])).toFixed(3)}`);
} finally {
  s3.destroy();
  await rgw.stop();
}

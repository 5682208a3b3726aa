// What asking DeleteObjects not to be quiet costs (docs/format.md#result-answers): the same
// batches of 1,000 keys on Ceph RGW with Quiet true (the answer lists only failures) and Quiet
// false (it names every key), the order rotating per round; wall time and the server's CPU (all of
// RGW's processes) per batch. Seeding is not timed. With --list, a third variant: Quiet true
// followed by a ListObjectsV2 (`start-after` the key before the batch, `max-keys` 1) that must
// show none of the batch's keys, the cost of proving a quiet deletion by a listing instead.
//
//   node test/bench/delete-quiet.mjs [--rounds 5] [--keys 2000] [--list]
import { parseArgs } from 'node:util';
import { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { median } from './lib.mjs';
import { groupCpuSecs, RGW_KEYS, startRgw } from './servers.mjs';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, keys: { type: 'string', default: '2000' }, list: { type: 'boolean', default: false } },
});
const rounds = Number(values.rounds);
const count = Number(values.keys);
const variants = values.list ? ['quiet', 'loud', 'quiet+list'] : ['quiet', 'loud'];
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

const results = Object.fromEntries(variants.map((v) => [v, { wall: [], cpu: [] }]));
try {
  for (let r = 0; r < rounds; r++) {
    const shift = r % variants.length;
    for (const v of [...variants.slice(shift), ...variants.slice(0, shift)]) {
      const prefix = `r${r}-${v}`;
      const keys = await seed(prefix);
      const cpu0 = groupCpuSecs(rgw.pgid);
      const t0 = performance.now();
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        const out = await s3.send(new DeleteObjectsCommand({ Bucket: 'quiet', Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: v !== 'loud' } }));
        if ((out.Errors ?? []).length) throw new Error('deletion failed');
        if (v === 'loud' && (out.Deleted ?? []).length !== batch.length) throw new Error('not every key named');
        if (v === 'quiet+list') {
          const page = await s3.send(new ListObjectsV2Command({ Bucket: 'quiet', Prefix: `${prefix}/`, ...(i > 0 ? { StartAfter: keys[i - 1] } : {}), MaxKeys: 1 }));
          if ((page.Contents ?? []).some((c) => c.Key <= batch.at(-1))) throw new Error('a key is still listed');
        }
      }
      const batches = Math.ceil(keys.length / 1000);
      results[v].wall.push((performance.now() - t0) / batches);
      results[v].cpu.push(((groupCpuSecs(rgw.pgid) - cpu0) * 1000) / batches);
    }
  }
  for (const v of variants) {
    console.log(`${v}: wall per 1,000-key batch median ${median(results[v].wall).toFixed(1)} ms, RGW CPU median ${median(results[v].cpu).toFixed(1)} ms (${rounds} rounds)`);
  }
  const ratio = (v, k) => median(results[v][k].map((x, i) => x / results.quiet[k][i]));
  for (const v of variants.slice(1)) console.log(`${v} / quiet, paired per round: wall ${ratio(v, 'wall').toFixed(3)}, RGW CPU ${ratio(v, 'cpu').toFixed(3)}`);
} finally {
  s3.destroy();
  await rgw.stop();
}

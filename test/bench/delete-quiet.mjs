// What asking DeleteObjects not to be quiet costs (docs/format.md#result-answers): the same
// batches of 1,000 keys on Ceph RGW with Quiet true (the answer lists only failures) and Quiet
// false (it names every key), interleaved, the order alternating per round; wall time and the
// server's CPU (all of RGW's processes) per batch. Seeding is not timed.
//
//   node test/bench/delete-quiet.mjs [--rounds 5] [--keys 2000]
import { parseArgs } from 'node:util';
import { CreateBucketCommand, DeleteObjectsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
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

const results = { true: { wall: [], cpu: [] }, false: { wall: [], cpu: [] } };
try {
  for (let r = 0; r < rounds; r++) {
    for (const quiet of r % 2 === 0 ? [true, false] : [false, true]) {
      const keys = await seed(`r${r}-${quiet}`);
      const cpu0 = groupCpuSecs(rgw.pgid);
      const t0 = performance.now();
      for (let i = 0; i < keys.length; i += 1000) {
        const out = await s3.send(new DeleteObjectsCommand({ Bucket: 'quiet', Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: quiet } }));
        if ((out.Errors ?? []).length) throw new Error('deletion failed');
        if (!quiet && (out.Deleted ?? []).length !== Math.min(1000, keys.length - i)) throw new Error('not every key named');
      }
      const batches = Math.ceil(keys.length / 1000);
      results[quiet].wall.push((performance.now() - t0) / batches);
      results[quiet].cpu.push(((groupCpuSecs(rgw.pgid) - cpu0) * 1000) / batches);
    }
  }
  for (const quiet of [true, false]) {
    console.log(`Quiet ${quiet}: wall per 1,000-key batch median ${median(results[quiet].wall).toFixed(1)} ms, RGW CPU median ${median(results[quiet].cpu).toFixed(1)} ms (${rounds} rounds)`);
  }
  const ratio = (k) => median(results.false[k].map((x, i) => x / results.true[k][i]));
  console.log(`Quiet false / true, paired per round: wall ${ratio('wall').toFixed(3)}, RGW CPU ${ratio('cpu').toFixed(3)}`);
} finally {
  s3.destroy();
  await rgw.stop();
}

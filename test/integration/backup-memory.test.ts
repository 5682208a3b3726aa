// Peak memory of barman-cloud-backup and barman-cloud-restore with -J 4, per codec, into and from
// the directory store and moto: below the 128 MB that sidecars are OOM-killed at (issue 14), with
// a pgbench database of ~150 MB so that every buffer and queue has reached its steady size. The
// peak is the child's own, as GNU time reports it (getrusage maxrss).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, ROOT, type ServerHandle } from '../helpers/servers.ts';
import { gnuTimeAvailable, measured } from '../helpers/peak-rss.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { requireTool, postgresAvailable, startCluster, type PgCluster } from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable()) || requireTool('GNU time', gnuTimeAvailable());
/** The bound for backup and restore (MB of peak RSS), on the directory store and on S3. */
const LIMIT_MB = 128;
const CODECS: [string, string[]][] = [['none', []], ['lz4', ['--lz4']], ['gzip', ['-z']], ['zstd', ['--zstd']], ['snappy', ['--snappy']]];

describe.skipIf(skip)('peak memory of backup and restore with -J 4', () => {
  let moto: ServerHandle;
  let cluster: PgCluster;
  let work: string;

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'memory');
    work = mkdtempSync(join(tmpdir(), 'bc-memory-'));
    cluster = await startCluster();
    await cluster.pgbench(['-i', '-s', '10', '-q']);
  }, 180_000);

  afterAll(async () => {
    await cluster?.remove();
    await moto?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const stores: [string, () => string[]][] = [
    ['directory store', () => [`file://${join(work, 'store')}`]],
    ['moto', () => ['--endpoint-url', moto.url, 's3://memory/cluster']],
  ];

  // The AWS SDK cost a backup ~10 MB of peak RSS: with static keys its parts go through the lean
  // client's own multipart upload (src/storage/s3/multipart.ts), and nothing else loads the SDK.
  it('a backup to S3 with static keys loads no AWS SDK module', async () => {
    const trace = join(work, 'trace.txt');
    writeFileSync(trace, '');
    const r = await runBin('barman-cloud-backup', ['--lz4', '-J', '4', '--immediate-checkpoint', '-n', 'traced', '--endpoint-url', moto.url, 's3://memory/traced', 'srv'], {
      env: cleanEnv({ ...MOTO_ENV, ...cluster.env, BC_TRACE_MODULES: trace }),
      nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')],
    });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const loaded = readFileSync(trace, 'utf8');
    expect(loaded).toMatch(/dist\/cli\/.*backup/); // the trace saw the command's own chunk
    // lz4-napi itself, or its binding package (src/compression/native.ts): the trace works.
    expect(loaded).toMatch(/node_modules\/(@antoniomuso\/)?lz4-napi/);
    expect(loaded).not.toMatch(/node_modules\/@aws-sdk\//);
  }, 300_000);

  for (const [store, location] of stores) {
    it.each(CODECS)(`${store}: backup and restore (%s) stay within the bound`, async (codec, flags) => {
      mkdirSync(join(work, 'store'), { recursive: true });
      const env = cleanEnv({ ...MOTO_ENV, ...cluster.env });
      const name = `mem-${codec}`;
      const backup = await measured('barman-cloud-backup', [...flags, '-J', '4', '--immediate-checkpoint', '-n', name, ...location(), 'srv'], env);
      expect({ code: backup.code, stderr: backup.stderr }).toEqual({ code: 0, stderr: '' });
      const dest = join(work, `restore-${store.split(' ')[0]}-${codec}`);
      const restore = await measured('barman-cloud-restore', ['-J', '4', ...location(), 'srv', name, dest], env);
      expect({ code: restore.code, stderr: restore.stderr }).toEqual({ code: 0, stderr: '' });
      console.log(`peak RSS ${store} ${codec}: backup ${backup.peakMb.toFixed(1)} MB, restore ${restore.peakMb.toFixed(1)} MB`);
      // What was restored is the cluster (the restore checks every file against backup_manifest).
      expect(readdirSync(join(dest, 'base')).length).toBeGreaterThan(0);
      rmSync(dest, { recursive: true, force: true });
      expect(backup.peakMb, `backup (${codec}) peak RSS in MB`).toBeLessThanOrEqual(LIMIT_MB);
      expect(restore.peakMb, `restore (${codec}) peak RSS in MB`).toBeLessThanOrEqual(LIMIT_MB);
    }, 300_000);
  }
});

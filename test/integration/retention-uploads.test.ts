// backup-delete ends the multipart uploads left under the backups it deletes (a backup that failed
// while the store was unreachable could not abort its own; once backup.info is gone nothing would
// find them, and S3 keeps their parts), one backup at a time (-b) and in bulk (-r), against moto.
// An upload under a backup that is not deleted, or under a directory without backup.info (a backup
// running now), is left alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import type { ServerHandle } from '../helpers/servers.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { MOTO_ENV, MOTO_KEYS, startMotoBucket } from '../helpers/moto.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';

const BUCKET = 'uploads-left';
const IDS = ['20260101T000000', '20260102T000000', '20260103T000000', '20260104T000000'];
const RUNNING = '20260105T000000';
const wal = (seg: number) => `0000000100000000${seg.toString(16).toUpperCase().padStart(8, '0')}`;

let moto: ServerHandle;
let store: ObjectStore;
let s3: S3Client;

/** A catalog under `server`: four FAILED-then-DONE backups, each with an upload never finished, and one running. */
async function seed(server: string): Promise<void> {
  for (const [i, id] of IDS.entries()) {
    const info = newBackupInfo(id, { status: i === 0 ? 'FAILED' : 'DONE', timeline: 1, begin_wal: wal(2 * i + 1), end_wal: wal(2 * i + 2) });
    await store.put(`${server}/base/${id}/backup.info`, Buffer.from(serializeBackupInfo(info)));
    if (i > 0) await store.put(`${server}/base/${id}/data.tar`, Buffer.from(`data ${id}`));
  }
  for (const id of [...IDS, RUNNING]) {
    const key = `${server}/base/${id}/data.tar`;
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: id === RUNNING ? key : `${key}.left` }));
    await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: id === RUNNING ? key : `${key}.left`, UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 1) }));
  }
}

async function uploads(server: string): Promise<string[]> {
  const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${server}/` }));
  return (out.Uploads ?? []).map((u) => u.Key!).sort();
}

beforeAll(async () => {
  ({ moto, store } = await startMotoBucket(BUCKET));
  s3 = new S3Client({ endpoint: moto.url, forcePathStyle: true, region: 'us-east-1', credentials: MOTO_KEYS });
});

afterAll(async () => {
  s3?.destroy();
  await store?.close();
  await moto?.stop();
});

describe('backup-delete and the uploads a backup left', () => {
  it('-b ID: the deleted backup\'s upload is aborted, the others stay', async () => {
    await seed('one');
    const r = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, `s3://${BUCKET}`, 'one', '-b', IDS[0]!], { env: cleanEnv(MOTO_ENV) });
    expect(r.code, r.stderr).toBe(0);
    expect(await uploads('one')).toEqual([
      ...IDS.slice(1).map((id) => `one/base/${id}/data.tar.left`),
      `one/base/${RUNNING}/data.tar`,
    ]);
  });

  it('-r: every deleted backup\'s upload is aborted in one listing; kept backups\' and the running one\'s stay', async () => {
    await seed('bulk');
    const r = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, `s3://${BUCKET}`, 'bulk', '-r', 'REDUNDANCY 1'], { env: cleanEnv(MOTO_ENV) });
    expect(r.code, r.stderr).toBe(0);
    const left = [];
    for (const id of IDS) if (await store.head(`bulk/base/${id}/backup.info`)) left.push(id);
    expect(left.length).toBeLessThan(IDS.length - 1); // more than one backup deleted: the bulk path
    expect(await uploads('bulk')).toEqual([...left.map((id) => `bulk/base/${id}/data.tar.left`), `bulk/base/${RUNNING}/data.tar`]);
  });

  it('--dry-run aborts nothing', async () => {
    await seed('dry');
    const before = await uploads('dry');
    const r = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, `s3://${BUCKET}`, 'dry', '-r', 'REDUNDANCY 1', '--dry-run'], { env: cleanEnv(MOTO_ENV) });
    expect(r.code, r.stderr).toBe(0);
    expect(before).toHaveLength(5);
    expect(await uploads('dry')).toEqual(before);
  });
});

// wal-archive with a write-only credential (s3:PutObject alone, the least privilege an archive
// needs): a proxy in front of moto refuses every LIST and GET with AccessDenied, as S3 does for such
// a user. A new segment is archived through the conditional upload alone; a segment already in the
// archive cannot be compared, so it is refused with a line that says what to grant (exit 1), and
// --overwrite replaces it as barman would.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startS3Proxy, type Proxy } from '../helpers/proxy.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import { walLike } from '../fixtures/wal-like.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const BUCKET = 'writeonly';
const SEGMENT_SIZE = 1024 * 1024;

let moto: ServerHandle;
let proxy: Proxy | undefined;
let proxyUrl: string;
let work: string;
const refused: string[] = [];

beforeAll(async () => {
  moto = await startMoto();
  await createS3Bucket(moto.url, BUCKET);
  work = mkdtempSync(join(tmpdir(), 'bc-writeonly-'));
  // A write-only user: GET and HEAD of anything (objects, listings) are refused.
  proxy = await startS3Proxy(moto.port, (r) => {
    if (r.method !== 'GET' && r.method !== 'HEAD') return false;
    const objectKey = r.url.split('?')[0]!.split('/').slice(2).join('/');
    refused.push(`${r.method} ${objectKey === '' ? 'LIST' : objectKey}`);
    return true;
  });
  proxyUrl = proxy.url;
});

afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function stored(key: string): Promise<Buffer> {
  const store = await openObjectStore({
    provider: 'aws-s3', bucket: BUCKET, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  try {
    return await store.getBuffer(key);
  } finally {
    await store.close();
  }
}

describe('wal-archive with a write-only credential (LIST and GET refused)', () => {
  it.each([['none', []], ['lz4', ['--lz4']]])('archives a new segment (%s); a second, different copy is refused with what to grant; --overwrite replaces it', async (codec, flags) => {
    const name = codec === 'none' ? '000000010000000000000011' : '000000010000000000000012';
    const dir = join(work, codec, 'pg_wal');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    const first = walLike(SEGMENT_SIZE, 7);
    writeFileSync(path, first);
    const args = ['--endpoint-url', proxyUrl, ...flags, `s3://${BUCKET}/p`, 'srv', path];
    refused.length = 0;
    const a = await runBin('barman-cloud-wal-archive', args, { env: cleanEnv(MOTO_ENV) });
    expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: '' });
    expect(refused.some((r) => r.startsWith('GET LIST') || r === 'GET LIST')).toBe(true);
    const key = `p/srv/wals/0000000100000000/${name}${codec === 'none' ? '' : '.lz4'}`;
    const raw = await stored(key);
    if (codec === 'none') expect(raw.equals(first)).toBe(true);
    else expect(raw.length).toBeGreaterThan(0);

    const second = walLike(SEGMENT_SIZE, 8);
    writeFileSync(path, second);
    const b = await runBin('barman-cloud-wal-archive', args, { env: cleanEnv(MOTO_ENV) });
    expect(b.code).toBe(1);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toMatch(new RegExp(`ERROR: WAL file ${name} is already archived as ${key} and this credential cannot read it to compare .*grant read access \\(s3:GetObject\\) or use --overwrite`));
    expect((await stored(key)).equals(raw)).toBe(true);

    const c = await runBin('barman-cloud-wal-archive', ['--overwrite', ...args], { env: cleanEnv(MOTO_ENV) });
    expect({ code: c.code }).toEqual({ code: 0 });
    if (codec === 'none') expect((await stored(key)).equals(second)).toBe(true);
    else expect((await stored(key)).equals(raw)).toBe(false);
  });
});

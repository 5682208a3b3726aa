// Ceph RGW's HTTPS endpoint (test/servers/rgw.mjs --ssl-port, beast's ssl_endpoint) with a test CA:
// the benchmarks point pgBackRest (whose S3 repository needs TLS) at it, so it must serve real TLS
// with the given certificate beside the plain endpoint.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRgw, rgwAvailable, createS3Bucket, makeTestCA, type RgwHandle, type TestCA } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { requireTool } from '../helpers/postgres.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const skip = requireTool('Ceph RADOS Gateway', rgwAvailable());

let rgw: RgwHandle;
let ca: TestCA;
let work: string;

describe.skipIf(skip)('RGW with an HTTPS endpoint', () => {
  beforeAll(async () => {
    ca = makeTestCA();
    rgw = await startRgw({ tls: ca });
    work = mkdtempSync(join(tmpdir(), 'bc-rgw-tls-'));
    await createS3Bucket(rgw.url, 'tls-bucket', undefined, rgw.admin);
  }, 120_000);

  afterAll(async () => {
    await rgw?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string | undefined> = {}) => cleanEnv({
    AWS_ACCESS_KEY_ID: rgw.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.admin.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1',
    NODE_EXTRA_CA_CERTS: undefined, ...extra,
  });

  it('serves the same bucket over HTTPS, verified against the test CA: a segment archived and restored byte-identical', async () => {
    expect(rgw.httpsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const seg = join(work, '000000010000000000000001');
    const bytes = withLongPageHeader(randomBytes(16 * 1024 * 1024), '000000010000000000000001');
    writeFileSync(seg, bytes);
    const url = ['--endpoint-url', rgw.httpsUrl!, '--endpoint-ca', ca.caFile, 's3://tls-bucket/pg', 'srv'];
    const a = await runBin('barman-cloud-wal-archive', [...url, seg], { env: env() });
    expect(a).toMatchObject({ code: 0, stderr: '' });
    const dest = join(work, 'RECOVERYXLOG');
    const r = await runBin('barman-cloud-wal-restore', [...url, '000000010000000000000001', dest], { env: env() });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(readFileSync(dest).equals(bytes)).toBe(true);
    // The plain endpoint sees the object the HTTPS one wrote: one gateway, two listeners.
    const plain = await runBin('barman-cloud-wal-restore', ['--endpoint-url', rgw.url, 's3://tls-bucket/pg', 'srv', '000000010000000000000001', dest], { env: env() });
    expect(plain.code).toBe(0);
  }, 120_000);

  it('is real TLS with the test certificate: without its CA the client refuses it', async () => {
    const seg = join(work, '000000010000000000000002');
    writeFileSync(seg, randomBytes(1024));
    const a = await runBin('barman-cloud-wal-archive', ['--endpoint-url', rgw.httpsUrl!, 's3://tls-bucket/pg', 'srv', seg], { env: env() });
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/certificate|self[- ]signed|issuer/i);
  }, 120_000);
});

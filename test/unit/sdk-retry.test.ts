// The SDKs that keep their own retry loop (AWS SDK v3, Azure storage, GCS) take its knobs from our
// one RetryPolicy: against a local server that answers every request with 503, each driver makes
// exactly maxAttempts attempts (none of the SDK defaults: AWS 3, Azure 4 with 4 s steps, GCS 4),
// and the waits between them stay under the policy's maxDelayMs where the SDK lets us set it.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, type RetryPolicy } from '../../src/storage/config.ts';
import { S3ObjectStore } from '../../src/storage/s3/s3.ts';
import { LeanS3ObjectStore } from '../../src/storage/s3/s3-lean.ts';
import { AzureObjectStore } from '../../src/storage/azure/azure.ts';
import { GcsObjectStore } from '../../src/storage/gcs/gcs.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

let server: Server;
let url = '';
let hits: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.push(Date.now());
    req.resume();
    req.on('end', () => {
      res.writeHead(503, { 'content-type': 'application/xml', 'retry-after': '0' });
      res.end(req.method === 'HEAD' ? undefined : '<?xml version="1.0"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const policy = (maxAttempts: number): RetryPolicy => ({ ...DEFAULT_RETRY, maxAttempts, baseDelayMs: 20, maxDelayMs: 60, readTimeoutMs: 5_000 });
const keys = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const drivers: [string, (retry: RetryPolicy) => ObjectStore, number][] = [
  ['S3 (AWS SDK)', (retry) => new S3ObjectStore({ provider: 'aws-s3', bucket: 'b', endpointUrl: url, region: 'us-east-1', credentials: keys, retry }), 60],
  ['S3 (lean client)', (retry) => new LeanS3ObjectStore({ provider: 'aws-s3', bucket: 'b', endpointUrl: url, region: 'us-east-1', credentials: keys, retry }), 60],
  ['Azure', (retry) => new AzureObjectStore({ provider: 'azure-blob-storage', bucket: 'b', accountUrl: `${url}/account`, auth: { kind: 'sas', sasToken: 'sv=2020-08-04&sig=x' }, retry }), 60],
  // The GCS client's back-off cannot start below 1 s nor cap below it (gcs.ts says why).
  ['GCS', (retry) => new GcsObjectStore({ provider: 'google-cloud-storage', bucket: 'b', apiEndpoint: url, retry }), 2_000],
];

describe("SDK retry loops follow our RetryPolicy's attempts and delay cap", () => {
  it.each(drivers)('%s', async (_name, open, maxGapMs) => {
    for (const attempts of [1, 2, 4]) {
      hits = [];
      const store = open(policy(attempts));
      try {
        await expect(store.getBuffer('some/key')).rejects.toThrow();
      } finally {
        await store.close();
      }
      expect(hits.length, `attempts with maxAttempts ${attempts}`).toBe(attempts);
      for (let i = 1; i < hits.length; i++) expect(hits[i]! - hits[i - 1]!).toBeLessThan(maxGapMs + 250);
    }
  }, 60_000);
});

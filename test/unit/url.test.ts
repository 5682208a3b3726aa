import { describe, it, expect } from 'vitest';
import { parseStoreUrl } from '../../src/storage/url.ts';

describe('store URLs (docs/format.md#urls)', async () => {
  it('parses S3 URLs, keeping a trailing slash of the path', async () => {
    expect(await parseStoreUrl('s3://bucket', 'aws-s3')).toEqual({ provider: 'aws-s3', bucket: 'bucket', path: '' });
    expect(await parseStoreUrl('s3://bucket/a/b/', 'aws-s3')).toEqual({ provider: 'aws-s3', bucket: 'bucket', path: 'a/b/' });
    await expect(parseStoreUrl('s3:///path', 'aws-s3')).rejects.toThrow('Invalid s3 URL address: s3:///path');
    await expect(parseStoreUrl('gs://bucket', 'aws-s3')).rejects.toThrow('Invalid s3 URL address');
  });

  it('parses Azure service and emulator URLs', async () => {
    expect(await parseStoreUrl('https://acct.blob.core.windows.net/cont/p/q', 'azure-blob-storage')).toMatchObject({
      bucket: 'cont', path: 'p/q', accountUrl: 'https://acct.blob.core.windows.net', accountName: 'acct', emulated: false,
    });
    expect(await parseStoreUrl('http://127.0.0.1:10000/devstoreaccount1/cont/path/', 'azure-blob-storage')).toMatchObject({
      bucket: 'cont', path: 'path/', accountUrl: 'http://127.0.0.1:10000/devstoreaccount1', accountName: 'devstoreaccount1', emulated: true,
    });
  });

  it('parses GCS URLs, stripping slashes from the path', async () => {
    expect(await parseStoreUrl('gs://b/x/y/', 'google-cloud-storage')).toEqual({ provider: 'google-cloud-storage', bucket: 'b', path: 'x/y' });
    expect(await parseStoreUrl('https://console.cloud.google.com/storage/browser/b/x', 'google-cloud-storage')).toMatchObject({ bucket: 'b', path: 'x' });
  });

  it('selects the local directory store for file:// URLs and absolute paths, whatever the provider', async () => {
    expect(await parseStoreUrl('file:///var/backups/pg/', 'aws-s3')).toEqual({ provider: 'file', bucket: '/var/backups/pg', path: '' });
    expect(await parseStoreUrl('/var/backups/pg', 'google-cloud-storage')).toEqual({ provider: 'file', bucket: '/var/backups/pg', path: '' });
    expect((await parseStoreUrl('file:///a%20b', 'aws-s3')).bucket).toBe('/a b');
    await expect(parseStoreUrl('file://host/x', 'aws-s3')).rejects.toThrow();
  });
});

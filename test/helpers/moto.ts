// moto_server with a bucket and our own store client on it: the set-up of every test that seeds or
// reads a moto bucket directly. moto accepts any keys; these are its documented defaults, not secrets.
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { createS3Bucket, startMoto, type S3Keys, type ServerHandle } from './servers.ts';

export const MOTO_KEYS: S3Keys = { accessKeyId: 'testing', secretAccessKey: 'testing' };

/** The environment a spawned tool (or PostgreSQL running one) needs to reach moto. */
export const MOTO_ENV = { AWS_ACCESS_KEY_ID: MOTO_KEYS.accessKeyId, AWS_SECRET_ACCESS_KEY: MOTO_KEYS.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1' };

/** Our S3 store client on an existing bucket of `moto`. */
export function openMotoStore(moto: ServerHandle, bucket: string): Promise<ObjectStore> {
  return openObjectStore({
    provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1', credentials: { ...MOTO_KEYS },
  });
}

/** A new moto_server with `bucket` created and a store client on it (close the store, then stop moto). */
export async function startMotoBucket(bucket: string): Promise<{ moto: ServerHandle; store: ObjectStore }> {
  const moto = await startMoto();
  await createS3Bucket(moto.url, bucket);
  return { moto, store: await openMotoStore(moto, bucket) };
}

// The provider registry (src/storage/registry.ts) against the one option table: a provider added
// to one and not the other, or a provider flag misspelled, fails here.
import { describe, it, expect } from 'vitest';
import { COMMANDS } from '../../src/cli/spec.ts';
import { CliError } from '../../src/errors.ts';
import { partSize } from '../../src/storage/provider.ts';
import { PROVIDERS, providerFor, providerNamed } from '../../src/storage/registry.ts';

describe('storage provider registry', () => {
  it('offers exactly its cloud providers as --cloud-provider choices, in every command', () => {
    const names = PROVIDERS.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    const cloud = PROVIDERS.filter((p) => p.cloudProvider).map((p) => p.name);
    const withFlag = COMMANDS.flatMap((c) => c.options.filter((o) => o.long === '--cloud-provider'));
    expect(withFlag.length).toBeGreaterThan(5);
    for (const o of withFlag) expect([...(o.choices ?? [])]).toEqual(cloud);
  });

  it("names only real options as a provider's own flags", () => {
    const longs = new Set(COMMANDS.flatMap((c) => c.options.map((o) => o.long.slice(2))));
    for (const p of PROVIDERS) for (const f of p.flags) expect(longs, `${p.name}: --${f}`).toContain(f);
  });

  it('lets a URL form choose its provider over --cloud-provider, and refuses an unknown name', () => {
    expect(providerFor('file:///srv/backups', 'azure-blob-storage').name).toBe('file');
    expect(providerFor('/srv/backups', 'google-cloud-storage').name).toBe('file');
    expect(providerFor('s3://b/p', 'aws-s3').name).toBe('aws-s3');
    expect(providerFor('gs://b/p', 'google-cloud-storage').name).toBe('google-cloud-storage');
    expect(() => providerNamed('swift')).toThrow(CliError);
  });

  it("sizes a backup's parts from each provider's limits (docs/format.md#tar-parts)", () => {
    const limits = (name: string) => providerNamed(name).partLimits;
    const MiB = 1024 ** 2;
    const TiB = 1024 ** 4;
    // barman's formula: twice max-archive-size over the part count, at least the provider's minimum.
    expect(partSize(limits('aws-s3'), TiB)).toBe(2 * Math.floor(TiB / 10_000));
    expect(partSize(limits('aws-s3'), 100 * MiB)).toBe(5 * MiB);
    expect(partSize(limits('aws-s3'), 100 * MiB, 64 * MiB)).toBe(64 * MiB);
    expect(partSize(limits('azure-blob-storage'), 100 * MiB)).toBe(64 * 1024);
    expect(partSize(limits('azure-blob-storage'), TiB)).toBe(2 * Math.floor(TiB / 50_000));
    // GCS resumable chunks are whole multiples of 256 KiB.
    const gcs = partSize(limits('google-cloud-storage'), TiB);
    expect(gcs % (256 * 1024)).toBe(0);
    expect(gcs - 2 * Math.floor(TiB / 10_000)).toBeGreaterThanOrEqual(0);
    expect(gcs - 2 * Math.floor(TiB / 10_000)).toBeLessThan(256 * 1024);
    expect(partSize(limits('file'), 100 * MiB)).toBe(8 * MiB);
  });
});

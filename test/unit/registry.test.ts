// The provider registry (src/storage/registry.ts) and the option table built from it: each
// provider's declaration (storage/<provider>/options.ts) brings its --cloud-provider value and its
// flags into every store command, and a provider's own flag with another provider exits 3.
import { describe, it, expect } from 'vitest';
import { parseArgs } from '../../src/cli/parse.ts';
import { COMMANDS, commandByName } from '../../src/cli/spec.ts';
import { resolveStore } from '../../src/cli/store.ts';
import { CliError, EXIT } from '../../src/errors.ts';
import { partSize } from '../../src/storage/provider.ts';
import { PROVIDERS, declarationFor, providerFor, providerNamed } from '../../src/storage/registry.ts';

const storeCommands = COMMANDS.filter((c) => c.options.some((o) => o.long === '--cloud-provider'));

describe('storage provider registry', () => {
  it('offers exactly its cloud providers as --cloud-provider choices, in every store command', () => {
    const names = PROVIDERS.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    const cloud = PROVIDERS.filter((p) => p.cloudProvider).map((p) => p.name);
    expect(storeCommands.length).toBeGreaterThan(5);
    for (const c of storeCommands) expect([...(c.options.find((o) => o.long === '--cloud-provider')?.choices ?? [])]).toEqual(cloud);
  });

  it("puts every provider's declared options once into each store command's table, as declared", () => {
    for (const c of storeCommands) {
      for (const p of PROVIDERS) {
        for (const declared of p.options) {
          const inTable = c.options.filter((o) => o.long === declared.long);
          expect(inTable, `${c.name}: ${declared.long}`).toEqual([declared]);
        }
      }
      // No two options of a command share a name.
      const words = c.options.flatMap((o) => [o.long, ...(o.aliases ?? []), ...(o.short ? [o.short] : [])]);
      expect(new Set(words).size, c.name).toBe(words.length);
    }
  });

  it("names only its own declared options as a provider's own flags and customer key", () => {
    for (const p of PROVIDERS) {
      const own = p.options.map((o) => o.long.slice(2));
      for (const f of p.flags) expect(own, `${p.name}: --${f}`).toContain(f);
      if ('customerKey' in p) expect(own).toContain(p.customerKey.option);
    }
  });

  it("refuses a provider's own flag with another --cloud-provider (exit 3)", async () => {
    let checked = 0;
    for (const p of PROVIDERS) {
      for (const flag of p.flags) {
        const spec = p.options.find((o) => o.long === `--${flag}`)!;
        for (const other of PROVIDERS.filter((q) => q.cloudProvider && q.name !== p.name)) {
          const url = other.name === 'aws-s3' ? 's3://b/p' : other.name === 'google-cloud-storage' ? 'gs://b/p' : 'https://a.blob.core.windows.net/c';
          const argv = ['--cloud-provider', other.name, `--${flag}`, ...(spec.kind === 'value' ? ['/nonexistent'] : []), url, 'srv'];
          const o = parseArgs(commandByName('backup-list'), argv);
          if (o.kind !== 'args') throw new Error(`${argv.join(' ')}: not parsed`);
          const refused = resolveStore(url, o.args.options, {});
          await expect(refused).rejects.toThrow(CliError);
          await expect(refused).rejects.toMatchObject({ exitCode: EXIT.CLI, message: `--${flag} cannot be used with --cloud-provider ${other.name}` });
          checked++;
        }
      }
    }
    expect(checked).toBe(PROVIDERS.reduce((n, p) => n + p.flags.length * (p.cloudProvider ? 2 : 3), 0));
    // A URL form that chose its store (file://) tolerates them, as before.
    const o = parseArgs(commandByName('backup-list'), ['--s3-region', 'x', '--cloud-provider', 'azure-blob-storage', 'file:///tmp/x', 'srv']);
    if (o.kind !== 'args') throw new Error('not parsed');
    expect((await resolveStore('file:///tmp/x', o.args.options, {})).config.provider).toBe('file');
  });

  it('lets a URL form choose its provider over --cloud-provider, and refuses an unknown name', async () => {
    expect(declarationFor('file:///srv/backups', 'azure-blob-storage').name).toBe('file');
    expect((await providerFor('file:///srv/backups', 'azure-blob-storage')).name).toBe('file');
    expect((await providerFor('/srv/backups', 'google-cloud-storage')).name).toBe('file');
    expect((await providerFor('s3://b/p', 'aws-s3')).name).toBe('aws-s3');
    expect((await providerFor('gs://b/p', 'google-cloud-storage')).name).toBe('google-cloud-storage');
    expect(() => declarationFor('s3://b', 'swift')).toThrow(CliError);
    await expect(providerNamed('swift')).rejects.toThrow(CliError);
    // Each loader brings the code of the provider it is listed with.
    for (const p of PROVIDERS) expect((await p.load()).name).toBe(p.name);
  });

  it("sizes a backup's parts from each provider's limits (docs/format.md#tar-parts)", async () => {
    const limits = new Map<string, Parameters<typeof partSize>[0]>();
    for (const p of PROVIDERS) limits.set(p.name, (await p.load()).partLimits);
    const of = (name: string) => limits.get(name)!;
    const MiB = 1024 ** 2;
    const TiB = 1024 ** 4;
    // barman's formula: twice max-archive-size over the part count, at least the provider's minimum.
    expect(partSize(of('aws-s3'), TiB)).toBe(2 * Math.floor(TiB / 10_000));
    expect(partSize(of('aws-s3'), 100 * MiB)).toBe(5 * MiB);
    expect(partSize(of('aws-s3'), 100 * MiB, 64 * MiB)).toBe(64 * MiB);
    expect(partSize(of('azure-blob-storage'), 100 * MiB)).toBe(64 * 1024);
    expect(partSize(of('azure-blob-storage'), TiB)).toBe(2 * Math.floor(TiB / 50_000));
    // GCS resumable chunks are whole multiples of 256 KiB.
    const gcs = partSize(of('google-cloud-storage'), TiB);
    expect(gcs % (256 * 1024)).toBe(0);
    expect(gcs - 2 * Math.floor(TiB / 10_000)).toBeGreaterThanOrEqual(0);
    expect(gcs - 2 * Math.floor(TiB / 10_000)).toBeLessThan(256 * 1024);
    expect(partSize(of('file'), 100 * MiB)).toBe(8 * MiB);
  });
});

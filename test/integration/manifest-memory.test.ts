// Peak memory against the number of files (issue 14, "memory that does not grow with the job"): a
// PostgreSQL 15 cluster with 100,000 more files in its data directory (as many tables, indexes and
// partitions make) has a 15 MB backup_manifest. Backup, restore and verify into and from the
// directory store must each stay below the 128 MB that sidecars are OOM-killed at; held whole, the
// manifest alone took ~240 MB to write and ~250 MB to read back (docs/format.md#manifest-reading).
// The restored copy must pass pg_verifybackup -n, so the manifest written in pieces is PostgreSQL's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gnuTimeAvailable, measured } from '../helpers/peak-rss.ts';
import { cleanEnv } from '../helpers/run-bin.ts';
import { pgTempDir, pgVerifyBackup, postgresAvailable, requireTool, startArchivingCluster, type PgCluster } from '../helpers/postgres.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable()) || requireTool('GNU time', gnuTimeAvailable());
const LIMIT_MB = 128;
const FILES = 100_000;
const PER_DIR = 1_000;

describe.skipIf(skip)(`peak memory with ${FILES.toLocaleString('en')} files in the data directory`, () => {
  let cluster: PgCluster;
  let work: string;
  let store: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'bc-manifest-memory-'));
    // the cluster archives its WAL there too: verify checks the WAL the backup needs
    store = `file://${pgTempDir('bc-manifest-memory-store-')}`;
    cluster = await startArchivingCluster([store, 'srv']);
    // PostgreSQL leaves files it does not know alone, and the backup takes them as barman does.
    for (let d = 0; d < FILES / PER_DIR; d++) {
      const dir = join(cluster.dataDir, 'many_files', String(d));
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < PER_DIR; f++) writeFileSync(join(dir, `${100_000 + f}`), `${d}/${f}\n`);
    }
    env = cleanEnv(cluster.env);
    // archived once before the backup, so that the server's directory in the store is the server user's
    await cluster.waitForArchived(await cluster.switchWal(), 60_000);
  }, 300_000);

  afterAll(async () => {
    await cluster?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('backup, restore and verify each stay within the bound, and the copy passes pg_verifybackup', async () => {
    const backup = await measured('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'many', store, 'srv'], env, 600_000);
    expect({ code: backup.code, stderr: backup.stderr }).toEqual({ code: 0, stderr: '' });
    const dest = join(work, 'restored');
    const restore = await measured('barman-cloud-restore', [store, 'srv', 'many', dest], env, 600_000);
    expect({ code: restore.code, stderr: restore.stderr }).toEqual({ code: 0, stderr: '' });
    const verify = await measured('barman-cloud', ['verify', store, 'srv', 'many'], env, 600_000);
    expect({ code: verify.code, stderr: verify.stderr }).toEqual({ code: 0, stderr: '' });
    console.log(`peak RSS with ${FILES} files: backup ${backup.peakMb.toFixed(1)} MB, restore ${restore.peakMb.toFixed(1)} MB, verify ${verify.peakMb.toFixed(1)} MB`);

    expect(readdirSync(join(dest, 'many_files')).length).toBe(FILES / PER_DIR);
    expect(readdirSync(join(dest, 'many_files', '99')).length).toBe(PER_DIR);
    const checked = await pgVerifyBackup(dest);
    expect(checked.out).toMatch(/backup successfully verified/);
    expect(checked.code).toBe(0);

    expect(backup.peakMb, 'backup peak RSS in MB').toBeLessThanOrEqual(LIMIT_MB);
    expect(restore.peakMb, 'restore peak RSS in MB').toBeLessThanOrEqual(LIMIT_MB);
    expect(verify.peakMb, 'verify peak RSS in MB').toBeLessThanOrEqual(LIMIT_MB);
  }, 1_200_000);
});

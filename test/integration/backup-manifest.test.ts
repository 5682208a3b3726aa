// backup_manifest (src/backup/manifest.ts) against PostgreSQL 15 itself: manifests written by the
// real pg_basebackup are parsed and their CRC32C values recomputed from the files, a manifest
// rebuilt from PostgreSQL's own entries is byte-identical to PostgreSQL's, and a manifest we build
// from the files on disk passes `pg_verifybackup -n` (and fails it once a file changes).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackupManifestBuilder, Crc32c, crc32cHex, manifestPath, type ParsedBackupManifest,
} from '../../src/backup/manifest.js';
import { parseBackupManifest } from '../../src/backup/manifest-reader.js';
import { renderManifest } from '../helpers/manifest.js';
import { baseBackup, pgVerifyBackup, postgresAvailable, requireTool, startCluster, type PgCluster } from '../helpers/postgres.js';

/** Every regular file below `dir`, as data-directory-relative paths. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function crcOf(path: string): string {
  const c = new Crc32c();
  const data = readFileSync(path);
  // fed in pieces, as the tar producer does
  for (let off = 0; off < data.length; off += 1000) c.update(data.subarray(off, off + 1000));
  return c.hex();
}

/** '2026-12-03 05:42:00 GMT' → epoch seconds. */
const gmtSeconds = (s: string) => Date.parse(`${s.replace(' GMT', '').replace(' ', 'T')}Z`) / 1000;

describe('backup_manifest helpers', () => {
  it('writes CRC-32C as the little-endian bytes of the integer, as PostgreSQL does', () => {
    // CRC-32C check value of "123456789" is 0xE3069283
    const c = new Crc32c();
    c.update(Buffer.from('12345'));
    c.update(Buffer.from('6789'));
    expect(c.value).toBe(0xe3069283);
    expect(c.hex()).toBe('839206e3');
    expect(crc32cHex(0)).toBe('00000000');
  });

  it('maps tar member names to manifest paths', () => {
    expect(manifestPath('data', './PG_VERSION')).toBe('PG_VERSION');
    expect(manifestPath('data', 'base/1/1259')).toBe('base/1/1259');
    expect(manifestPath('data', 'backup_label')).toBe('backup_label');
    expect(manifestPath('16385', 'PG_15_202209061/5/16386')).toBe('pg_tblspc/16385/PG_15_202209061/5/16386');
    expect(manifestPath('16385', './PG_15_202209061/5/16386')).toBe('pg_tblspc/16385/PG_15_202209061/5/16386');
  });

  it('uses Encoded-Path for a name that is not UTF-8, and a later entry replaces an earlier one', () => {
    const b = new BackupManifestBuilder();
    b.addFile(Buffer.from([0x66, 0xff, 0x2f, 0x61]), 3, 0, 0x01020304);
    b.addFile('a"b\n', 1, 86400, 0);
    b.addFile('a"b\n', 2, 86400, 5);
    const text = renderManifest(b, [{ timeline: 1, startLsn: '0/2000028', endLsn: '0/20000100' }]).toString('utf8');
    expect(text).toContain('{ "Encoded-Path": "66ff2f61", "Size": 3, "Last-Modified": "1970-01-01 00:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "04030201" }');
    expect(text).toContain('{ "Path": "a\\"b\\n", "Size": 2, "Last-Modified": "1970-01-02 00:00:00 GMT"');
    expect(text).toContain('{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/20000100" }');
    const parsed = parseBackupManifest(text);
    expect([...parsed.files.keys()]).toEqual([Buffer.from([0x66, 0xff, 0x2f, 0x61]).toString('utf8'), 'a"b\n']);
    expect(parsed.files.get('a"b\n')).toMatchObject({ size: 2, algorithm: 'CRC32C', checksum: '05000000' });
  });

  it('refuses a manifest whose bytes do not match its Manifest-Checksum, or that names a path twice', () => {
    const b = new BackupManifestBuilder();
    b.addFile('PG_VERSION', 3, 0, 7);
    const good = renderManifest(b, []);
    expect(parseBackupManifest(good).files.get('PG_VERSION')?.size).toBe(3);
    const altered = Buffer.from(good.toString('utf8').replace('"Size": 3', '"Size": 4'), 'utf8');
    expect(() => parseBackupManifest(altered)).toThrow(/invalid backup_manifest: manifest checksum mismatch/);
    expect(() => parseBackupManifest(good.subarray(0, good.length - 1))).toThrow(/newline-terminated/);
    // a duplicate with a correct checksum
    const dup = good.toString('utf8').replace(/^(\{ "Path": .*)$/m, '$1,\n$1').split('"Manifest-Checksum"')[0]!;
    const sum = createHash('sha256').update(dup).digest('hex');
    expect(() => parseBackupManifest(`${dup}"Manifest-Checksum": "${sum}"}\n`)).toThrow(/duplicate path name/);
  });
});

describe.skipIf(requireTool('PostgreSQL 15', postgresAvailable()))('backup_manifest against PostgreSQL 15', () => {
  let cluster: PgCluster;
  let pgDir: string;
  let pgManifest: Buffer;
  let parsed: ParsedBackupManifest;

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g;");
    pgDir = await baseBackup(cluster, undefined, ['--manifest-checksums=CRC32C']);
    pgManifest = readFileSync(join(pgDir, 'backup_manifest'));
    parsed = parseBackupManifest(pgManifest);
  }, 120_000);

  afterAll(async () => {
    await cluster?.remove();
  });

  it("parses pg_basebackup's manifest and recomputes every file's size and CRC32C", () => {
    expect(parsed.version).toBe(1);
    expect(parsed.files.size).toBeGreaterThan(500);
    expect(parsed.walRanges).toHaveLength(1);
    expect(parsed.walRanges[0]!.timeline).toBe(1);
    const onDisk = walk(pgDir).filter((p) => p !== 'backup_manifest').sort();
    expect([...parsed.files.keys()].sort()).toEqual(onDisk);
    for (const [path, entry] of parsed.files) {
      expect(entry.algorithm).toBe('CRC32C');
      expect(statSync(join(pgDir, path)).size, path).toBe(entry.size);
      expect(crcOf(join(pgDir, path)), path).toBe(entry.checksum);
    }
  });

  it("renders PostgreSQL's own entries byte for byte", () => {
    const b = new BackupManifestBuilder();
    for (const e of parsed.files.values()) {
      b.addFile(e.path, e.size, gmtSeconds(e.lastModified!), Buffer.from(e.checksum, 'hex').readUInt32LE());
    }
    expect(renderManifest(b, parsed.walRanges).toString('utf8')).toBe(pgManifest.toString('utf8'));
  });

  it('parses Encoded-Path entries of pg_basebackup --manifest-force-encode', async () => {
    const dir = await baseBackup(cluster, undefined, ['--manifest-checksums=CRC32C', '--manifest-force-encode']);
    const text = readFileSync(join(dir, 'backup_manifest'), 'utf8');
    expect(text).toContain('"Encoded-Path"');
    const forced = parseBackupManifest(text);
    expect(forced.files.get('PG_VERSION')?.checksum).toBe(crcOf(join(dir, 'PG_VERSION')));
    expect(forced.files.size).toBe(walk(dir).length - 1);
  });

  it('builds a manifest from the files that pg_verifybackup -n accepts, and that catches a changed file', async () => {
    const dir = await baseBackup(cluster, undefined, ['--no-manifest']);
    const b = new BackupManifestBuilder();
    for (const path of walk(dir)) {
      const st = statSync(join(dir, path));
      b.addFile(path, st.size, st.mtimeMs / 1000, Buffer.from(crcOf(join(dir, path)), 'hex').readUInt32LE());
    }
    writeFileSync(join(dir, 'backup_manifest'), renderManifest(b, parsed.walRanges));
    const ok = await pgVerifyBackup(dir);
    expect(ok.out).toContain('backup successfully verified');
    expect(ok.code).toBe(0);

    const victim = join(dir, 'PG_VERSION');
    writeFileSync(victim, readFileSync(victim, 'utf8').replace('15', '51'));
    const bad = await pgVerifyBackup(dir);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/checksum mismatch for file "PG_VERSION"/);
    rmSync(dir, { recursive: true, force: true });
  });
});

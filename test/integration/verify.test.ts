// `barman-cloud verify` on the directory store and on S3 (moto): backups built here part by part
// (several data parts, a tablespace, parts.json, a backup_manifest as the last data member, WAL
// segments) pass when intact, and each kind of damage gives a line naming it and exit 1.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tarStream from 'tar-stream';
import { crc32c } from '@node-rs/crc32';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv, type BinResult } from '../helpers/run-bin.ts';
import {
  requireTool, postgresAvailable, startCluster, toolCommand, pgTempDir, type PgCluster,
} from '../helpers/postgres.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { encodePartsList } from '../../src/catalog/parts-list.ts';
import { BackupManifestBuilder } from '../../src/backup/manifest.ts';
import { renderManifest } from '../helpers/manifest.ts';
import { loadCodec } from '../../src/compression/index.ts';
import { hex8 } from '../../src/xlog.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const SEG = 1024 * 1024;
const SERVER = 'srv';
const ID = '20261201T000000';
const TBS_OID = 16384;
const SYSTEMID = '7713454245083309119';

interface Member {
  name: string;
  body: Buffer;
}

function tar(members: Member[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((res, rej) => {
    pack.on('end', () => res(Buffer.concat(chunks)));
    pack.on('error', rej);
  });
  for (const m of members) pack.entry({ name: m.name, size: m.body.length, mode: 0o600, mtime: new Date(1_700_000_000_000) }, m.body);
  pack.finalize();
  return done;
}

const seg = (tli: number, n: number) => `${hex8(tli)}00000000${hex8(n)}`;
const walKey = (name: string) => `${SERVER}/wals/${name.slice(0, 16)}/${name}`;

interface BackupShape {
  /** Codec of the parts (none: plain .tar). */
  codec?: 'lz4';
  /** Write parts.json and backup_manifest (ours) or not (barman's). */
  checksums?: boolean;
  /** Segments archived, [timeline, first, last] runs. */
  wal?: [number, number, number][];
  history?: Record<number, string>;
  /** Add a file to data_0001.tar that backup_manifest does not list. */
  unlisted?: boolean;
}

/** Writes one DONE backup (3 data parts, a tablespace part) plus WAL under `<prefix>/srv/`. */
async function writeBackup(store: ObjectStore, prefix: string, shape: BackupShape = {}): Promise<{ files: Map<string, Buffer> }> {
  const checksums = shape.checksums ?? true;
  const files = new Map<string, Buffer>();
  const file = (name: string, size: number) => {
    const body = randomBytes(size);
    // a control file of the cluster backup.info names (docs/format.md#restore-system-id)
    if (name === 'global/pg_control') body.writeBigUInt64LE(BigInt(SYSTEMID));
    files.set(name, body);
    return { name, body };
  };
  const dataParts: Member[][] = [
    [file('PG_VERSION', 3), file('global/pg_control', 8192), file('base/1/1259', 40_000)],
    [file('base/1/2608', 70_000), file('base/1/2609', 30_000)],
    [file('base/5/16400', 90_000), file('backup_label', 200)],
  ];
  const tbs: Member[] = [file('PG_15_202209061/5/16401', 50_000)];
  files.set(`pg_tblspc/${TBS_OID}/PG_15_202209061/5/16401`, files.get('PG_15_202209061/5/16401')!);
  files.delete('PG_15_202209061/5/16401');
  if (checksums) {
    const mb = new BackupManifestBuilder();
    for (const [path, body] of files) mb.addFile(path, body.length, 1_700_000_000, crc32c(body));
    const manifest = renderManifest(mb, [{ timeline: 1, startLsn: '0/200028', endLsn: '0/400100' }]);
    dataParts[2]!.push({ name: 'backup_manifest', body: manifest });
  }
  if (shape.unlisted) dataParts[1]!.push({ name: 'base/1/99999', body: randomBytes(1000) });
  const sfx = shape.codec ? '.lz4' : '';
  const codec = shape.codec ? await loadCodec(shape.codec) : undefined;
  const stored: { name: string; body: Buffer }[] = [];
  for (const [i, members] of dataParts.entries()) {
    const raw = await tar(members);
    stored.push({ name: `${i === 0 ? 'data' : `data_${String(i).padStart(4, '0')}`}.tar${sfx}`, body: codec ? await codec.compress(raw) : raw });
  }
  const rawTbs = await tar(tbs);
  stored.unshift({ name: `${TBS_OID}.tar${sfx}`, body: codec ? await codec.compress(rawTbs) : rawTbs });
  const base = `${prefix}${SERVER}/base/${ID}/`;
  for (const s of stored) await store.put(base + s.name, s.body);
  if (checksums) {
    const list = encodePartsList({
      backupId: ID,
      parts: stored.map((s) => ({ name: s.name, size: s.body.length, sha256: createHash('sha256').update(s.body).digest('hex') })),
    });
    await store.put(`${base}parts.json`, Buffer.from(list));
  }
  const info = newBackupInfo(ID, {
    status: 'DONE', timeline: 1, begin_wal: seg(1, 2), end_wal: seg(1, 4), begin_xlog: '0/200028', end_xlog: '0/400100',
    xlog_segment_size: SEG, version: 150000, server_name: 'cloud', systemid: SYSTEMID,
    begin_time: '2026-12-01 00:00:00+00:00', end_time: '2026-12-01 00:00:05+00:00', backup_label: null,
    tablespaces: [{ name: 'tbs1', oid: TBS_OID, location: '/srv/tbs1' }],
  });
  await store.put(`${base}backup.info`, Buffer.from(serializeBackupInfo(info)));
  const gz = await loadCodec('gzip');
  for (const [tli, first, last] of shape.wal ?? [[1, 2, 6]]) {
    for (let n = first; n <= last; n++) {
      const body = Buffer.alloc(SEG, n);
      // every other segment gzip-compressed: any suffix counts
      if (n % 2) await store.put(`${prefix}${walKey(seg(tli, n))}.gz`, await gz.compress(body));
      else await store.put(`${prefix}${walKey(seg(tli, n))}`, body);
    }
  }
  for (const [tli, text] of Object.entries(shape.history ?? {})) {
    await store.put(`${prefix}${SERVER}/wals/${hex8(Number(tli))}.history`, Buffer.from(text));
  }
  return { files };
}

interface Target {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A store and the URL (with a fresh path) for one test. */
  fresh(): Promise<{ store: ObjectStore; prefix: string; url: string; extra: string[]; env: NodeJS.ProcessEnv }>;
}

function fileTarget(): Target {
  let root = '';
  let n = 0;
  return {
    name: 'directory store',
    async setup() {
      root = mkdtempSync(join(tmpdir(), 'bc-verify-'));
    },
    async teardown() {
      rmSync(root, { recursive: true, force: true });
    },
    async fresh() {
      const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
      const prefix = `t${++n}/`;
      return { store, prefix, url: `file://${root}/t${n}`, extra: [], env: cleanEnv() };
    },
  };
}

function s3Target(): Target {
  let moto: ServerHandle;
  let n = 0;
  return {
    name: 'S3 (moto)',
    async setup() {
      moto = await startMoto();
      await createS3Bucket(moto.url, 'verify');
    },
    async teardown() {
      await moto?.stop();
    },
    async fresh() {
      const store = await openObjectStore({
        provider: 'aws-s3', bucket: 'verify', retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      });
      const prefix = `t${++n}/`;
      return { store, prefix, url: `s3://verify/t${n}`, extra: ['--endpoint-url', moto.url], env: cleanEnv(MOTO_ENV) };
    },
  };
}

const targets = [fileTarget(), s3Target()];

describe.each(targets)('barman-cloud verify on the $name', (target) => {
  beforeAll(() => target.setup(), 60_000);
  afterAll(() => target.teardown());

  async function scenario(
    shape: BackupShape, damage?: (store: ObjectStore, base: string) => Promise<void>, args: string[] = [], timeoutMs = 60_000,
  ): Promise<BinResult> {
    const t = await target.fresh();
    try {
      await writeBackup(t.store, t.prefix, shape);
      await damage?.(t.store, `${t.prefix}${SERVER}/base/${ID}/`);
      return await runBin('barman-cloud', ['verify', ...t.extra, ...args, t.url, SERVER], { env: t.env, timeoutMs });
    } finally {
      await t.store.close();
    }
  }

  it('passes a clean backup: every part, member and segment checked, exit 0', async () => {
    const r = await scenario({});
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^backup ${ID}: OK: 4 parts, [0-9.]+ MB, 9 members, WAL ${seg(1, 2)}\\.\\.${seg(1, 4)}\\n`));
    expect(r.stdout).toContain(`wal: OK: 5 segments checked, up to ${seg(1, 6)} on timeline 1\n`);
    expect(r.stdout).toMatch(/verify srv: OK: 1 backup verified, 0 problems\n$/);
    expect(r.stdout).not.toContain('unavailable');
  });

  it('passes a clean lz4 backup', async () => {
    const r = await scenario({ codec: 'lz4' });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`backup ${ID}: OK: 4 parts`);
  });

  it('a flipped byte in an uncompressed part: the part (SHA-256) and the file (CRC-32C) are named, exit 1', async () => {
    const r = await scenario({}, async (store, base) => {
      const body = await store.getBuffer(`${base}data_0001.tar`);
      body[512 + 1000] ^= 0x01; // inside base/1/2608's content: the tar still parses
      await store.put(`${base}data_0001.tar`, body);
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`backup ${ID}: FAILED (2 problems)`);
    expect(r.stdout).toMatch(/PROBLEM checksum-mismatch: backup \S+: part data_0001\.tar has SHA-256 [0-9a-f]{64}, parts\.json says [0-9a-f]{64}\n/);
    expect(r.stdout).toMatch(/PROBLEM file-checksum-mismatch: file base\/1\/2608 has CRC-32C [0-9a-f]{8}, backup_manifest says [0-9a-f]{8}\n/);
    expect(r.stdout).toMatch(/verify srv: FAILED: 1 backup verified, 2 problems\n$/);
  });

  it('a flipped byte in a tar header: the part does not parse, and its SHA-256 is still compared over all its bytes', async () => {
    const r = await scenario({}, async (store, base) => {
      const body = await store.getBuffer(`${base}data_0001.tar`);
      body[10] ^= 0x20; // the first member's name: the header checksum no longer matches
      await store.put(`${base}data_0001.tar`, body);
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/PROBLEM unreadable-part: backup \S+: part data_0001\.tar: not a readable tar: .+\n/);
    // the rest of the object was read after the parse failed: the sizes agree, the hashes do not
    expect(r.stdout).toMatch(/PROBLEM checksum-mismatch: backup \S+: part data_0001\.tar has SHA-256 [0-9a-f]{64}, parts\.json says [0-9a-f]{64}\n/);
    expect(r.stdout).not.toContain('size-mismatch');
  });

  it('a flipped byte in an lz4 part: the codec error and the SHA-256 mismatch are both named, exit 1', async () => {
    const r = await scenario({ codec: 'lz4' }, async (store, base) => {
      const body = await store.getBuffer(`${base}data_0002.tar.lz4`);
      body[Math.floor(body.length / 2)] ^= 0x55;
      await store.put(`${base}data_0002.tar.lz4`, body);
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/PROBLEM unreadable-part: backup \S+: part data_0002\.tar\.lz4: cannot be decompressed \(lz4\): .+\n/);
    expect(r.stdout).toMatch(/PROBLEM checksum-mismatch: backup \S+: part data_0002\.tar\.lz4 has SHA-256 [0-9a-f]{64}, parts\.json says [0-9a-f]{64}\n/);
  });

  it('a deleted middle part: named from parts.json, and its files from backup_manifest, exit 1', async () => {
    const r = await scenario({}, (store, base) => store.delete(`${base}data_0001.tar`));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM missing-part: backup ${ID}: part data_0001.tar is listed in parts.json but missing from the store\n`);
    expect(r.stdout).toContain('PROBLEM missing-file: file base/1/2608 is in backup_manifest but in no archive\n');
    expect(r.stdout).toContain('PROBLEM missing-file: file base/1/2609 is in backup_manifest but in no archive\n');
  });

  it('a deleted middle part of a backup without parts.json: the gap in the numbering is named, exit 1', async () => {
    const r = await scenario({ checksums: false }, (store, base) => store.delete(`${base}data_0001.tar`));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM part-gap: backup ${ID}: part data_0001.tar is missing (the archive has later parts)\n`);
  });

  it('an empty part: named, exit 1', async () => {
    const r = await scenario({}, (store, base) => store.put(`${base}data_0001.tar`, Buffer.alloc(0)));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM empty-part: backup ${ID}: part data_0001.tar is empty (0 bytes)\n`);
  });

  it('a part cut short (no parts.json to compare with): the tar does not parse, exit 1', async () => {
    const r = await scenario({ checksums: false }, async (store, base) => {
      const body = await store.getBuffer(`${base}data.tar`);
      await store.put(`${base}data.tar`, body.subarray(0, 512 + 4000));
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/PROBLEM unreadable-part: backup \S+: part data\.tar: not a readable tar: .+\n/);
  });

  it('a part cut at a member boundary (no parts.json): the missing end-of-archive marker is named, exit 1', async () => {
    const r = await scenario({ checksums: false }, async (store, base) => {
      const body = await store.getBuffer(`${base}data.tar`);
      await store.put(`${base}data.tar`, body.subarray(0, 1024)); // PG_VERSION's header and content only
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM unreadable-part: backup ${ID}: part data.tar: the tar has no end-of-archive marker (truncated?)\n`);
  });

  it('a second tar appended to a part (no parts.json): the member after the end is named, exit 1', async () => {
    // tarfile (barman) and GNU tar stop at the first tar's end and never list base/1/12345; without
    // the check verify read on and said OK.
    const r = await scenario({ checksums: false }, async (store, base) => {
      const body = await store.getBuffer(`${base}data_0001.tar`);
      await store.put(`${base}data_0001.tar`, Buffer.concat([body, await tar([{ name: 'base/1/12345', body: randomBytes(100) }])]));
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/PROBLEM unreadable-part: backup \S+: part data_0001\.tar: not a readable tar: a member follows the end of the tar \(a zero block at offset \d+\)\n/);
  });

  it('a part in the store that parts.json does not list, and a file that backup_manifest does not list: both named, exit 1', async () => {
    const r = await scenario({ unlisted: true }, async (store, base) => {
      await store.put(`${base}data_0003.tar`, await tar([{ name: 'base/1/12345', body: randomBytes(100) }]));
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM extra-part: backup ${ID}: part data_0003.tar is in the store but not in parts.json\n`);
    expect(r.stdout).toContain('PROBLEM unlisted-file: file base/1/99999 is in an archive but not in backup_manifest\n');
    expect(r.stdout).toContain('PROBLEM unlisted-file: file base/1/12345 is in an archive but not in backup_manifest\n');
  });

  it('a backup.info naming one tablespace OID twice: the backup is reported unreadable, exit 1', async () => {
    // Without the check the archive map took the OID once and the backup verified OK, although
    // restore would have written 16384.tar into both locations.
    const r = await scenario({}, async (store, base) => {
      const info = (await store.getBuffer(`${base}backup.info`)).toString('utf8');
      const twice = `tablespaces=[('tbs1', ${TBS_OID}, '/srv/tbs1'), ('tbs2', ${TBS_OID}, '/srv/tbs2')]`;
      expect(info).toMatch(/^tablespaces=\[.*\]$/m);
      await store.put(`${base}backup.info`, Buffer.from(info.replace(/^tablespaces=.*$/m, twice)));
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM unreadable-backup-info: backup ${ID}: backup.info cannot be read: tablespace oid ${TBS_OID} appears twice in tablespaces\n`);
  });

  it('a missing WAL segment inside the backup range: named under the backup, exit 1', async () => {
    const r = await scenario({ wal: [[1, 2, 2], [1, 4, 6]] });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`backup ${ID}: FAILED (1 problem)`);
    expect(r.stdout).toContain(`PROBLEM missing-wal: WAL segment ${seg(1, 3)} missing (range of backup ${ID})\n`);
  });

  it('a missing WAL segment after the newest backup: named on the wal line, exit 1', async () => {
    const r = await scenario({ wal: [[1, 2, 4], [1, 6, 8]] });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`backup ${ID}: OK`);
    expect(r.stdout).toContain(`wal: FAILED (1 problem): 7 segments checked, up to ${seg(1, 8)} on timeline 1\n`);
    expect(r.stdout).toContain(`PROBLEM missing-wal: WAL segment ${seg(1, 5)} missing (after the end of backup ${ID})\n`);
  });

  it('follows a timeline switch recorded in a .history file, and names a segment missing on the new timeline', async () => {
    // Timeline 2 branched off timeline 1 inside segment 5: TL1 up to 4, then TL2 from 5 on. TL1's
    // own segment 5 and 6 (written by the old primary) are not needed.
    const history = { 2: '1\t0/580000\tno recovery target specified\n' };
    const ok = await scenario({ wal: [[1, 2, 6], [2, 5, 8]], history });
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ok.stdout).toContain(`wal: OK: 7 segments checked, up to ${seg(2, 8)} on timeline 2\n`);

    const gap = await scenario({ wal: [[1, 2, 6], [2, 5, 5], [2, 7, 8]], history });
    expect(gap.code).toBe(1);
    expect(gap.stdout).toContain(`PROBLEM missing-wal: WAL segment ${seg(2, 6)} missing (after the end of backup ${ID})\n`);

    // Without the history file, the branch point is unknown: said, not guessed.
    const lost = await scenario({ wal: [[1, 2, 6], [2, 5, 8]] });
    expect(lost.code).toBe(1);
    expect(lost.stdout).toContain('PROBLEM missing-history: timeline 2 has WAL segments but no 00000002.history');
  });

  it('a .history file switching at FFFFFFFF/FFFFFFFF: the 2^44 segments it asks for are one missing run, found at once, exit 1', async () => {
    // The store chooses the switch point; verify walked the range segment by segment and did not
    // finish (docs/format.md#wal-ranges).
    const r = await scenario({ wal: [[1, 2, 6], [2, 5, 8]], history: { 2: '1\tFFFFFFFF/FFFFFFFF\tno recovery target specified\n' } }, undefined, [], 20_000);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: '' });
    expect(r.stdout).toContain(`PROBLEM missing-wal: WAL 17592186044408 segments ${seg(1, 7)}..00000001FFFFFFFF00000FFE missing (after the end of backup ${ID})\n`);
  });

  it('a .history file PostgreSQL refuses (parents not increasing, or not below its own timeline) is invalid-history, not followed', async () => {
    for (const text of ['1\t0/580000\tx\n2\t0/600000\tx\n', '1\t0/580000\tx\n1\t0/600000\tx\n', '0\t0/580000\tx\n', '3\t0/580000\tx\n']) {
      const r = await scenario({ wal: [[1, 2, 6], [2, 5, 8]], history: { 2: text } });
      expect({ text, code: r.code, stderr: r.stderr }).toEqual({ text, code: 1, stderr: '' });
      expect(r.stdout).toContain('PROBLEM invalid-history: history file 00000002.history cannot be read\n');
      expect(r.stdout).toContain(`wal: FAILED (1 problem): 5 segments checked, up to ${seg(1, 6)} on timeline 1\n`);
    }
    // CRLF line ends are still read (PostgreSQL's parser skips the white space)
    const crlf = await scenario({ wal: [[1, 2, 6], [2, 5, 8]], history: { 2: '1\t0/580000\tno recovery target specified\r\n' } });
    expect({ code: crlf.code, stderr: crlf.stderr }).toEqual({ code: 0, stderr: '' });
    expect(crlf.stdout).toContain(`wal: OK: 7 segments checked, up to ${seg(2, 8)} on timeline 2\n`);
  });

  it('--format json: one document with each backup, its problems and the WAL verdict', async () => {
    const r = await scenario({}, (store, base) => store.put(`${base}data_0001.tar`, Buffer.alloc(0)), ['--format', 'json']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(['backups', 'ok', 'problems', 'server_name', 'wal']);
    expect(doc).toMatchObject({ server_name: SERVER, ok: false, problems: 3 });
    const [b] = doc.backups as Record<string, unknown>[];
    expect(b).toMatchObject({
      backup_id: ID, backup_name: null, status: 'DONE', result: 'failed', timeline: 1, begin_wal: seg(1, 2), end_wal: seg(1, 4),
      part_checksums: 'verified', file_checksums: 'verified', parts: 4, members: 7,
    });
    expect(b!.problems).toEqual([
      { kind: 'empty-part', backup_id: ID, part: 'data_0001.tar', message: `backup ${ID}: part data_0001.tar is empty (0 bytes)` },
      ...['base/1/2608', 'base/1/2609'].map((f) => ({
        kind: 'missing-file', backup_id: ID, file: f, message: `file ${f} is in backup_manifest but in no archive`,
      })),
    ]);
    expect(doc.wal).toEqual({ checked_segments: 5, newest_segment: seg(1, 6), timeline: 1, problems: [] });
  });

  it('a backup without parts.json and backup_manifest (as barman writes them) verifies, saying checksums are unavailable', async () => {
    const r = await scenario({ checksums: false });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`backup ${ID}: OK: 4 parts`);
    expect(r.stdout).toContain('part checksums unavailable (no parts.json), file checksums unavailable (no backup_manifest)');
  });
});

// Real backups of a PostgreSQL 15 with a tablespace, archiving through our wal-archive: one taken by
// Debian's barman-cloud-backup 3.4 (-S 1MB, so archives have `_0001` parts; no parts.json, no
// backup_manifest) and one by ours, both verified on the same moto bucket.
const BARMAN_BACKUP = '/usr/bin/barman-cloud-backup';
const skipPg = requireTool('PostgreSQL 15', postgresAvailable()) ||
  requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync(BARMAN_BACKUP));

describe.skipIf(skipPg)('barman-cloud verify on real PostgreSQL 15 backups (moto)', () => {
  let moto: ServerHandle;
  let primary: PgCluster;
  const url = () => ['--endpoint-url', moto.url, 's3://pgverify/pg', SERVER];
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'pgverify');
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', url())} %p` },
      serverEnv: { ...MOTO_ENV },
    });
    const tbs = pgTempDir('bc-verify-tbs-');
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbs}'`);
    await primary.psql("CREATE TABLE t (id int primary key, v text) TABLESPACE tbs1; INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 30000) g;");
    await primary.pgbench(['-i', '-s', '1', '-q']);
  }, 120_000);

  afterAll(async () => {
    await primary?.remove();
    await moto?.stop();
  });

  it("barman 3.4's backup verifies (tars, WAL) and the report says its checksums are unavailable", async () => {
    const b = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(BARMAN_BACKUP, ['-S', '1MB', '--immediate-checkpoint', '-n', 'b34', ...url()], { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(b).toEqual({ code: 0, stderr: '' });
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const r = await runBin('barman-cloud', ['verify', ...url(), 'b34'], { env: env(), timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^backup \d{8}T\d{6} \(b34\): OK: \d+ parts, .*; part checksums unavailable \(no parts\.json\), file checksums unavailable \(no backup_manifest\)\n/);
    expect(Number(/OK: (\d+) parts/.exec(r.stdout)![1])).toBeGreaterThan(2);
    expect(r.stdout).toMatch(/verify srv: OK: 1 backup verified, 0 problems\n$/);
  }, 180_000);

  it('our own backup of the same cluster verifies clean, with parts.json and backup_manifest checked', async () => {
    const b = await runBin('barman-cloud-backup', ['--lz4', '--immediate-checkpoint', '-n', 'ours', ...url()], { env: env(), timeoutMs: 120_000 });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const r = await runBin('barman-cloud', ['verify', '--format', 'json', ...url()], { env: env(), timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    type Doc = { ok: boolean; backups: { backup_name: string; result: string; members: number; part_checksums: string; file_checksums: string }[]; wal: { checked_segments: number } };
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.ok).toBe(true);
    expect(doc.backups.map((x) => [x.backup_name, x.result, x.part_checksums, x.file_checksums])).toEqual([
      ['b34', 'ok', 'unavailable', 'unavailable'],
      ['ours', 'ok', 'verified', 'verified'],
    ]);
    expect(doc.backups[1]!.members).toBeGreaterThan(500);
    expect(doc.wal.checked_segments).toBeGreaterThan(1);
  }, 180_000);
});

// End-to-end checksums (#12 item 3) with a real PostgreSQL 15, a tablespace and writes during the
// backup, on the directory store and on moto:
//   * backup with several data parts (-S) → parts.json matches the stored objects → restore →
//     `pg_verifybackup -n` passes on the restored copy unchanged → the copy starts with every row;
//   * damaged copies of those backups (a flipped byte, a deleted middle part, an emptied part, a
//     truncated part, an extra part, two parts swapped, a file altered behind a consistent parts.json, an empty
//     part without parts.json) → restore exits 4 with one line naming the part or file;
//   * a backup without parts.json restores with an info line that checksums are unavailable;
//   * Debian's barman-cli-cloud 3.4 lists, shows, restores (into a copy pg_verifybackup accepts) and
//     deletes a backup of ours carrying both records (backup.info rewritten in the 3.4 compatibility
//     mode, since 3.4 cannot read the newer keys), leaving parts.json behind; our restore reads a
//     backup of barman 3.4, which has neither record.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerHandle } from '../helpers/servers.ts';
import { cleanEnv, runBarman, runBin } from '../helpers/run-bin.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { tarHeaders } from '../helpers/tar.ts';
import {
  pgTempDir, pgVerifyBackup, postgresAvailable, requireTool, roundTripRows, startCluster, startRestoredCopy, toolCommand, type PgCluster,
} from '../helpers/postgres.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { parseBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BUCKET = 'integrity';

const BARMAN34 = existsSync('/usr/bin/barman-cloud-backup');


const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The first regular file member of an uncompressed tar with at least `minSize` bytes of data. */
function fileMember(tar: Buffer, minSize: number): { path: string; offset: number; size: number } {
  const m = tarHeaders(tar).find((x) => (x.type === '0' || x.type === '\0') && x.size >= minSize);
  if (!m) throw new Error('no file member large enough');
  return { path: m.name, offset: m.offset, size: m.size };
}

describe.skipIf(skip)('end-to-end checksums: backup_manifest and parts.json with PostgreSQL 15', () => {
  let moto: ServerHandle;
  let primary: PgCluster;
  let fileRoot: string;
  const clusters: PgCluster[] = [];
  const stores: Record<string, ObjectStore> = {};
  /** Store arguments of each store kind; `server` lets damage tests use copies under other names. */
  const where = {
    file: (server = 'srv') => [`file://${fileRoot}`, server],
    moto: (server = 'srv') => ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, server],
  };
  const storePrefix = { file: '', moto: 'pg/' };
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });
  /** The backup each round trip took: store kind → { id, part names }. */
  const taken: Record<string, { id: string; tbsOid: string; parts: string[]; codec: string }> = {};

  beforeAll(async () => {
    ({ moto, store: stores.moto } = await startMotoBucket(BUCKET));
    fileRoot = pgTempDir('bc-integrity-store-');
    stores.file = await openObjectStore({ provider: 'file', bucket: fileRoot, retry: DEFAULT_RETRY });
    const tbsDir = pgTempDir('bc-integrity-tbs-');
    // WAL goes to both stores, so each round trip recovers from its own store.
    const archive = `${toolCommand('barman-cloud-wal-archive', ['--lz4', ...where.file()])} %p && ` +
      `${toolCommand('barman-cloud-wal-archive', ['--lz4', ...where.moto()])} %p`;
    primary = await startCluster({ conf: { archive_mode: 'on', archive_command: archive }, serverEnv: { ...MOTO_ENV } });
    clusters.push(primary);
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbsDir}'`);
    await primary.psql(
      "CREATE TABLE t (id int primary key, phase text) TABLESPACE tbs1; " +
        "INSERT INTO t SELECT g, 'before the backup, row ' || g FROM generate_series(1, 60000) g;",
    );
    await primary.pgbench(['-i', '-s', '2', '-q']);
  }, 120_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    for (const s of Object.values(stores)) await s.close();
    await moto?.stop();
  });

  it.each([
    ['file', 'none', ['-S', '8MB']],
    ['moto', 'lz4', ['--lz4', '-S', '1MB']],
  ] as const)('%s store, %s, several parts: backup → parts.json → restore → pg_verifybackup -n → every row back', async (kind, codec, flags) => {
    const load = primary.pgbench(['-c', '2', '-T', '3', '-n']);
    const b = await runBin('barman-cloud-backup', [...flags, '--immediate-checkpoint', '-n', `bk-${kind}`, '-J', '2', ...where[kind]()], { env: env(), timeoutMs: 180_000 });
    await load;
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...where[kind](), `bk-${kind}`], { env: env() });
    const info = (JSON.parse(show.stdout) as { cloud: { backup_id: string; tablespaces: [string, number, string][] } }).cloud;
    const id = info.backup_id;
    const tbsOid = String(info.tablespaces[0]![1]);

    // parts.json names every stored part with its size and SHA-256, tablespaces first.
    const store = stores[kind]!;
    const prefix = `${storePrefix[kind]}srv/base/${id}/`;
    const objects = new Map<string, number>();
    for await (const e of store.list(prefix)) if (e.kind === 'object') objects.set(e.key.slice(prefix.length), e.size);
    const list = JSON.parse((await store.getBuffer(`${prefix}parts.json`)).toString('utf8')) as {
      version: number; backup_id: string; parts: { name: string; size: number; sha256: string }[];
    };
    expect(list).toMatchObject({ version: 1, backup_id: id });
    const names = list.parts.map((p) => p.name);
    expect(names[0]).toMatch(new RegExp(`^${tbsOid}\\.tar`));
    expect(names.filter((n) => n.startsWith('data')).length).toBeGreaterThanOrEqual(3);
    expect(names.sort()).toEqual([...objects.keys()].filter((k) => k !== 'parts.json' && k !== 'backup.info').sort());
    for (const p of list.parts) {
      expect([p.name, p.size]).toEqual([p.name, objects.get(p.name)]);
      expect([p.name, p.sha256]).toEqual([p.name, sha256(await store.getBuffer(`${prefix}${p.name}`))]);
    }
    taken[kind] = { id, tbsOid, parts: names, codec };

    await primary.psql(`INSERT INTO t VALUES (${100000 + Object.keys(taken).length}, 'after ${kind}')`);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const expected = await roundTripRows(primary);

    const work = pgTempDir('bc-integrity-restore-');
    const dest = join(work, 'data');
    const tbsNew = join(work, 'tbs');
    const r = await runBin('barman-cloud-restore', ['-v', '--tablespace', `tbs1:${tbsNew}`, ...where[kind](), id, dest], { env: env(), timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/INFO: Checked \d+ files against backup_manifest and \d+ parts against parts\.json/);
    expect(r.stderr).not.toMatch(/WARNING|ERROR/);

    // PostgreSQL's own verifier accepts the restored copy as it is (tablespace through pg_tblspc).
    const verified = await pgVerifyBackup(dest);
    expect(verified).toEqual({ code: 0, out: 'backup successfully verified\n' });

    const copy = await startRestoredCopy(dest, where[kind](), { serverEnv: { ...MOTO_ENV }, clusters, tablespaceDirs: [tbsNew] });
    expect(await roundTripRows(copy)).toEqual(expected);
    await copy.remove();
    rmSync(work, { recursive: true, force: true });
  }, 300_000);

  /**
   * Copy the backup of `kind` to server `server` in the same store, letting `damage` change the
   * objects (name → bytes; a missing name is not copied), then restore it.
   */
  async function restoreDamaged(
    kind: 'file' | 'moto',
    server: string,
    damage: (objects: Map<string, Buffer>, parts: string[]) => void,
    extra: string[] = [],
  ) {
    const { id, parts } = taken[kind]!;
    const store = stores[kind]!;
    const from = `${storePrefix[kind]}srv/base/${id}/`;
    const to = `${storePrefix[kind]}${server}/base/${id}/`;
    const objects = new Map<string, Buffer>();
    for await (const e of store.list(from)) if (e.kind === 'object') objects.set(e.key.slice(from.length), await store.getBuffer(e.key));
    damage(objects, parts.filter((p) => p.startsWith('data')).sort());
    for (const [name, data] of objects) await store.put(`${to}${name}`, data);
    const work = pgTempDir('bc-integrity-damaged-');
    const dest = join(work, 'data');
    const r = await runBin('barman-cloud-restore', [...extra, '--tablespace', `tbs1:${join(work, 'tbs')}`, ...where[kind](server), id, dest], { env: env(), timeoutMs: 180_000 });
    return { ...r, dest, cleanup: () => rmSync(work, { recursive: true, force: true }) };
  }

  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    c[at] = c[at]! ^ 0x5a;
    return c;
  };

  // [case, damage, the one line expected on stderr]
  const damages: [string, (o: Map<string, Buffer>, data: string[], kind: 'file' | 'moto') => void, RegExp][] = [
    ['a flipped byte in a middle part', (o, d, kind) => {
      const name = d[1]!;
      const part = o.get(name)!;
      // uncompressed: inside a file's data, where no tar parser can notice; lz4: mid-part
      const at = kind === 'file' ? fileMember(part, 4096).offset + 1000 : Math.floor(part.length / 2);
      o.set(name, flip(part, at));
    }, /ERROR: Barman cloud restore exception: part data_0001\.tar(\.lz4)? (is altered: SHA-256 [0-9a-f]{64}, parts\.json says [0-9a-f]{64}|cannot be read \(.*\)); the destination \S+ is incomplete\n$/],
    ['a deleted middle part', (o, d) => {
      o.delete(d[1]!);
    }, /ERROR: Barman cloud restore exception: part data_0001\.tar(\.lz4)? is missing from the store \(parts\.json lists it\)\n$/],
    ['an emptied part', (o, d) => {
      o.set(d[2]!, Buffer.alloc(0));
    }, /ERROR: Barman cloud restore exception: empty file: part data_0002\.tar(\.lz4)? has 0 bytes\n$/],
    ['a truncated part', (o, d) => {
      const part = o.get(d[1]!)!;
      o.set(d[1]!, part.subarray(0, part.length - 1000));
    }, /ERROR: Barman cloud restore exception: part data_0001\.tar(\.lz4)? has \d+ bytes in the store, parts\.json says \d+\n$/],
    ['an extra part parts.json does not list', (o, d) => {
      o.set(d[1]!.replace('_0001.', '_0009.'), o.get(d[1]!)!);
    }, /ERROR: Barman cloud restore exception: part data_0009\.tar(\.lz4)? is not listed in parts\.json \(an unknown part\)\n$/],
    ['two parts swapped', (o, d) => {
      const a = o.get(d[1]!)!;
      o.set(d[1]!, o.get(d[2]!)!);
      o.set(d[2]!, a);
    }, /ERROR: Barman cloud restore exception: part data_000[12]\.tar(\.lz4)? (has \d+ bytes in the store, parts\.json says \d+|is altered: .*)\n$/],
  ];

  describe.each(['file', 'moto'] as const)('damaged backups on the %s store', (kind) => {
    it.each(damages)('%s: restore exits 4 naming the part', async (what, damage, line) => {
      expect(taken[kind], 'the round trip took the backup').toBeDefined();
      const server = `dmg-${what.replace(/\W+/g, '-')}`;
      const r = await restoreDamaged(kind, server, (o, d) => damage(o, d, kind));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(line);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      r.cleanup();
    }, 120_000);
  });

  it('a file altered behind a consistent parts.json: restore exits 4 naming the file', async () => {
    let victim = '';
    const r = await restoreDamaged('file', 'dmg-file', (o, d) => {
      const part = o.get(d[1]!)!;
      const m = fileMember(part, 4096);
      victim = m.path;
      const altered = flip(part, m.offset + 100);
      o.set(d[1]!, altered);
      // parts.json rewritten to match: only the file checksums can tell
      const list = JSON.parse(o.get('parts.json')!.toString('utf8')) as { parts: { name: string; sha256: string }[] };
      list.parts.find((p) => p.name === d[1])!.sha256 = sha256(altered);
      o.set('parts.json', Buffer.from(JSON.stringify(list)));
    });
    expect(r.code, r.stderr).toBe(4);
    const escaped = victim.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(r.stderr).toMatch(new RegExp(`^.*ERROR: Barman cloud restore exception: file ${escaped} has CRC32C [0-9a-f]{8}, backup_manifest says [0-9a-f]{8}; the destination \\S+ is incomplete\\n$`));
    r.cleanup();
  }, 120_000);

  it('without parts.json: an empty part is still refused (exit 4), an intact backup restores with an info line', async () => {
    const empty = await restoreDamaged('file', 'nolist-empty', (o, d) => {
      o.delete('parts.json');
      o.set(d[1]!, Buffer.alloc(0));
    });
    expect(empty.code, empty.stderr).toBe(4);
    expect(empty.stderr).toMatch(/^.*ERROR: Barman cloud restore exception: empty file: part data_0001\.tar has 0 bytes\n$/);
    expect(existsSync(empty.dest) ? readdirSync(empty.dest) : []).toEqual([]);
    empty.cleanup();

    const intact = await restoreDamaged('file', 'nolist-ok', (o) => o.delete('parts.json'), ['-v']);
    expect(intact.code, intact.stderr).toBe(0);
    expect(intact.stderr).toMatch(/INFO: Backup \d{8}T\d{6} has no parts\.json \(taken by barman or an older barman-cloud-ts\): part and file checksums are unavailable\n/);
    intact.cleanup();
  }, 120_000);

  it.skipIf(requireTool('barman-cli-cloud 3.4', BARMAN34))('barman 3.4 lists, shows, restores and deletes our backup with parts.json and backup_manifest; ours restores 3.4\'s', async () => {
    const server = 'srv34';
    const b = await runBin('barman-cloud-backup', ['-z', '-S', '4MB', '--immediate-checkpoint', '-n', 'ours-for-34', ...where.moto(server)], { env: env(), timeoutMs: 180_000 });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    const store = stores.moto!;
    const base = `pg/${server}/base/`;
    const keys = async () => {
      const out: string[] = [];
      for await (const e of store.list(base)) if (e.kind === 'object') out.push(e.key.slice(base.length));
      return out.sort();
    };
    const id = (await keys())[0]!.split('/')[0]!;
    expect(await keys()).toEqual(expect.arrayContaining([`${id}/parts.json`, `${id}/data_0001.tar.gz`, `${id}/backup.info`]));
    // 3.4 cannot read the keys added after it: the compatibility mode leaves them out
    const infoKey = `${base}${id}/backup.info`;
    const info = parseBackupInfo(await store.getBuffer(infoKey));
    await store.put(infoKey, Buffer.from(serializeBackupInfo(info, { compat: '3.4' }), 'utf8'));

    const list = await runBarman('barman-cloud-backup-list', where.moto(server), env());
    expect({ code: list.code, stderr: list.stderr }).toEqual({ code: 0, stderr: '' });
    expect(list.stdout).toMatch(new RegExp(`^${id} .*ours-for-34`, 'm'));
    const show = await runBarman('barman-cloud-backup-show', [...where.moto(server), id], env());
    expect({ code: show.code, stderr: show.stderr }).toEqual({ code: 0, stderr: '' });
    expect(show.stdout).toContain(`Backup ${id}:`);

    const work = pgTempDir('bc-integrity-34-');
    const dest = join(work, 'data');
    const restored = await runBarman('barman-cloud-restore', ['--tablespace', `tbs1:${join(work, 'tbs')}`, ...where.moto(server), id, dest], env());
    expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: '' });
    // barman extracts the manifest as one more file, and its copy passes PostgreSQL's verifier
    expect(existsSync(join(dest, 'backup_manifest'))).toBe(true);
    expect(await pgVerifyBackup(dest)).toEqual({ code: 0, out: 'backup successfully verified\n' });

    // barman 3.4's own backup has neither record: ours restores it and says checksums are unavailable
    const theirs = await runBarman('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'theirs', ...where.moto(server)], env());
    expect({ code: theirs.code, stderr: theirs.stderr }).toEqual({ code: 0, stderr: '' });
    const dest2 = join(work, 'data2');
    const ours = await runBin('barman-cloud-restore', ['-v', '--tablespace', `tbs1:${join(work, 'tbs2')}`, ...where.moto(server), 'theirs', dest2], { env: env(), timeoutMs: 180_000 });
    expect(ours.code, ours.stderr).toBe(0);
    expect(ours.stderr).toMatch(/INFO: Backup \d{8}T\d{6} has no parts\.json \(taken by barman or an older barman-cloud-ts\): part and file checksums are unavailable\n/);
    expect(existsSync(join(dest2, 'backup_manifest'))).toBe(false);
    expect(existsSync(join(dest2, 'global', 'pg_control'))).toBe(true);

    // barman's delete removes the tars and backup.info and leaves the object it does not know
    const del = await runBarman('barman-cloud-backup-delete', ['-b', id, ...where.moto(server)], env());
    expect({ code: del.code, stderr: del.stderr }).toEqual({ code: 0, stderr: '' });
    expect((await keys()).filter((k) => k.startsWith(`${id}/`))).toEqual([`${id}/parts.json`]);
    const after = await runBarman('barman-cloud-backup-list', where.moto(server), env());
    expect(after.stdout).not.toContain(id);
    const ourList = await runBin('barman-cloud-backup-list', ['--format', 'json', ...where.moto(server)], { env: env() });
    expect({ code: ourList.code, stderr: ourList.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(ourList.stdout) as { backups_list: { backup_id: string; backup_name: string }[] }).backups_list.map((e) => e.backup_name)).toEqual(['theirs']);
    rmSync(work, { recursive: true, force: true });
  }, 300_000);
});

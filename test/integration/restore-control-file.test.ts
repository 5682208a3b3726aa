// A restore that fails after the data archive must not leave a directory PostgreSQL starts on
// (docs/format.md#restore-control-file): global/pg_control (the control file) is put in place
// last, only once every archive is extracted and checked. With a real PostgreSQL 15, a tablespace
// and the directory store:
//   * the tablespace part damaged (restore -J 1: data first, then the tablespace), or a data file
//     altered behind a consistent parts.json (only the backup_manifest check, after every archive,
//     can tell) → exit 4, the data directory is there but has no global/pg_control, and PostgreSQL
//     refuses to start on it (before the rule, it started, recovered and promoted, and the table in
//     the tablespace could not be read);
//   * a tablespace archive planting `.ssh/authorized_keys` beside its version directory (parts.json
//     gone, as barman stores a backup) → exit 4 before it is written, no global/pg_control,
//     PostgreSQL refuses to start (docs/format.md#restore-tablespace-members);
//   * a restore SIGKILLed once the data archive is extracted (its last member, backup_manifest, is
//     there) and the tablespace is not → no global/pg_control, PostgreSQL refuses to start;
//   * the undamaged backup restores global/pg_control with the member's bytes, mode and mtime,
//     and the owner of the file beside it, global/ keeps its recorded mtime, and the copy starts
//     with every row.
// And with hand-made tars (no PostgreSQL): a held-back member over 1 MiB is refused (exit 4), and
// a later member at the control file's name replaces it, as it replaces any file.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, exitOf, runBin, spawnBin } from '../helpers/run-bin.ts';
import { tarHeaders as members, tarOf, type TarHeader as Member } from '../helpers/tar.ts';
import {
  namedBackup, pgTempDir, postgresAvailable, refusedStart, requireTool, startArchivingCluster, startRestoredCopy, type PgCluster,
} from '../helpers/postgres.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());

describe.skipIf(skip)('restore puts global/pg_control in place last (PostgreSQL 15)', () => {
  let primary: PgCluster;
  let fileRoot: string;
  let store: ObjectStore;
  const clusters: PgCluster[] = [];
  const where = (server = 'srv') => [`file://${fileRoot}`, server];
  const env = () => cleanEnv({ ...primary.env });
  let id = '';
  let tbsOid = '';
  let parts: string[] = [];

  /** PostgreSQL set to recover from `dataDir` (as the DBA would) refuses to start: no control file. */
  const expectNoStart = async (dataDir: string) =>
    expect(await refusedStart(dataDir, where(), clusters)).toMatch(/could not open file "[^"]*global\/pg_control": No such file or directory/);
  let rows = '';

  beforeAll(async () => {
    fileRoot = pgTempDir('bc-control-store-');
    store = await openObjectStore({ provider: 'file', bucket: fileRoot, retry: DEFAULT_RETRY });
    const tbsDir = pgTempDir('bc-control-tbs-');
    primary = await startArchivingCluster(where());
    clusters.push(primary);
    await primary.psql(`CREATE TABLESPACE tbs1 LOCATION '${tbsDir}'`);
    await primary.psql("CREATE TABLE t (id int primary key, v text) TABLESPACE tbs1; INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 20000) g;");
    // archived once before the backup, so that the server's directory in the store is the server user's
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    // several data parts: global/pg_control sits in the last, before backup_label and backup_manifest
    const info = await namedBackup(where(), 'bk', env(), ['-S', '4MB']);
    id = info.backup_id;
    tbsOid = String(info.tablespaces![0]![1]);
    for await (const e of store.list(`srv/base/${id}/`)) if (e.kind === 'object') parts.push(e.key.slice(`srv/base/${id}/`.length));
    parts = parts.filter((p) => p.endsWith('.tar')).sort();
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    rows = await primary.psql('SELECT count(*), sum(id) FROM t');
  }, 240_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    await store?.close();
  });

  /** The last data part (data_NNNN.tar in part order) and its members. */
  async function lastDataPart(server = 'srv'): Promise<{ name: string; tar: Buffer; members: Member[] }> {
    const data = parts.filter((p) => p.startsWith('data')).sort((a, b) => (/_(\d+)/.exec(a)?.[1] ?? '0').localeCompare(/_(\d+)/.exec(b)?.[1] ?? '0', 'en', { numeric: true }));
    const name = data.at(-1)!;
    const tar = await store.getBuffer(`${server}/base/${id}/${name}`);
    return { name, tar, members: members(tar) };
  }

  /**
   * Copy the backup to `server`, the part `part` with one byte flipped at `at(bytes)` (and parts.json
   * rewritten to match when `consistent`); restore it with -J 1.
   */
  async function restoreDamaged(server: string, part: string, at: (tar: Buffer) => number, consistent: boolean) {
    const objects = new Map<string, Buffer>();
    for (const name of [...parts, 'backup.info', 'parts.json']) objects.set(name, await store.getBuffer(`srv/base/${id}/${name}`));
    const bytes = Buffer.from(objects.get(part)!);
    const i = at(bytes);
    bytes[i] = bytes[i]! ^ 0x5a;
    objects.set(part, bytes);
    if (consistent) {
      const list = JSON.parse(objects.get('parts.json')!.toString('utf8')) as { parts: { name: string; sha256: string }[] };
      list.parts.find((p) => p.name === part)!.sha256 = createHash('sha256').update(bytes).digest('hex');
      objects.set('parts.json', Buffer.from(JSON.stringify(list)));
    }
    for (const [name, b] of objects) await store.put(`${server}/base/${id}/${name}`, b);
    const work = pgTempDir('bc-control-damaged-');
    const dest = join(work, 'data');
    const r = await runBin('barman-cloud-restore', ['-J', '1', '--tablespace', `tbs1:${join(work, 'tbs')}`, ...where(server), id, dest], { env: env(), timeoutMs: 180_000 });
    return { ...r, dest, work };
  }

  /** Where to flip a byte: inside the data of the first regular file of at least 8 KiB, not the control file. */
  const inAFile = (tar: Buffer) => members(tar).find((x) => x.type === '0' && x.size >= 8192 && x.name !== 'global/pg_control')!.offset + 100;

  // [case, server copy, part to damage, parts.json rewritten to match, what stderr says]
  const cases: [string, string, () => string, boolean, RegExp][] = [
    ['the tablespace part damaged', 'damaged-tbs', () => `${tbsOid}.tar`, false, /part \d+\.tar is altered: SHA-256/],
    ['a data file altered behind a consistent parts.json', 'damaged-data', () => 'data.tar', true, /backup_manifest/],
  ];
  it.each(cases)('%s: exit 4, no global/pg_control, PostgreSQL refuses to start', async (_what, server, partOf, consistent, says) => {
    const r = await restoreDamaged(server, partOf(), inAFile, consistent);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: Barman cloud restore exception: [^\n]*; the destination \S+ is incomplete\n$/);
    expect(r.stderr).toMatch(says);
    // the data archive was extracted, all but the control file
    expect(existsSync(join(r.dest, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(r.dest, 'global', 'pg_control'))).toBe(false);
    await expectNoStart(r.dest);
    rmSync(r.work, { recursive: true, force: true });
  }, 240_000);

  it('a restore killed after the data archive: no global/pg_control, PostgreSQL refuses to start', async () => {
    const work = pgTempDir('bc-control-killed-');
    const dest = join(work, 'data');
    const child = spawnBin('barman-cloud-restore', ['-J', '1', '--tablespace', `tbs1:${join(work, 'tbs')}`, ...where(), id, dest], { env: env() });
    const ended = exitOf(child);
    let done = false;
    void ended.then(() => (done = true));
    // -J 1: data first, then the tablespace; backup_manifest is the data archive's last member
    while (!done && !existsSync(join(dest, 'backup_manifest'))) await new Promise((r) => setTimeout(r, 2));
    child.kill('SIGKILL');
    expect(await ended).toBe('SIGKILL');
    expect(existsSync(join(dest, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(dest, 'global', 'pg_control'))).toBe(false);
    await expectNoStart(dest);
    rmSync(work, { recursive: true, force: true });
  }, 240_000);

  it('a tablespace archive planting a file beside its version directory (no parts.json, as barman stores a backup): exit 4, no global/pg_control, PostgreSQL refuses to start', async () => {
    const server = 'planted-tbs';
    for (const name of [...parts, 'backup.info']) await store.put(`${server}/base/${id}/${name}`, await store.getBuffer(`srv/base/${id}/${name}`));
    const version = members(await store.getBuffer(`srv/base/${id}/${tbsOid}.tar`))[0]!.name;
    expect(version).toMatch(/^PG_15_\d+$/);
    await store.put(`${server}/base/${id}/${tbsOid}.tar`, await tarOf([{ name: version, type: 'directory' }, { name: '.ssh/authorized_keys', data: 'ssh-ed25519 AAAA attacker\n' }]));
    const work = pgTempDir('bc-control-planted-');
    const dest = join(work, 'data');
    // -J 1: data first, then the tablespace (docs/format.md#restore-tablespace-members)
    const r = await runBin('barman-cloud-restore', ['-J', '1', '--tablespace', `tbs1:${join(work, 'tbs')}`, ...where(server), id, dest], { env: env(), timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/ERROR: Barman cloud restore exception: Refusing to extract '\.ssh\/authorized_keys' from the archive of tablespace tbs1 \(\d+\): it is not in a version directory/);
    expect(existsSync(join(work, 'tbs', '.ssh'))).toBe(false);
    expect(existsSync(join(dest, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(dest, 'global', 'pg_control'))).toBe(false);
    await expectNoStart(dest);
    rmSync(work, { recursive: true, force: true });
  }, 240_000);

  it('the undamaged backup: global/pg_control as archived (bytes, mode, mtime), global/ keeps its mtime, the copy starts with every row', async () => {
    const work = pgTempDir('bc-control-restore-');
    const dest = join(work, 'data');
    const tbsNew = join(work, 'tbs');
    const r = await runBin('barman-cloud-restore', ['--tablespace', `tbs1:${tbsNew}`, ...where(), id, dest], { env: env(), timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    const last = await lastDataPart();
    const control = last.members.find((m) => m.name === 'global/pg_control')!;
    expect(control.size).toBe(8192);
    expect(readFileSync(join(dest, 'global', 'pg_control'))).toEqual(last.tar.subarray(control.offset, control.offset + control.size));
    const st = lstatSync(join(dest, 'global', 'pg_control'));
    expect({ file: st.isFile(), mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) }).toEqual({ file: true, mode: control.mode, mtime: Math.floor(control.mtime) });
    // owner as for any member extracted (as root: the archive's user), e.g. the file beside it
    const beside = lstatSync(join(dest, 'global', 'pg_filenode.map'));
    expect({ uid: st.uid, gid: st.gid }).toEqual({ uid: beside.uid, gid: beside.gid });
    // global/ itself, from whichever data part holds its directory member
    let globalDir: Member | undefined;
    for (const p of parts.filter((n) => n.startsWith('data'))) {
      globalDir ??= members(await store.getBuffer(`srv/base/${id}/${p}`)).find((m) => m.name === 'global' && m.type === '5');
    }
    expect(Math.floor(lstatSync(join(dest, 'global')).mtimeMs / 1000)).toBe(Math.floor(globalDir!.mtime));
    const copy = await startRestoredCopy(dest, where(), { serverEnv: {}, clusters, tablespaceDirs: [tbsNew] });
    expect(await copy.psql('SELECT count(*), sum(id) FROM t')).toBe(rows);
    await copy.remove();
    rmSync(work, { recursive: true, force: true });
  }, 240_000);
});

describe('the held-back control file, with hand-made tars', () => {
  const ID = '20261129T050418';
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bc-control-tars-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** A barman-shaped backup whose data.tar holds `members`, restored from the directory store. */
  async function restoreTar(server: string, members: Parameters<typeof tarOf>[0]) {
    const dir = join(work, 'store', server, 'base', ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'backup.info'), handMadeDone());
    writeFileSync(join(dir, 'data.tar'), await tarOf([{ name: '.', type: 'directory' }, { name: 'global', type: 'directory' }, ...members]));
    const dest = join(work, `dest-${server}`);
    const r = await runBin('barman-cloud-restore', [`file://${join(work, 'store')}`, server, ID, dest], { env: cleanEnv() });
    return { ...r, dest };
  }

  it('refuses a global/pg_control over 1 MiB (it is held in memory): exit 4 naming the part, nothing at that name', async () => {
    const r = await restoreTar('big', [{ name: 'global/pg_control', data: 'x'.repeat((1 << 20) + 1) }]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: [^\n]*part data\.tar cannot be read \(member 'global\/pg_control' is over 1048576 bytes: not a PostgreSQL control file\)[^\n]*\n$/);
    expect(existsSync(join(r.dest, 'global', 'pg_control'))).toBe(false);
  });

  it('a later member at global/pg_control replaces the held one, as extraction replaces any file', async () => {
    const r = await restoreTar('later', [
      { name: 'global/pg_control', data: 'held' },
      { name: 'global/pg_control', type: 'symlink', linkname: 'elsewhere' },
    ]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readlinkSync(join(r.dest, 'global', 'pg_control'))).toBe('elsewhere');
    const again = await restoreTar('again', [
      { name: 'global/pg_control', data: 'first' },
      { name: './global/pg_control', data: 'second', mode: 0o640 },
    ]);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(join(again.dest, 'global', 'pg_control'), 'utf8')).toBe('second');
    expect(lstatSync(join(again.dest, 'global', 'pg_control')).mode & 0o777).toBe(0o640);
  });
});

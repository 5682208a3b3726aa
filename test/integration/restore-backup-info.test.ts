// restore compares the data archive with backup.info on the bytes it extracts anyway
// (docs/format.md#restore-backup-label, #restore-system-id, #restore-tablespaces): hand-made
// barman-shaped backups (no parts.json) on the directory store and on S3 (moto). What PostgreSQL 15
// does with such a directory is in restore-label.test.ts. `barman-cloud verify` reads the same
// members and must report a PROBLEM for every case restore refuses, and pass those it accepts
// (docs/commands/verify.md#as-on-disk names where it is stricter).
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD_DONE } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf, type TarMember } from '../helpers/tar.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import type { ServerHandle } from '../helpers/servers.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const ID = '20261129T050418';
const WAL = /^begin_wal=(\w+)$/m.exec(HEAD_DONE)![1]!;
const SYSTEMID = /^systemid=(\d+)$/m.exec(HEAD_DONE)![1]!;
// the label HEAD_DONE records, as the text PostgreSQL wrote
const LABEL = 'START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\nCHECKPOINT LOCATION: 0/602ADA8\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-29 05:04:57 UTC\nLABEL: Barman backup cloud 20261129T050418\nSTART TIMELINE: 1\n';

/** An 8 KiB control file whose first 8 bytes are `id` in the given byte order. */
function control(id: string, order: 'LE' | 'BE' = 'LE'): Buffer {
  const b = Buffer.alloc(8192);
  if (order === 'LE') b.writeBigUInt64LE(BigInt(id));
  else b.writeBigUInt64BE(BigInt(id));
  return b;
}

const base: TarMember[] = [{ name: '.', type: 'directory' }, { name: 'global', type: 'directory' }, { name: 'PG_VERSION', data: '15\n' }];
const whole = (): TarMember[] => [...base, { name: 'global/pg_control', data: control(SYSTEMID) }, { name: 'backup_label', data: LABEL, mode: 0o644 }];

const noTablespaces = (t: string) => t.replace(/^tablespaces=.*$/m, 'tablespaces=None');

interface Case {
  name: string;
  members: TarMember[];
  /** Replaces lines of HEAD_DONE. */
  info?: (text: string) => string;
  code: number;
  says?: RegExp;
  /** restore's WARNING lines (exit 0). */
  warns?: RegExp;
  /** What `verify` reports on this backup: its problem kinds, or `skipped` (not DONE). */
  verify: string[] | 'skipped';
  /** verify's message, where it is not restore's. */
  verifySays?: RegExp;
  /**
   * The archive of tablespace tbs1 (16384), stored as 16384.tar; backup.info then lists it at a
   * fresh absent path (docs/format.md#restore-tablespace-members).
   */
  tablespace?: TarMember[];
  /** Every path under that location once restore exits, sorted. */
  tablespaceHolds?: string[];
}

// PostgreSQL 15's version directory (TABLESPACE_VERSION_DIRECTORY) and a relation in it
const VERSION_DIR = 'PG_15_202209061';
const tablespace: TarMember[] = [{ name: VERSION_DIR, type: 'directory' }, { name: `${VERSION_DIR}/5`, type: 'directory' }, { name: `${VERSION_DIR}/5/16385`, data: 'relation' }];
const tablespaceTree = [VERSION_DIR, `${VERSION_DIR}/5`, `${VERSION_DIR}/5/16385`];

/** Every path below `dir`, relative, sorted ([] when it does not exist). */
function tree(dir: string, at = ''): string[] {
  if (!existsSync(join(dir, at))) return [];
  return readdirSync(join(dir, at), { withFileTypes: true })
    .flatMap((e) => {
      const path = at ? `${at}/${e.name}` : e.name;
      return e.isDirectory() ? [path, ...tree(dir, path)] : [path];
    })
    .sort();
}

const cases: Case[] = [
  { name: 'the label and the control file backup.info records', members: whole(), code: 0, verify: [] },
  { name: 'the label as ./backup_label (a Barman server backup uploaded by the hook)', members: [...base, { name: 'global/pg_control', data: control(SYSTEMID) }, { name: './backup_label', data: LABEL }], code: 0, verify: [] },
  { name: 'a stray backup_label before the one added last (barman keeps a stray one)', members: [{ name: 'backup_label', data: 'stray\n' }, ...whole()], code: 0, verify: [] },
  { name: 'the system identifier in big-endian order', members: [...base, { name: 'global/pg_control', data: control(SYSTEMID, 'BE') }, { name: 'backup_label', data: LABEL }], code: 0, verify: [] },
  {
    name: 'no backup_label and none recorded (backup_label=None, systemid=None): nothing to compare',
    members: base,
    info: (t) => noTablespaces(t).replace(/^backup_label=.*$/m, 'backup_label=None').replace(/^systemid=.*$/m, 'systemid=None'),
    code: 0, verify: [],
  },
  { name: 'no backup_label member', members: whole().slice(0, -1), code: 4, verify: ['backup-label-mismatch'], says: /backup_label is missing from the data archive of backup 20261129T050418 \(backup\.info records one\)/ },
  { name: 'another label', members: [...whole().slice(0, -1), { name: 'backup_label', data: LABEL.replace('0/6000028', '0/7000028') }], code: 4, verify: ['backup-label-mismatch'], says: /backup_label in the data archive of backup 20261129T050418 is not the one backup\.info records/ },
  { name: 'the label with one byte more', members: [...whole().slice(0, -1), { name: 'backup_label', data: `${LABEL}\n` }], code: 4, verify: ['backup-label-mismatch'], says: /is not the one backup\.info records/ },
  { name: 'the right label replaced by a later member', members: [...whole(), { name: 'backup_label', data: 'later\n' }], code: 4, verify: ['backup-label-mismatch'], says: /is not the one backup\.info records/ },
  {
    name: 'backup_label a symbolic link to a file with the right label',
    members: [...whole().slice(0, -1), { name: 'label.txt', data: LABEL }, { name: 'backup_label', type: 'symlink', linkname: 'label.txt' }],
    code: 4, verify: ['backup-label-mismatch'],
    says: /backup_label is missing from the data archive/,
  },
  {
    name: 'backup_label a directory',
    members: [...whole().slice(0, -1), { name: 'backup_label', type: 'directory' }],
    code: 4, verify: ['backup-label-mismatch'],
    says: /backup_label is missing from the data archive/,
  },
  {
    name: 'backup_label written through a link to the root',
    members: [...whole().slice(0, -1), { name: 'up', type: 'symlink', linkname: '.' }, { name: 'up/backup_label', data: 'through\n' }],
    code: 4, verify: ['backup-label-mismatch', 'member-through-link'],
    says: /is not the one backup\.info records/,
  },
  { name: 'no global/pg_control', members: [...base, { name: 'backup_label', data: LABEL }], code: 4, verify: ['system-id-mismatch'], says: /global\/pg_control is missing from the data archive of backup 20261129T050418/ },
  {
    name: "another cluster's control file",
    members: [...base, { name: 'global/pg_control', data: control('7713454245083309120') }, { name: 'backup_label', data: LABEL }],
    code: 4, verify: ['system-id-mismatch'],
    says: /the data archive of backup 20261129T050418 is of another cluster: global\/pg_control has system identifier 7713454245083309120, backup\.info says 7713454245083309119/,
  },
  {
    name: 'a link in pg_tblspc for a tablespace backup.info does not list',
    members: [...whole(), { name: 'pg_tblspc', type: 'directory' }, { name: 'pg_tblspc/99999', type: 'symlink', linkname: '/nonexistent/bc-label-elsewhere' }],
    code: 4, verify: ['unlisted-tablespace-link'],
    says: /pg_tblspc\/99999 in the data archive of backup 20261129T050418 is a link, and backup\.info lists no tablespace 99999/,
  },
  { name: 'the control file as ./global/pg_control', members: [...base, { name: './global/pg_control', data: control(SYSTEMID) }, { name: 'backup_label', data: LABEL }], code: 0, verify: [] },
  {
    name: 'a FIFO at backup_label after the label (restore skips it: the label stays)',
    members: [...whole(), { name: 'backup_label', type: 'fifo' }],
    code: 0,
    warns: /WARNING: Skipping 'backup_label': FIFOs are not restored/,
    verify: [],
  },
  {
    name: 'the control file replaced by a later symbolic link',
    members: [...whole(), { name: 'global/pg_control', type: 'symlink', linkname: '/nonexistent/bc-control' }],
    code: 4,
    says: /global\/pg_control is missing from the data archive of backup 20261129T050418/,
    verify: ['system-id-mismatch'],
  },
  {
    name: 'a link in pg_tblspc written through a link to the root',
    members: [...whole(), { name: 'pg_tblspc', type: 'directory' }, { name: 'up', type: 'symlink', linkname: '.' }, { name: 'up/pg_tblspc/99999', type: 'symlink', linkname: '/nonexistent/bc-label-elsewhere' }],
    code: 4,
    says: /pg_tblspc\/99999 in the data archive of backup 20261129T050418 is a link, and backup\.info lists no tablespace 99999/,
    verify: ['member-through-link'],
  },
  {
    name: 'a link in pg_tblspc replaced by a later file (nothing links out)',
    members: [...whole(), { name: 'pg_tblspc', type: 'directory' }, { name: 'pg_tblspc/99999', type: 'symlink', linkname: '/nonexistent/bc-elsewhere' }, { name: 'pg_tblspc/99999', type: 'file', data: 'x' }],
    code: 0,
    verify: [],
  },
  {
    name: 'a control file over 1 MiB (its first 8 bytes the right identifier)',
    members: [...base, { name: 'global/pg_control', data: Buffer.concat([control(SYSTEMID), Buffer.alloc(2 << 20)]) }, { name: 'backup_label', data: LABEL }],
    code: 4,
    says: /member 'global\/pg_control' is over 1048576 bytes: not a PostgreSQL control file/,
    verify: ['unreadable-part'],
  },
  // verify is stricter here (docs/commands/verify.md#as-on-disk): it keeps no other member's bytes
  {
    name: 'backup_label a hard link to a file with the right label',
    members: [...whole().slice(0, -1), { name: 'label.txt', data: LABEL }, { name: 'backup_label', type: 'link', linkname: 'label.txt' }],
    code: 0,
    verify: ['backup-label-mismatch'],
    verifySays: /backup_label in the data archive of backup 20261129T050418 is a hard link: verify cannot compare it/,
  },
  {
    name: 'status FAILED, killed before pg_backup_stop (no label recorded)',
    members: base,
    info: (t) => noTablespaces(t).replace(/^status=.*$/m, 'status=FAILED').replace(/^backup_label=.*$/m, 'backup_label=None'),
    code: 1, verify: 'skipped',
    says: /ERROR: Backup 20261129T050418 for server srv\d+ has status FAILED: only a backup with status DONE can be restored/,
  },
  {
    name: 'status STARTED',
    members: whole(),
    info: (t) => noTablespaces(t).replace(/^status=.*$/m, 'status=STARTED'),
    code: 1, verify: 'skipped',
    says: /has status STARTED: only a backup with status DONE can be restored/,
  },
  {
    name: 'a member whose path leaves the destination',
    members: [...whole(), { name: '../bc-escaped', data: 'out\n' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract '\.\.\/bc-escaped': member path leaves the destination directory/,
  },
  {
    name: 'a member with an absolute path',
    members: [...whole(), { name: '/tmp/bc-absolute', data: 'out\n' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract '\/tmp\/bc-absolute': absolute member path/,
  },
  // what restore refuses or fails on for the names alone, which verify reports with its words
  {
    name: 'a hard link whose target is absolute',
    members: [...whole(), { name: 'hl', type: 'link', linkname: '/etc/passwd' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract '\/etc\/passwd': absolute member path/,
  },
  {
    name: "a hard link whose target leaves the destination ('..')",
    members: [...whole(), { name: 'hl', type: 'link', linkname: 'global/../../x' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract 'global\/\.\.\/\.\.\/x': member path leaves the destination directory/,
  },
  {
    name: 'a hard link whose target is not UTF-8',
    members: [...whole(), { name: 'hl', type: 'link', linkname: 'PG_VERSION\uFFFD' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract 'PG_VERSION\uFFFD': its name is not valid UTF-8/,
  },
  {
    name: 'a symbolic link whose target is not UTF-8',
    members: [...whole(), { name: 'sl', type: 'symlink', linkname: 'PG_VERSION\uFFFD' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract 'sl': its link target is not valid UTF-8/,
  },
  {
    name: 'a hard link to a directory member',
    members: [...whole(), { name: 'hl', type: 'link', linkname: 'global' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract hard link 'hl': its target 'global' is not a regular file extracted from this archive/,
  },
  {
    name: 'a hard link to a later member',
    members: [{ name: 'hl', type: 'link', linkname: 'later' }, ...whole(), { name: 'later', data: 'x' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract hard link 'hl': its target 'later' is not a regular file extracted from this archive/,
  },
  {
    // held in memory until the end (docs/format.md#restore-control-file): no file there to link to
    name: 'a hard link to global/pg_control',
    members: [...whole(), { name: 'hl', type: 'link', linkname: 'global/pg_control' }],
    code: 4, verify: ['unsafe-member'],
    says: /Refusing to extract hard link 'hl': its target 'global\/pg_control' is not a regular file extracted from this archive/,
  },
  {
    name: 'a regular file where a directory member was',
    members: [...whole(), { name: 'global', data: 'x' }],
    code: 4, verify: ['unextractable-member'],
    says: /Cannot extract 'global': a directory is in the way/,
  },
  {
    name: 'a member below a regular file',
    members: [...whole(), { name: 'PG_VERSION/x', data: 'x' }],
    code: 4, verify: ['unextractable-member'],
    says: /Cannot extract 'PG_VERSION\/x': '[^']*PG_VERSION' is not a directory/,
  },
  {
    name: 'a directory member where a regular file was',
    members: [...whole(), { name: 'PG_VERSION', type: 'directory' }],
    code: 4, verify: ['unextractable-member'],
    says: /Cannot extract directory 'PG_VERSION': '[^']*PG_VERSION' exists and is not a directory/,
  },
  {
    name: 'a regular file naming the destination',
    members: [...whole(), { name: '.', data: 'x' }],
    code: 4, verify: ['unextractable-member'],
    says: /Cannot extract '\.' as a file: it names the destination/,
  },
  {
    name: 'a hard link to an earlier file, and a file replacing a link member (restored)',
    members: [...whole(), { name: 'a', data: 'x' }, { name: 'hl', type: 'link', linkname: './a' }, { name: 'sl', type: 'symlink', linkname: 'a' }, { name: 'sl', data: 'y' }],
    code: 0, verify: [],
  },
  {
    name: 'a tablespace archive of its version directory',
    members: whole(), tablespace, tablespaceHolds: tablespaceTree,
    code: 0, verify: [],
  },
  {
    // barman's walk stores every PG_<major>_* directory, and the subdirectories of any other one
    // without its own member (an old cluster's after pg_upgrade)
    name: 'a second version directory, and one of an older major without its directory member',
    members: whole(),
    tablespace: [...tablespace, { name: 'PG_15_202207251', type: 'directory' }, { name: 'PG_14_202107181/16384', type: 'directory' }, { name: 'PG_14_202107181/16384/1', data: 'old' }],
    tablespaceHolds: [...tablespaceTree, 'PG_14_202107181', 'PG_14_202107181/16384', 'PG_14_202107181/16384/1', 'PG_15_202207251'].sort(),
    code: 0, verify: [],
  },
  {
    name: 'a tablespace archive planting .ssh/authorized_keys at the location backup.info names',
    members: whole(),
    tablespace: [...tablespace, { name: '.ssh/authorized_keys', data: 'ssh-ed25519 AAAA attacker\n', mode: 0o600 }],
    tablespaceHolds: tablespaceTree,
    code: 4, verify: ['outside-version-directory'],
    says: /Refusing to extract '\.ssh\/authorized_keys' from the archive of tablespace tbs1 \(16384\): it is not in a version directory PG_<major>_<catalog version>/,
  },
  {
    name: 'a file at the top of a tablespace archive, before its version directory',
    members: whole(),
    tablespace: [{ name: 'evil', data: '* * * * * root sh\n' }, ...tablespace],
    tablespaceHolds: [],
    code: 4, verify: ['outside-version-directory'],
    says: /Refusing to extract 'evil' from the archive of tablespace tbs1 \(16384\): it is not in a version directory/,
  },
  {
    name: 'the location itself as a member of a tablespace archive (barman writes none)',
    members: whole(),
    tablespace: [{ name: '.', type: 'directory', mode: 0o777 }, ...tablespace],
    tablespaceHolds: [],
    code: 4, verify: ['outside-version-directory'],
    says: /Refusing to extract '\.' from the archive of tablespace tbs1 \(16384\): it names the tablespace location itself/,
  },
  {
    name: 'the version directory a symbolic link',
    members: whole(),
    tablespace: [{ name: VERSION_DIR, type: 'symlink', linkname: '/nonexistent/bc-tbs-elsewhere' }],
    tablespaceHolds: [],
    code: 4, verify: ['outside-version-directory'],
    says: /Refusing to extract 'PG_15_202209061' from the archive of tablespace tbs1 \(16384\): its version directory is stored as a symlink, not a directory/,
  },
  {
    name: 'a name like a version directory that is not one',
    members: whole(),
    tablespace: [{ name: 'PG_15_x/evil', data: 'x' }],
    tablespaceHolds: [],
    code: 4, verify: ['outside-version-directory'],
    says: /Refusing to extract 'PG_15_x\/evil' from the archive of tablespace tbs1 \(16384\): it is not in a version directory/,
  },
  {
    name: 'a tablespace member written through a link to the location',
    members: whole(),
    tablespace: [...tablespace, { name: `${VERSION_DIR}/up`, type: 'symlink', linkname: '..' }, { name: `${VERSION_DIR}/up/evil`, data: 'x' }],
    tablespaceHolds: [...tablespaceTree, `${VERSION_DIR}/up`].sort(),
    code: 4, verify: ['member-through-link'],
    says: /Refusing to extract 'PG_15_202209061\/up\/evil' from the archive of tablespace tbs1 \(16384\): its directory resolves outside the version directories/,
  },
  // verify is stricter here (docs/commands/verify.md#as-on-disk): where a link leads is not in the names
  {
    name: 'a tablespace member written through a link to another version directory',
    members: whole(),
    tablespace: [...tablespace, { name: 'PG_15_202207251', type: 'directory' }, { name: `${VERSION_DIR}/other`, type: 'symlink', linkname: '../PG_15_202207251' }, { name: `${VERSION_DIR}/other/f`, data: 'x' }],
    tablespaceHolds: [...tablespaceTree, 'PG_15_202207251', 'PG_15_202207251/f', `${VERSION_DIR}/other`].sort(),
    code: 0, verify: ['member-through-link'],
    verifySays: /member PG_15_202209061\/other\/f from the archive of tablespace tbs1 \(16384\) of backup 20261129T050418 is written through the link PG_15_202209061\/other/,
  },
  {
    name: 'a tablespace archive missing from the store',
    members: whole(),
    info: (t) => t.replace(/^tablespaces=.*$/m, "tablespaces=[('tbs1', 16384, '/nonexistent/bc-label-tbs')]"),
    code: 1, verify: ['missing-archive'],
    says: /ERROR: Missing file 16384\.\* for server /,
  },
];

describe.each(['file', 's3'] as const)('restore compares the data archive with backup.info (%s store)', (kind) => {
  let work: string;
  let store: ObjectStore;
  let moto: ServerHandle | undefined;
  let url: string[];
  let n = 0;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'bc-restore-info-'));
    if (kind === 'file') {
      mkdirSync(join(work, 'store'));
      store = await openObjectStore({ provider: 'file', bucket: join(work, 'store'), retry: DEFAULT_RETRY });
      url = [`file://${join(work, 'store')}`];
    } else {
      ({ moto, store } = await startMotoBucket('label'));
      url = ['--endpoint-url', moto.url, 's3://label/pg'];
    }
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await moto?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('pg_tblspc a link in the data archive and no tablespace listed: replaced by an empty directory', async () => {
    const server = `srv${++n}`;
    const prefix = kind === 'file' ? `${server}/base/${ID}/` : `pg/${server}/base/${ID}/`;
    await store.put(`${prefix}backup.info`, Buffer.from(noTablespaces(HEAD_DONE)));
    await store.put(`${prefix}data.tar`, await tarOf([...whole(), { name: 'pg_tblspc', type: 'symlink', linkname: '/nonexistent/bc-tblspc-elsewhere' }]));
    const dest = join(work, `dest-${server}`);
    const r = await runBin('barman-cloud-restore', [...url, server, ID, dest], { env: cleanEnv(kind === 's3' ? MOTO_ENV : {}) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: Replacing .*pg_tblspc by an empty directory: the backup holds a symbolic link there/);
    const st = lstatSync(join(dest, 'pg_tblspc'));
    expect({ dir: st.isDirectory(), link: st.isSymbolicLink() }).toEqual({ dir: true, link: false });
  }, 60_000);

  it('auto passes over a newer backup that is not DONE; latest names it and is refused', async () => {
    const server = `srv${++n}`;
    const prefix = kind === 'file' ? `${server}/base/` : `pg/${server}/base/`;
    const NEWER = '20261130T050418';
    await store.put(`${prefix}${ID}/backup.info`, Buffer.from(noTablespaces(HEAD_DONE)));
    await store.put(`${prefix}${ID}/data.tar`, await tarOf(whole()));
    const failed = noTablespaces(HEAD_DONE).replaceAll(ID, NEWER).replace(/^status=.*$/m, 'status=FAILED').replace(/^backup_label=.*$/m, 'backup_label=None');
    await store.put(`${prefix}${NEWER}/backup.info`, Buffer.from(failed));
    await store.put(`${prefix}${NEWER}/data.tar`, await tarOf(base));
    const env = cleanEnv(kind === 's3' ? MOTO_ENV : {});
    const auto = join(work, `dest-${server}-auto`);
    const r = await runBin('barman-cloud-restore', [...url, server, 'auto', auto], { env });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(join(auto, 'backup_label'), 'utf8')).toBe(LABEL);
    const latest = await runBin('barman-cloud-restore', [...url, server, 'latest', join(work, `dest-${server}-latest`)], { env });
    expect(latest.code, latest.stderr).toBe(1);
    expect(latest.stderr).toMatch(new RegExp(`ERROR: Backup ${NEWER} for server ${server} has status FAILED`));
  }, 60_000);

  it.each(cases)('$name: exit $code, verify $verify', async (c) => {
    const server = `srv${++n}`;
    const prefix = kind === 'file' ? `${server}/base/${ID}/` : `pg/${server}/base/${ID}/`;
    const location = join(work, `tbs-${server}`);
    const info = c.tablespace
      ? (c.info ?? ((t: string) => t))(HEAD_DONE).replace(/^tablespaces=.*$/m, `tablespaces=[('tbs1', 16384, '${location}')]`)
      : (c.info ?? noTablespaces)(HEAD_DONE);
    await store.put(`${prefix}backup.info`, Buffer.from(info));
    await store.put(`${prefix}data.tar`, await tarOf(c.members));
    if (c.tablespace) await store.put(`${prefix}16384.tar`, await tarOf(c.tablespace));
    // the one segment the backup needs (begin_wal = end_wal), so that verify's WAL check passes
    await store.put(`${prefix.replace(/base\/.*$/, 'wals/')}${WAL.slice(0, 16)}/${WAL}.gz`, gzipSync(Buffer.alloc(16 << 20)));
    const env = cleanEnv(kind === 's3' ? MOTO_ENV : {});
    const dest = join(work, `dest-${server}`);
    const r = await runBin('barman-cloud-restore', [...url, server, ID, dest], { env });
    if (c.code === 0) {
      expect(r.code, r.stderr).toBe(0);
      if (c.warns) expect(r.stderr).toMatch(c.warns);
      else expect(r.stderr).toBe('');
    } else {
      expect(r.code, r.stderr).toBe(c.code);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.stderr).toMatch(c.says!);
      // PostgreSQL refuses what a failed restore leaves (docs/format.md#restore-control-file)
      expect(existsSync(join(dest, 'global', 'pg_control'))).toBe(false);
    }
    if (c.tablespace) expect(tree(location)).toEqual(c.tablespaceHolds);

    const v = await runBin('barman-cloud', ['verify', '--format', 'json', ...url, server, ID], { env });
    const report = JSON.parse(v.stdout) as { backups: { result: string; problems: { kind: string; message: string }[] }[]; wal: { problems: unknown[] } };
    expect(report.wal.problems).toEqual([]);
    const [backup] = report.backups;
    if (c.verify === 'skipped') {
      expect({ code: v.code, result: backup!.result }).toEqual({ code: 0, result: 'skipped' });
      return;
    }
    expect(backup!.problems.map((p) => p.kind).sort()).toEqual([...c.verify].sort());
    expect(v.code, v.stderr).toBe(c.verify.length ? 1 : 0);
    // a backup restore refuses is never one verify passes
    if (c.code !== 0) expect(backup!.result).toBe('failed');
    if (c.verifySays) expect(backup!.problems[0]!.message).toMatch(c.verifySays);
    // restore's own words for the same finding
    if (c.code === 4 && c.verify.length === 1 && c.verify[0] !== 'member-through-link') {
      expect(backup!.problems[0]!.message).toMatch(c.says!);
    }
  }, 60_000);
});

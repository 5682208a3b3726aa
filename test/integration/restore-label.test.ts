// restore checks that the data archive is the backup backup.info describes
// (docs/format.md#restore-backup-label, #restore-system-id), with a real PostgreSQL 15 and the
// directory store. Two backups of one cluster (rows added between them) and a backup of another
// cluster; each case copies backup A as a barman-shaped backup (no parts.json: no checksums) with
// its last data part changed, and expects exit 4, one line, no global/pg_control, and PostgreSQL
// refusing to start:
//   * its backup_label member removed (before the rule: exit 0, and PostgreSQL, finding no label,
//     looked for the control file's checkpoint in the empty pg_wal: PANIC);
//   * backup B's backup_label in its place (before: exit 0, and PostgreSQL recovered from B's
//     start and promoted with the rows added between A and B silently missing);
//   * the other cluster's data part with A's backup_label put in (before: exit 0): refused by the
//     system identifier in global/pg_control.
// Unchanged, the copy restores and starts with every row.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import {
  namedBackup, pgTempDir, postgresAvailable, refusedStart, requireTool, startArchivingCluster, startRestoredCopy, type PgCluster,
} from '../helpers/postgres.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());

describe.skipIf(skip)('restore checks the data archive against backup.info (PostgreSQL 15)', () => {
  let primary: PgCluster;
  let other: PgCluster;
  let fileRoot: string;
  let work: string;
  let store: ObjectStore;
  const clusters: PgCluster[] = [];
  const where = (server = 'srv') => [`file://${fileRoot}`, server];
  const env = () => cleanEnv({ ...primary.env });
  const ids: Record<string, string> = {};
  let rowsAtB = '';

  async function objectsOf(server: string, id: string): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for await (const e of store.list(`${server}/base/${id}/`)) {
      if (e.kind === 'object') out.set(e.key.slice(`${server}/base/${id}/`.length), await store.getBuffer(e.key));
    }
    return out;
  }

  /** The label backup.info records, as the text PostgreSQL wrote (backup-show --format json gives the repr). */
  async function labelOf(server: string, name: string): Promise<string> {
    const dir = join(work, `label-${server}-${name}`);
    mkdirSync(dir);
    const objects = await objectsOf(server, ids[name]!);
    const data = [...objects.keys()].filter((k) => k.startsWith('data')).sort().at(-1)!;
    writeFileSync(join(dir, 'part.tar'), objects.get(data)!);
    execFileSync('tar', ['-xf', 'part.tar', 'backup_label'], { cwd: dir });
    return readFileSync(join(dir, 'backup_label'), 'utf8');
  }

  beforeAll(async () => {
    fileRoot = pgTempDir('bc-label-store-');
    work = pgTempDir('bc-label-work-');
    store = await openObjectStore({ provider: 'file', bucket: fileRoot, retry: DEFAULT_RETRY });
    primary = await startArchivingCluster(where());
    clusters.push(primary);
    await primary.psql("CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5000) g;");
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    for (const name of ['a', 'b']) {
      ids[name] = (await namedBackup(where(), name, env())).backup_id;
      // rows that only backup B holds
      if (name === 'a') await primary.psql("INSERT INTO t SELECT g, 'later ' || g FROM generate_series(5001, 9000) g;");
    }
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    rowsAtB = await primary.psql('SELECT count(*), sum(id) FROM t');
    // another cluster, backed up under another server name
    other = await startArchivingCluster(where('other'));
    clusters.push(other);
    // archived once before the backup, so that the server's directory in the store is the server user's
    await other.waitForArchived(await other.switchWal(), 60_000);
    ids.x = (await namedBackup(where('other'), 'x', cleanEnv({ ...other.env }))).backup_id;
  }, 300_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    await store?.close();
  });

  /**
   * Backup A copied to `server` without parts.json (as barman stores it), its last data part
   * changed by `change` (GNU tar on a file holding the part), and restored.
   */
  async function restoreChanged(server: string, change: (partFile: string, dir: string) => void, dataFrom?: Map<string, Buffer>) {
    const objects = await objectsOf('srv', ids.a!);
    objects.delete('parts.json');
    if (dataFrom) {
      for (const k of [...objects.keys()]) if (k.startsWith('data')) objects.delete(k);
      for (const [k, v] of dataFrom) if (k.startsWith('data')) objects.set(k, v);
    }
    const last = [...objects.keys()].filter((k) => k.startsWith('data')).sort().at(-1)!;
    const dir = join(work, `change-${server}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'part.tar'), objects.get(last)!);
    change(join(dir, 'part.tar'), dir);
    objects.set(last, readFileSync(join(dir, 'part.tar')));
    for (const [name, b] of objects) await store.put(`${server}/base/${ids.a}/${name}`, b);
    // its own temp directory: removing a copy started on it removes that directory too
    const dest = join(pgTempDir('bc-label-dest-'), 'data');
    const r = await runBin('barman-cloud-restore', [...where(server), ids.a!, dest], { env: env(), timeoutMs: 180_000 });
    return { ...r, dest };
  }

  const deleteLabel = (part: string) => execFileSync('tar', ['--delete', '-f', part, 'backup_label']);
  const putLabel = (text: string) => (part: string, dir: string) => {
    deleteLabel(part);
    mkdirSync(join(dir, 'l'));
    writeFileSync(join(dir, 'l', 'backup_label'), text);
    execFileSync('tar', ['-rf', part, '-C', join(dir, 'l'), 'backup_label']);
  };

  /** PostgreSQL set to recover from `dataDir` (as the DBA would) refuses to start: no control file. */
  const expectNoStart = async (dataDir: string) =>
    expect(await refusedStart(dataDir, where(), clusters)).toMatch(/could not open file "[^"]*global\/pg_control": No such file or directory/);

  // [case, server copy, the change, data parts from backup x of the other cluster, what stderr says]
  const cases: [string, string, () => Promise<(part: string, dir: string) => void>, boolean, RegExp][] = [
    ['its backup_label member removed', 'nolabel', async () => deleteLabel, false, /backup_label is missing from the data archive of backup \w+ \(backup\.info records one\)/],
    ["backup B's backup_label in its place", 'otherlabel', async () => putLabel(await labelOf('srv', 'b')), false, /backup_label in the data archive of backup \w+ is not the one backup\.info records/],
    ["another cluster's data archive, with A's backup_label", 'othercluster', async () => putLabel(await labelOf('srv', 'a')), true, /the data archive of backup \w+ is of another cluster: global\/pg_control has system identifier \d+, backup\.info says \d+/],
  ];
  it.each(cases)('%s: exit 4, one line, no global/pg_control, PostgreSQL refuses to start', async (_what, server, change, otherCluster, says) => {
    const r = await restoreChanged(server, await change(), otherCluster ? await objectsOf('other', ids.x!) : undefined);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: Barman cloud restore exception: [^\n]*; the destination \S+ is incomplete\n$/);
    expect(r.stderr).toMatch(says);
    expect(existsSync(join(r.dest, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(r.dest, 'global', 'pg_control'))).toBe(false);
    await expectNoStart(r.dest);
  }, 240_000);

  it('the unchanged backup restores and starts with every row', async () => {
    const r = await restoreChanged('unchanged', () => undefined);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const copy = await startRestoredCopy(r.dest, where(), { serverEnv: {}, clusters });
    expect(await copy.psql('SELECT count(*), sum(id) FROM t')).toBe(rowsAtB);
    await copy.remove();
    rmSync(r.dest, { recursive: true, force: true });
  }, 240_000);
});

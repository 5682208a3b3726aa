// Two barman-cloud-backup runs of one server that start in the same second (a CloudNativePG
// ScheduledBackup and an on-demand Backup, two pods after a failover) get the same backup ID and
// write under the same base/<id>/ (docs/format.md#backup-id-claim). Each run talks to moto through
// its own proxy, which orders their requests: Y's claim waits until X's is answered; X's first
// data part waits until Y sent its own (or exited), Y's waits for X's, and X's final parts.json
// waits until Y has exited. Without the claim Y's data.tar replaced X's, then X's parts.json and
// backup.info (DONE) came last: both runs exited 0, the backup was listed DONE, and restore
// refused it (exit 4: data.tar does not match parts.json); barman's restore would have taken Y's
// data with X's backup.info. With it, Y's claim is refused: Y exits 1 with one line before
// pg_backup_start, having written nothing, and the one DONE backup restores.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, ROOT, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { treeKeys, writeTree } from '../helpers/object-tree.ts';
import { startS3Proxy, type ProxiedRequest, type Proxy } from '../helpers/proxy.ts';
import { requireTool, postgresAvailable, startCluster, pgVerifyBackup, type PgCluster } from '../helpers/postgres.ts';
import { MOTO_ENV, openMotoStore } from '../helpers/moto.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BUCKET = 'same-id';

interface Run { code: number | null; stderr: string }

function backup(endpoint: string, server: string, env: NodeJS.ProcessEnv): Promise<Run> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'barman-cloud-backup'), '-v', '--immediate-checkpoint', '--endpoint-url', endpoint, `s3://${BUCKET}/pg`, server], {
    env, cwd: tmpdir(), stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const path = (r: ProxiedRequest) => decodeURIComponent(r.url.split('?')[0]!);
/** A request of the data archive's upload (create, part, completion or a single PUT). */
const isData = (r: ProxiedRequest) => /\/base\/[^/]+\/data[._]/.test(path(r));
/** The request that makes an object exist: a single PUT, or a multipart upload's completion. */
const creates = (r: ProxiedRequest) => (r.method === 'PUT' && !/[?&]partNumber=/.test(r.url)) || (r.method === 'POST' && /[?&]uploadId=/.test(r.url));
const isPartsList = (r: ProxiedRequest) => r.method === 'PUT' && path(r).endsWith('/parts.json');
/**
 * The claim on the ID: parts.json created empty, conditionally (docs/format.md#backup-id-claim); its
 * later rewrites while the run lives (#backup-heartbeat) are not conditional.
 */
const isClaim = (r: ProxiedRequest) => isPartsList(r) && r.headers['if-none-match'] === '*' && /"parts": \[\]/.test(r.body.toString('utf8'));
/** The run's last parts.json, the one that lists the parts. */
const isFinalPartsList = (r: ProxiedRequest) => isPartsList(r) && !/"parts": \[\]/.test(r.body.toString('utf8'));

const idOf = (run: Run) => /Starting backup '(\d{8}T\d{6})'/.exec(run.stderr)?.[1];

describe.skipIf(skip)('two backups of one server starting in the same second (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  let primary: PgCluster;
  const proxies: Proxy[] = [];
  const work = mkdtempSync(join(tmpdir(), 'bc-same-id-'));
  const env = () => cleanEnv({ ...MOTO_ENV, ...primary.env });

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    store = await openMotoStore(moto, BUCKET);
    primary = await startCluster({ conf: { archive_mode: 'on', archive_command: '/bin/true' } });
    await primary.psql('CREATE TABLE t AS SELECT generate_series(1, 10000) AS id');
  }, 120_000);

  afterAll(async () => {
    for (const p of proxies) await p.close();
    await primary?.remove();
    await store?.close();
    await moto?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  interface Race { x: Run; y: Run; yWrites: string[] }

  /** X and Y started together at `lead` ms into a second, their requests ordered as the header says. */
  async function race(server: string, lead: number): Promise<Race> {
    const yClaiming = latch(); // Y's claim (the empty parts.json) is on its way
    const xClaimDone = latch();
    const yAtData = latch(); // Y sent its first data request, or has exited
    const xDataDone = latch(); // X's first data part exists
    const yExited = latch();
    const yWrites: string[] = [];
    const px = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => {
        if (isClaim(r)) return yClaiming.promise;
        if (isData(r) && creates(r)) return yAtData.promise;
        if (isFinalPartsList(r)) return yExited.promise;
        return undefined;
      },
      answered: (r) => {
        if (isClaim(r)) xClaimDone.open();
        if (isData(r) && creates(r)) xDataDone.open();
      },
    });
    const py = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => {
        if (r.method === 'PUT' || r.method === 'POST' || r.method === 'DELETE') yWrites.push(`${r.method} ${path(r)}`);
        if (isClaim(r)) {
          yClaiming.open();
          return xClaimDone.promise;
        }
        if (!isData(r)) return undefined;
        yAtData.open();
        return xDataDone.promise;
      },
    });
    proxies.push(px, py);
    // Both runs take their ID from the clock once connected to PostgreSQL.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + lead));
    const xRun = backup(px.url, server, env());
    const yRun = backup(py.url, server, env()).then((y) => {
      yExited.open();
      yAtData.open();
      yClaiming.open();
      return y;
    });
    const [x, y] = await Promise.all([xRun, yRun]);
    return { x, y, yWrites };
  }

  /** The race with both runs on one backup ID: run again when their starts fell in two seconds. */
  async function sameId(): Promise<Race & { id: string; server: string }> {
    let lead = 20;
    for (let attempt = 1; attempt <= 5; attempt++) {
      const server = `srv${attempt}`;
      const runs = await race(server, lead);
      const [xId, yId] = [idOf(runs.x), idOf(runs.y)];
      if (xId && xId === yId) return { ...runs, id: xId, server };
      // Aim the next starts so that the IDs are taken mid-second.
      const ms = Number(/,(\d{3}) \[\d+\] INFO: Starting backup/.exec(runs.x.stderr)?.[1] ?? 500);
      lead = (lead + 1500 - ms) % 1000;
    }
    throw new Error('five times the two runs did not start in one second');
  }

  const problems = (run: Run) => run.stderr.split('\n').filter((l) => / (ERROR|WARNING): /.test(l));
  const takenLine = (id: string, server: string) =>
    new RegExp(`ERROR: Backup ${id} of server ${server} was started by another run in the same second: this run stops, writing nothing$`);

  /** The one backup listed is DONE, restores (exit 0, pg_verifybackup) and its backup.info is the restored data's. */
  async function expectOneRestorableBackup(server: string, id: string): Promise<void> {
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', '--endpoint-url', moto.url, `s3://${BUCKET}/pg`, server], { env: env() });
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as { backups_list: { backup_id: string; status: string }[] }).backups_list;
    expect(listed.map((b) => [b.backup_id, b.status])).toEqual([[id, 'DONE']]);
    const dest = join(work, `restore-${server}`);
    const restore = await runBin('barman-cloud-restore', ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, server, id, dest], { env: env() });
    expect({ code: restore.code, stderr: restore.stderr }).toEqual({ code: 0, stderr: '' });
    expect((await pgVerifyBackup(dest)).code).toBe(0);
    const info = (await store.getBuffer(`pg/${server}/base/${id}/backup.info`)).toString('utf8');
    const label = readFileSync(join(dest, 'backup_label'), 'utf8');
    expect(info).toContain(`backup_label=${JSON.stringify(label).replace(/^"|"$/g, "'")}`);
  }

  it('the second claim is refused: that run exits 1 with one line and writes nothing; the DONE backup restores', async () => {
    const { x, y, yWrites, id, server } = await sameId();
    expect({ code: x.code, problems: problems(x) }).toEqual({ code: 0, problems: [] });
    expect(y.code, y.stderr).toBe(1);
    expect(problems(y), y.stderr).toHaveLength(1);
    expect(problems(y)[0]).toMatch(takenLine(id, server));
    expect(yWrites).toEqual([`PUT /${BUCKET}/pg/${server}/base/${id}/parts.json`]);
    await expectOneRestorableBackup(server, id);
  }, 600_000);

  it('directory store: a backup whose ID another run holds exits 1 with one line and changes nothing there', async () => {
    // Another run's backup under every ID this one can take in the next two minutes (barman's ID is
    // the local time to the second).
    const root = join(work, 'store');
    const other = new Map<string, string>();
    const now = Date.now();
    for (let s = 0; s < 120; s++) {
      const at = new Date(now + s * 1000);
      const p = (n: number, w = 2) => String(n).padStart(w, '0');
      const id = `${at.getFullYear()}${p(at.getMonth() + 1)}${p(at.getDate())}T${p(at.getHours())}${p(at.getMinutes())}${p(at.getSeconds())}`;
      other.set(`fsrv/base/${id}/parts.json`, `another run's ${id}\n`);
      other.set(`fsrv/base/${id}/data.tar`, `another run's part ${id}\n`);
    }
    writeTree(root, other);
    const r = await runBin('barman-cloud-backup', ['-v', '--immediate-checkpoint', `file://${root}`, 'fsrv'], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const id = idOf({ code: r.code, stderr: r.stderr });
    expect(problems({ code: r.code, stderr: r.stderr }), r.stderr).toEqual([expect.stringMatching(takenLine(id!, 'fsrv'))]);
    expect(treeKeys(root)).toEqual([...other.keys()].sort());
    for (const [key, body] of other) expect(readFileSync(join(root, key), 'utf8')).toBe(body);
  }, 120_000);
});

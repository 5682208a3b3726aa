// backup-delete -b killed part-way (SIGKILL) is finished by the same command run again: the end
// state is the one a clean run leaves. The kill points are those where barman's order (backup.info
// before the WAL) leaves WAL behind that no later `-b` run removes, since it no longer finds the
// backup (docs/format.md#delete-backup). The whole sweep over every request is
// test/bench/crash-sweep.mjs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerHandle } from '../helpers/servers.ts';
import { runBarman, runBin, cleanEnv, spawnBin, exitOf } from '../helpers/run-bin.ts';
import { requireTool } from '../helpers/postgres.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { objectKeys, treeKeys, uploadObjects, writeTree } from '../helpers/object-tree.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate } from '../../src/catalog/backup-info.ts';
import { hex8 } from '../../src/xlog.ts';
import { tarOf } from '../helpers/tar.ts';

const wal = (pos: number) => hex8(1) + hex8(Math.floor(pos / 256)) + hex8(pos % 256);
const OLDEST = '20260101T000000';
const NEWEST = '20260103T000000';
const skip34 = requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync('/usr/bin/barman-cloud-backup-list'));

/** Three DONE backups on timeline 1, `per` WAL segments from each one's begin_wal on. */
function catalog(per: number, compat: '3.4' | 'head' = 'head'): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < 3; i++) {
    const when = new Date(Date.UTC(2026, 0, 1 + i));
    const id = when.toISOString().slice(0, 19).replace(/[-:]/g, '');
    const begin = 1 + i * per;
    const info = newBackupInfo(id, {
      status: 'DONE', timeline: 1, begin_wal: wal(begin), end_wal: wal(begin + 1),
      begin_time: pyDatetimeStr(timestampFromDate(when, 0, 0)),
      end_time: pyDatetimeStr(timestampFromDate(new Date(when.getTime() + 60_000), 0, 0)),
    });
    out.set(`srv/base/${id}/backup.info`, serializeBackupInfo(info, { compat }));
    out.set(`srv/base/${id}/data.tar`, `data ${id}`);
    for (let p = begin; p < begin + per; p++) out.set(`srv/wals/${wal(p).slice(0, 16)}/${wal(p)}`, `wal ${p}`);
  }
  return out;
}

describe('backup-delete -b killed part-way, on the directory store', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bc-delete-kill-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('killed once its WAL cleanup has begun: the next run finishes it, same end state as one clean run', async () => {
    const objects = catalog(1500);
    const clean = join(work, 'clean');
    const killed = join(work, 'killed');
    writeTree(clean, objects);
    writeTree(killed, objects);
    const args = (dir: string) => ['--batch-size', '10', '-b', OLDEST, `file://${dir}`, 'srv'];
    const one = await runBin('barman-cloud-backup-delete', args(clean));
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: 0, stderr: '' });
    const firstWal = join(killed, 'srv', 'wals', wal(1).slice(0, 16), wal(1));
    expect(treeKeys(clean)).not.toContain(`srv/wals/${wal(1).slice(0, 16)}/${wal(1)}`);

    // Killed as soon as the first WAL file of the cleanup is gone.
    const child = spawnBin('barman-cloud-backup-delete', args(killed), { stdio: ['ignore', 'ignore', 'ignore'] });
    const exit = exitOf(child);
    const poll = () => {
      if (child.exitCode !== null) return;
      if (!existsSync(firstWal)) child.kill('SIGKILL');
      else setImmediate(poll);
    };
    poll();
    expect(await exit).toBe('SIGKILL');
    expect(treeKeys(killed).length).toBeGreaterThan(treeKeys(clean).length);

    const second = await runBin('barman-cloud-backup-delete', args(killed));
    expect(second.code).toBe(0);
    expect(treeKeys(killed)).toEqual(treeKeys(clean));
  }, 120_000);
});

/** What our list, restore and verify make of a backup whose deletion was killed (docs/format.md#delete-backup). */
async function expectBeingDeleted(target: string[], env: NodeJS.ProcessEnv, work: string): Promise<void> {
  const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...target], { env });
  expect(list.code, list.stderr).toBe(0);
  const listed = (JSON.parse(list.stdout) as { backups_list: { backup_id: string; status: string; error: string | null }[] }).backups_list;
  expect(listed.map((b) => [b.backup_id, b.status])).toEqual([
    [OLDEST, 'DONE'], ['20260102T000000', 'DONE'], [NEWEST, 'FAILED'],
  ]);
  expect(listed.at(-1)!.error).toMatch(/^failure deleting backup \(.*\)$/);
  for (const which of [NEWEST, 'latest']) {
    const dest = join(work, `restore-${which}`);
    const r = await runBin('barman-cloud-restore', [...target, which, dest], { env });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`Backup ${NEWEST} for server srv is being deleted`);
    expect(existsSync(dest) ? readdirSync(dest) : []).toEqual([]);
  }
  const verify = await runBin('barman-cloud', ['verify', '--format', 'json', ...target], { env });
  const verdicts = (JSON.parse(verify.stdout) as { backups: { backup_id: string; status: string; result: string }[] }).backups;
  expect(verdicts.find((b) => b.backup_id === NEWEST)).toMatchObject({ status: 'FAILED', result: 'skipped' });
}

describe('backup-delete -b NEWEST killed once its data archive is gone, on the directory store', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bc-delete-newest-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.each([['-r', 'REDUNDANCY 2'], ['-b', NEWEST]])('FAILED for list, restore and verify; a later %s %s leaves what the clean runs leave (the older two kept)', async (...rerun) => {
    const objects = catalog(4, '3.4');
    // NEWEST's data archive in many parts: deleted one key a request, the run has a window to be killed in.
    for (let p = 1; p <= 400; p++) objects.set(`srv/base/${NEWEST}/data_${String(p).padStart(4, '0')}.tar`, `part ${p}`);
    const clean = join(work, `clean${rerun[0]}`);
    const killed = join(work, `killed${rerun[0]}`);
    writeTree(clean, objects);
    writeTree(killed, objects);
    const target = (dir: string) => [`file://${dir}`, 'srv'];
    for (const select of [['-b', NEWEST], ['-r', 'REDUNDANCY 2']]) {
      const r = await runBin('barman-cloud-backup-delete', [...select, ...target(clean)]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
    expect(treeKeys(clean)).toEqual([...objects.keys()].filter((k) => !k.startsWith(`srv/base/${NEWEST}/`)).sort());

    const base = join(killed, 'srv', 'base', NEWEST);
    const child = spawnBin('barman-cloud-backup-delete', ['--batch-size', '1', '-b', NEWEST, ...target(killed)], { stdio: ['ignore', 'ignore', 'ignore'] });
    const exit = exitOf(child);
    const poll = () => {
      if (child.exitCode !== null) return;
      if (!existsSync(join(base, 'data.tar'))) child.kill('SIGKILL');
      else setImmediate(poll);
    };
    poll();
    expect(await exit).toBe('SIGKILL');
    // killed inside the deletion: the data archive's first part gone, backup.info still there
    expect(existsSync(join(base, 'data.tar'))).toBe(false);
    expect(existsSync(join(base, 'backup.info'))).toBe(true);
    await expectBeingDeleted(target(killed), process.env, work);
    // a dry run of -r names NEWEST's objects only, and writes nothing
    const keysNow = treeKeys(killed);
    const dry = await runBin('barman-cloud-backup-delete', ['--dry-run', '-r', 'REDUNDANCY 2', ...target(killed)]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`srv/base/${NEWEST}/backup.info`);
    expect(dry.stdout).not.toContain(OLDEST);
    expect(treeKeys(killed)).toEqual(keysNow);
    expect(readFileSync(join(base, 'backup.info'), 'utf8')).toContain('status=FAILED');

    const second = await runBin('barman-cloud-backup-delete', [...rerun, ...target(killed)]);
    expect(second.code, second.stderr).toBe(0);
    expect(treeKeys(killed)).toEqual(treeKeys(clean));
  }, 120_000);
});

describe('backup-delete -b killed part-way, on S3 (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const bucket = 'delete-kill';
  const env = () => cleanEnv(MOTO_ENV);

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket(bucket));
  });
  afterAll(async () => {
    await store?.close();
    await moto?.stop();
  });

  /**
   * Run `-b OLDEST` (or `select`) on `path` through a proxy that kills it once moto has answered the request
   * `killAfter` picks (before the answer reaches it), then run it again directly.
   */
  async function killedThenRerun(
    path: string,
    killAfter: (method: string, url: string, body: Buffer) => boolean,
    {
      batchSize = '5', select = ['-b', OLDEST], rerun = select, hold = (_body: Buffer): boolean => false, between = async (): Promise<void> => {},
    }: { batchSize?: string; select?: string[]; rerun?: string[]; hold?: (body: Buffer) => boolean; between?: () => Promise<void> } = {},
  ): Promise<number | string | null> {
    let child: ReturnType<typeof spawnBin> | undefined;
    let fired = false;
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks);
        // a held request reaches moto once the kill fired, or after 2 s at the latest
        if (hold(body)) await Promise.race([released, new Promise((r) => setTimeout(r, 2000))]);
        if (fired) return void res.destroy();
        const up = httpRequest({ host: '127.0.0.1', port: moto.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
          const answer: Buffer[] = [];
          r.on('data', (c: Buffer) => answer.push(c));
          r.on('end', () => {
            if (!fired && killAfter(req.method ?? '', req.url ?? '', body)) {
              fired = true;
              child?.kill('SIGKILL');
              release();
              res.destroy();
              return;
            }
            res.writeHead(r.statusCode ?? 502, r.headers);
            res.end(Buffer.concat(answer));
          });
        });
        up.on('error', () => res.destroy());
        up.end(body);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const endpoint = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
      child = spawnBin('barman-cloud-backup-delete', ['--endpoint-url', endpoint, '--batch-size', batchSize, ...select, `s3://${bucket}/${path}`, 'srv'], { env: env() });
      expect(await exitOf(child)).toBe('SIGKILL');
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
    await between();
    const second = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, ...rerun, `s3://${bucket}/${path}`, 'srv'], { env: env() });
    return second.code;
  }

  it('killed after its first WAL delete, or after its backup.info delete: the next run ends as one clean run', async () => {
    const objects = catalog(30);
    await uploadObjects(store, 'clean', objects);
    const one = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, '-b', OLDEST, `s3://${bucket}/clean`, 'srv'], { env: env() });
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: 0, stderr: '' });
    const cleanKeys = await objectKeys(store, 'clean');
    expect(cleanKeys.filter((k) => k.includes('/wals/')).length).toBe(60);

    // a DeleteObject naming it, or a DeleteObjects whose body does
    const isDelete = (method: string, url: string, body: Buffer, what: string) =>
      (method === 'DELETE' && url.includes(what)) || (method === 'POST' && /[?&]delete/.test(url) && body.includes(what));
    await uploadObjects(store, 'wal', objects);
    expect(await killedThenRerun('wal', (m, u, b) => isDelete(m, u, b, '/wals/'))).toBe(0);
    expect(await objectKeys(store, 'wal')).toEqual(cleanKeys);

    await uploadObjects(store, 'info', objects);
    expect(await killedThenRerun('info', (m, u, b) => isDelete(m, u, b, 'backup.info'))).toBe(0);
    expect(await objectKeys(store, 'info')).toEqual(cleanKeys);
  }, 180_000);

  it.each([['-b', OLDEST], ['-r', 'REDUNDANCY 2']])('%s %s: the batch holding parts.json answered before the one holding data.tar: the data archive first part is gone first and restore refuses the backup left', async (...select) => {
    // The oldest backup's data archive in four parts (each a whole tar, as barman splits them),
    // with a parts.json; deleted in batches of two, side by side.
    const objects = catalog(4);
    const prefix = `srv/base/${OLDEST}/`;
    const parts = ['data.tar', 'data_0001.tar', 'data_0002.tar', 'data_0003.tar'];
    for (const [i, name] of parts.entries()) {
      objects.set(`${prefix}${name}`, (await tarOf([{ name: `file${i}`, data: `part ${i}` }])).toString('latin1'));
    }
    objects.set(`${prefix}parts.json`, '{}');
    const path = `o${select[0]}`;
    await uploadObjects(store, path, new Map([...objects].map(([k, v]) => [k, k.endsWith('.tar') ? Buffer.from(v, 'latin1') : v])));

    // The batch naming data.tar is held until the one naming parts.json has been carried out;
    // the command is killed then.
    const work = mkdtempSync(join(tmpdir(), 'bc-delete-order-'));
    const dest = join(work, 'restored');
    let restored: { code: number | string | null; stderr: string } | undefined;
    let left: string[] = [];
    const rerun = await killedThenRerun(path, (m, u, b) => m === 'POST' && /[?&]delete/.test(u) && b.includes('parts.json'), {
      batchSize: '2',
      select,
      hold: (b) => b.includes(`${prefix}data.tar</Key>`),
      between: async () => {
        left = await objectKeys(store, path);
        const r = await runBin('barman-cloud-restore', ['--endpoint-url', moto.url, `s3://${bucket}/${path}`, 'srv', OLDEST, dest], { env: env() });
        restored = { code: r.code, stderr: r.stderr };
      },
    });
    // The data archive's first part went first (a reader that ignores the FAILED mark, such as
    // barman's restore, finds no data.* and refuses); ours refuses the marked backup: exit 1,
    // nothing written.
    expect(left).not.toContain(`${prefix}data.tar`);
    expect(left).toContain(`${prefix}backup.info`);
    expect(restored!.code, restored!.stderr).toBe(1);
    expect(restored!.stderr).toContain(`Backup ${OLDEST} for server srv is being deleted`);
    expect(existsSync(dest) ? readdirSync(dest) : []).toEqual([]);
    rmSync(work, { recursive: true, force: true });
    expect(rerun).toBe(0);
    expect((await objectKeys(store, path)).filter((k) => k.startsWith(prefix))).toEqual([]);
  }, 120_000);
  it.each([['-r', 'REDUNDANCY 2'], ['-b', NEWEST]])('-b NEWEST killed once its data archive is gone: FAILED for ours and barman 3.4; a later %s %s leaves what the clean runs leave', async (...rerun) => {
    const objects = catalog(4, '3.4');
    const path = `newest${rerun[0]}`;
    const target = (p: string) => ['--endpoint-url', moto.url, `s3://${bucket}/${p}`, 'srv'];
    await uploadObjects(store, `clean${path}`, objects);
    for (const select of [['-b', NEWEST], ['-r', 'REDUNDANCY 2']]) {
      const r = await runBin('barman-cloud-backup-delete', [...select, ...target(`clean${path}`)], { env: env() });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
    const cleanKeys = await objectKeys(store, `clean${path}`);
    expect(cleanKeys).toEqual([...objects.keys()].filter((k) => !k.startsWith(`srv/base/${NEWEST}/`)).sort());

    await uploadObjects(store, path, objects);
    const work = mkdtempSync(join(tmpdir(), 'bc-delete-newest-'));
    const code = await killedThenRerun(path, (m, u, b) => m === 'POST' && /[?&]delete/.test(u) && b.includes(`${NEWEST}/data.tar</Key>`), {
      select: ['-b', NEWEST],
      rerun,
      between: async () => {
        expect(await objectKeys(store, path)).toContain(`srv/base/${NEWEST}/backup.info`);
        expect(await objectKeys(store, path)).not.toContain(`srv/base/${NEWEST}/data.tar`);
        await expectBeingDeleted(target(path), env(), work);
        if (skip34) return;
        // barman 3.4 reads the catalog: its console list (DONE backups only) leaves NEWEST out, its
        // JSON says FAILED, and under REDUNDANCY 2 it would delete nothing.
        const theirs = await runBarman('barman-cloud-backup-list', target(path), env());
        expect(theirs.code, theirs.stderr).toBe(0);
        expect(theirs.stdout.split('\n').filter((l) => /^\d{8}T/.test(l)).map((l) => l.slice(0, 15))).toEqual([OLDEST, '20260102T000000']);
        const json = await runBarman('barman-cloud-backup-list', ['--format', 'json', ...target(path)], env());
        const statuses = (JSON.parse(json.stdout) as { backups_list: { backup_id: string; status: string }[] }).backups_list;
        expect(statuses.map((b) => [b.backup_id, b.status])).toEqual([[OLDEST, 'DONE'], ['20260102T000000', 'DONE'], [NEWEST, 'FAILED']]);
        const dry = await runBarman('barman-cloud-backup-delete', ['--dry-run', '-r', 'REDUNDANCY 2', ...target(path)], env());
        expect(dry.code, dry.stderr).toBe(0);
        expect(dry.stdout + dry.stderr).not.toContain('Skipping deletion of objects');
      },
    });
    rmSync(work, { recursive: true, force: true });
    expect(code).toBe(0);
    expect(await objectKeys(store, path)).toEqual(cleanKeys);
  }, 180_000);
});

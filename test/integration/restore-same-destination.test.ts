// Two barman-cloud-restore runs into one destination at once (a DBA's second try while the first
// still runs, a retried job): each checks that the destination is empty, then extracts, replacing
// whatever is in a member's place (docs/format.md#restore-claim). Each run reads moto through its
// own proxy: X's first data part waits until Y asked for its own (or exited), and Y's waits until X
// has exited. Without a claim on the destination both exited 0 and the directory held Y's files
// plus the file only X's backup has: neither backup. Now the run that marks the destination
// second is refused with barman's "not empty" line (exit 1), and the directory is the other's
// backup exactly.
// Also: a restore whose backup backup-delete removes while it runs fails with one line (the part it
// had yet to read is gone), never exit 0 with part of the backup (checked, no change needed).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startS3Proxy, type ProxiedRequest, type Proxy } from '../helpers/proxy.ts';
import { treeKeys } from '../helpers/object-tree.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { tarOf } from '../helpers/tar.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const BUCKET = 'restore-dest';
const X = '20260101T000000';
const Y = '20260102T000000';

function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const dataGet = (r: ProxiedRequest) => r.method === 'GET' && /\/base\/\d{8}T\d{6}\/data\.tar$/.test(decodeURIComponent(r.url.split('?')[0]!));

describe('two restores into one destination at once (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const proxies: Proxy[] = [];
  const work = mkdtempSync(join(tmpdir(), 'bc-restore-dest-'));
  const files = (who: string) => Array.from({ length: 50 }, (_, i) => ({ name: `base/1/${i}`, data: `${who} ${i}\n`.repeat(100) }));

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket(BUCKET));
    for (const [id, members] of [[X, [...files('x'), { name: 'only-in-x', data: 'x\n' }]], [Y, files('y')]] as const) {
      await store.put(`srv/base/${id}/backup.info`, Buffer.from(serializeBackupInfo(newBackupInfo(id, { status: 'DONE', version: 150000, timeline: 1 }))));
      await store.put(`srv/base/${id}/data.tar`, await tarOf([...members]));
    }
  }, 60_000);

  afterAll(async () => {
    for (const p of proxies) await p.close();
    await store?.close();
    await moto?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it.each([
    ['a new directory', false],
    ['an empty directory', true],
  ])('into %s: one is refused (exit 1, one line) and the directory is the other backup exactly', async (_what, exists) => {
    const dest = join(work, `dest-${exists}`);
    if (exists) mkdirSync(dest);
    const yAsked = latch();
    const xExited = latch();
    const px = await startS3Proxy(moto.port, () => false, undefined, { hold: (r) => (dataGet(r) ? yAsked.promise : undefined) });
    const py = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => {
        if (!dataGet(r)) return undefined;
        yAsked.open();
        return xExited.promise;
      },
    });
    proxies.push(px, py);
    const env = cleanEnv(MOTO_ENV);
    const restore = (endpoint: string, id: string) => runBin('barman-cloud-restore', ['--endpoint-url', endpoint, `s3://${BUCKET}`, 'srv', id, dest], { env });
    const xRun = restore(px.url, X).then((x) => (xExited.open(), x));
    const yRun = restore(py.url, Y).then((y) => (yAsked.open(), y));
    const [x, y] = await Promise.all([xRun, yRun]);

    // Which of the two marks the destination first is the machine's choice; exactly one may restore.
    const [winner, loser] = x.code === 0 ? [x, y] : [y, x];
    expect({ code: winner.code, stderr: winner.stderr }).toEqual({ code: 0, stderr: '' });
    expect(loser.code, loser.stderr).toBe(1);
    const lines = loser.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`ERROR: Destination ${dest} already exists and it is not empty`));
    const expected = winner === x ? [...files('x'), { name: 'only-in-x', data: 'x\n' }] : files('y');
    expect(treeKeys(dest)).toEqual(expected.map((m) => m.name).sort());
    for (const m of expected) expect(readFileSync(join(dest, m.name), 'utf8')).toBe(m.data);
  }, 120_000);

  it('a restore refused after marking the destination leaves it as it was: no directory it made, no mark', async () => {
    const Z = '20260103T000000'; // backup.info and no data archive: "Missing file data.*", exit 1
    await store.put(`srv/base/${Z}/backup.info`, Buffer.from(serializeBackupInfo(newBackupInfo(Z, { status: 'DONE', version: 150000, timeline: 1 }))));
    const env = cleanEnv(MOTO_ENV);
    const fresh = join(work, 'made', 'deeper', 'dest');
    const empty = join(work, 'empty');
    mkdirSync(empty);
    for (const dest of [fresh, empty]) {
      const r = await runBin('barman-cloud-restore', ['--endpoint-url', moto.url, `s3://${BUCKET}`, 'srv', Z, dest], { env });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/ERROR: Missing file data\.\* for server srv\n$/) });
    }
    expect(existsSync(join(work, 'made'))).toBe(false);
    expect(readdirSync(empty)).toEqual([]);
  }, 60_000);

  it('a restore whose backup backup-delete removes meanwhile fails (never exit 0 with part of it)', async () => {
    const W = '20260104T000000'; // two parts: the second is asked for once the deletion is over
    await store.put(`srv/base/${W}/backup.info`, Buffer.from(serializeBackupInfo(newBackupInfo(W, { status: 'DONE', version: 150000, timeline: 1 }))));
    await store.put(`srv/base/${W}/data.tar`, await tarOf(files('w')));
    await store.put(`srv/base/${W}/data_0001.tar`, await tarOf([{ name: 'base/1/more', data: 'w more\n' }]));
    let deleted!: () => void;
    const gone = new Promise<void>((r) => (deleted = r));
    let asked!: () => void;
    const atSecond = new Promise<void>((r) => (asked = r));
    const proxy = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => {
        if (!(r.method === 'GET' && decodeURIComponent(r.url.split('?')[0]!).endsWith(`/${W}/data_0001.tar`))) return undefined;
        asked();
        return gone;
      },
    });
    proxies.push(proxy);
    const env = cleanEnv(MOTO_ENV);
    const dest = join(work, 'during-delete');
    const restore = runBin('barman-cloud-restore', ['--endpoint-url', proxy.url, `s3://${BUCKET}`, 'srv', W, dest], { env });
    await atSecond;
    const del = await runBin('barman-cloud-backup-delete', ['--endpoint-url', moto.url, `s3://${BUCKET}`, 'srv', '-b', W], { env });
    expect({ code: del.code, stderr: del.stderr }).toEqual({ code: 0, stderr: '' });
    deleted();
    const r = await restore;
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr.split('\n').filter(Boolean), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/data_0001\.tar/);
  }, 60_000);
});

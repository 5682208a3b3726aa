// Two backup-delete -r runs of one server at once (overlapping cron jobs). Each run's requests go
// to moto through its own proxy, which holds one run at a chosen point until the other has exited,
// so that the second works on the state the first left half-done (docs/format.md#delete-backup:
// a run's state at any request is one a killed run leaves). Both must exit 0 and the store must
// end with exactly the keys one run alone leaves: nothing a remaining backup needs goes, nothing
// the policy removes stays.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startS3Proxy, type ProxiedRequest, type Proxy } from '../helpers/proxy.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { objectKeys, uploadObjects } from '../helpers/object-tree.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate } from '../../src/catalog/backup-info.ts';
import { hex8 } from '../../src/xlog.ts';

const BUCKET = 'delete-overlap';
const wal = (pos: number) => hex8(1) + hex8(Math.floor(pos / 256)) + hex8(pos % 256);

/** Four DONE backups on timeline 1, `per` WAL segments from each one's begin_wal on. */
function catalog(per: number): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < 4; i++) {
    const when = new Date(Date.UTC(2026, 0, 1 + i));
    const id = when.toISOString().slice(0, 19).replace(/[-:]/g, '');
    const begin = 1 + i * per;
    out.set(`base/${id}/backup.info`, serializeBackupInfo(newBackupInfo(id, {
      status: 'DONE', timeline: 1, begin_wal: wal(begin), end_wal: wal(begin + 1),
      begin_time: pyDatetimeStr(timestampFromDate(when, 0, 0)),
      end_time: pyDatetimeStr(timestampFromDate(new Date(when.getTime() + 60_000), 0, 0)),
    })));
    out.set(`base/${id}/data.tar`, `data ${id}`);
    out.set(`base/${id}/data_0001.tar`, `more data ${id}`);
    for (let p = begin; p < begin + per; p++) out.set(`wals/${wal(p).slice(0, 16)}/${wal(p)}`, `wal ${p}`);
  }
  return out;
}

/** A request that deletes something, and whether it names a backup.info. */
const deletes = (r: ProxiedRequest) => r.method === 'DELETE' || (r.method === 'POST' && /[?&]delete/.test(r.url));
const deletesInfo = (r: ProxiedRequest) => deletes(r) && (r.url.includes('backup.info') || r.body.includes('backup.info'));

describe('two backup-delete -r runs at once (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const proxies: Proxy[] = [];
  const env = cleanEnv(MOTO_ENV);
  const args = (endpoint: string, server: string) => ['--endpoint-url', endpoint, '--batch-size', '7', '-r', 'REDUNDANCY 2', `s3://${BUCKET}`, server];
  let alone: string[];

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket(BUCKET));
    for (const server of ['alone', 'late-info', 'stale-report']) await uploadObjects(store, server, catalog(40));
    const one = await runBin('barman-cloud-backup-delete', args(moto.url, 'alone'), { env });
    expect({ code: one.code, stderr: one.stderr }).toEqual({ code: 0, stderr: '' });
    alone = (await objectKeys(store, 'alone')).sort();
    // REDUNDANCY 2 of four: the two oldest go, with the WAL before the third's begin_wal.
    expect(alone.filter((k) => k.endsWith('backup.info'))).toHaveLength(2);
    expect(alone).not.toContain(`wals/${wal(1).slice(0, 16)}/${wal(1)}`);
  }, 120_000);

  afterAll(async () => {
    for (const p of proxies) await p.close();
    await store?.close();
    await moto?.stop();
  });

  /** Run A and B; A's requests matching `holdA` wait until B has exited, and B starts once A is held. */
  async function overlap(server: string, holdA: (r: ProxiedRequest) => boolean): Promise<void> {
    let bExited!: () => void;
    const bDone = new Promise<void>((r) => (bExited = r));
    let aHeld!: () => void;
    const aAtHold = new Promise<void>((r) => (aHeld = r));
    const pa = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => {
        if (!holdA(r)) return undefined;
        aHeld();
        return bDone;
      },
    });
    proxies.push(pa);
    const a = runBin('barman-cloud-backup-delete', args(pa.url, server), { env });
    const first = await Promise.race([aAtHold.then(() => 'held'), a.then(() => 'ended')]);
    expect(first, 'A reached the point where it is held').toBe('held');
    const b = await runBin('barman-cloud-backup-delete', args(moto.url, server), { env });
    bExited();
    const aDone = await a;
    // B meets backups whose data A has deleted: barman's warning, as a rerun after a kill prints.
    const bLines = b.stderr.split('\n').filter((l) => l && !/ WARNING: Missing file \S+\/data\.\* for server /.test(l));
    expect({ a: [aDone.code, aDone.stderr], b: [b.code, bLines] }).toEqual({ a: [0, ''], b: [0, []] });
    expect((await objectKeys(store, server)).sort()).toEqual(alone);
  }

  it('B runs whole while A waits before its first backup.info deletion (data and WAL gone, catalog unchanged)', async () => {
    await overlap('late-info', deletesInfo);
  }, 120_000);

  it('B runs whole while A, its report made, waits before its first deletion', async () => {
    await overlap('stale-report', deletes);
  }, 120_000);

  it('a backup still running (its claim and first part, no backup.info) is left alone, and the WAL kept is the same', async () => {
    const running = new Map(catalog(40));
    running.set('base/20260105T000000/parts.json', '{"version": 1, "backup_id": "20260105T000000", "parts": []}\n');
    running.set('base/20260105T000000/data.tar', 'data being written');
    await uploadObjects(store, 'running', running);
    const r = await runBin('barman-cloud-backup-delete', args(moto.url, 'running'), { env });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect((await objectKeys(store, 'running')).sort()).toEqual([...alone, 'base/20260105T000000/data.tar', 'base/20260105T000000/parts.json'].sort());
  }, 120_000);
});

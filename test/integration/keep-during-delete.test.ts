// backup-keep while backup-delete -r deletes the same backup (a DBA's keep while the retention
// cron job runs). delete -r reads the keep annotations once more after its retention report
// (src/retention/delete.ts, deleteInBulk) and leaves a backup kept by then; a keep written after
// that look and before the first deletion is not seen. Here the deletion's requests go through a
// proxy that holds its first deletion until backup-keep has exited: keep exits 0 ("kept"), and
// the backup is deleted anyway, its keep annotation left behind.
//
// KNOWN, NOT FIXED HERE: the fix belongs in src/retention/delete.ts (owned by another helper this
// session). A handshake closes it: the deletion first writes a mark of its own under the backup
// (say `annotations/deleting`), then reads the keep annotation; backup-keep writes its annotation,
// then reads the mark and, if it is there, removes its annotation and exits 1 ("being deleted").
// Each writes before it reads, and a listing or GET sees every write finished before it, so at
// least one of the two sees the other (the argument of docs/architecture.md "One object per
// segment"). Until then this test is marked `fails`: it passes while the race is open, and fails
// (so must be unmarked) once the fix lands.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startS3Proxy, type ProxiedRequest, type Proxy } from '../helpers/proxy.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { tarOf } from '../helpers/tar.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const BUCKET = 'keep-delete';
const OLD = '20260101T000000';
const NEW = '20260102T000000';

const deletes = (r: ProxiedRequest) => r.method === 'DELETE' || (r.method === 'POST' && /[?&]delete/.test(r.url));

describe('backup-keep while backup-delete -r deletes that backup (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  let proxy: Proxy | undefined;

  beforeAll(async () => {
    ({ moto, store } = await startMotoBucket(BUCKET));
    for (const [id, wal] of [[OLD, '000000010000000000000002'], [NEW, '000000010000000000000004']] as const) {
      const info = newBackupInfo(id, {
        status: 'DONE', version: 150000, timeline: 1, begin_wal: wal, end_wal: wal,
        begin_time: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)} 00:00:00.000000+00:00`,
        end_time: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)} 00:01:00.000000+00:00`,
      });
      await store.put(`srv/base/${id}/backup.info`, Buffer.from(serializeBackupInfo(info)));
      await store.put(`srv/base/${id}/data.tar`, await tarOf([{ name: 'PG_VERSION', data: '15\n' }]));
    }
  }, 60_000);

  afterAll(async () => {
    await proxy?.close();
    await store?.close();
    await moto?.stop();
  });

  it.fails('a keep that exits 0 leaves the backup listed (open: the keep comes after delete -r looked)', async () => {
    let keepDone!: () => void;
    const kept = new Promise<void>((r) => (keepDone = r));
    let held = false;
    proxy = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => {
        if (!deletes(r) || held) return undefined;
        held = true;
        return kept;
      },
    });
    const env = cleanEnv(MOTO_ENV);
    const url = (endpoint: string) => ['--endpoint-url', endpoint, `s3://${BUCKET}`, 'srv'];
    const deletion = runBin('barman-cloud-backup-delete', [...url(proxy.url), '-r', 'REDUNDANCY 1'], { env });
    let ended = false;
    void deletion.then(() => (ended = true));
    while (!held && !ended) await new Promise((r) => setTimeout(r, 20));
    if (!held) throw new Error(`backup-delete deleted nothing: ${JSON.stringify(await deletion)}`);
    const keep = await runBin('barman-cloud-backup-keep', ['--target', 'full', ...url(moto.url), OLD], { env });
    keepDone();
    const del = await deletion;
    expect(del.code, del.stderr).toBe(0);

    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url(moto.url)], { env });
    const ids = (JSON.parse(list.stdout) as { backups_list: { backup_id: string }[] }).backups_list.map((b) => b.backup_id);
    // The rule: a keep that reports success has kept the backup.
    expect({ keep: keep.code, listed: ids.includes(OLD) }).toEqual({ keep: 0, listed: true });
  }, 120_000);
});

// backup-keep while backup-delete -r deletes the same backup (a DBA's keep while the retention
// cron job runs). The rule: a keep that exits 0 has kept the backup. The two commands meet through
// the store only, so each writes before it reads (docs/format.md#keep-handshake): the deletion marks
// backup.info FAILED, then looks at the keep annotations once more; backup-keep writes its
// annotation, then reads backup.info again. Whichever writes second sees the other's write.
// Each case holds one request of one command (a proxy in front of moto) until the other command
// has reached the point that matters, so the interleaving is the same on every run:
//   - the deletion's mark held until keep has exited (-r and -b): keep saw DONE and exits 0; the
//     deletion's look after its mark finds the keep, puts backup.info back and leaves the backup
//     (-b then exits 1 with barman's words for a kept backup);
//   - keep's annotation held until the deletion's look after its mark is answered: the deletion
//     saw no keep and deletes; keep finds the mark, withdraws its annotation and exits 1;
//   - keep started once the deletion's first deletion is held: keep sees FAILED and exits 1.
// Before the handshake the first two ended with keep exit 0 and the backup deleted anyway.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startS3Proxy, type ProxiedRequest, type Proxy } from '../helpers/proxy.ts';
import { MOTO_ENV, startMotoBucket } from '../helpers/moto.ts';
import { tarOf } from '../helpers/tar.ts';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { NotFoundError } from '../../src/errors.ts';
import type { ObjectStore } from '../../src/storage/types.ts';

const BUCKET = 'keep-delete';
const OLD = '20260101T000000';
const NEW = '20260102T000000';

const deletes = (r: ProxiedRequest) => r.method === 'DELETE' || (r.method === 'POST' && /[?&]delete/.test(r.url));
const marks = (r: ProxiedRequest) => r.method === 'PUT' && r.url.includes(`/${OLD}/backup.info`);
const lists = (r: ProxiedRequest) => r.method === 'GET' && /[?&]list-type=2/.test(r.url);
const keeps = (r: ProxiedRequest) => r.method === 'PUT' && r.url.includes(`/${OLD}/annotations/keep`);

describe('backup-keep while backup-delete -r deletes that backup (moto)', () => {
  let moto: ServerHandle;
  let store: ObjectStore;
  const proxies: Proxy[] = [];
  const env = cleanEnv(MOTO_ENV);
  const url = (endpoint: string) => ['--endpoint-url', endpoint, `s3://${BUCKET}`, 'srv'];

  beforeEach(async () => {
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

  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close();
    await store?.close();
    await moto?.stop();
  });

  /** What the store holds for OLD afterwards: listed (and with which status), kept or not. */
  async function outcome() {
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url(moto.url)], { env });
    const old = (JSON.parse(list.stdout) as { backups_list: { backup_id: string; status: string }[] }).backups_list.find((b) => b.backup_id === OLD);
    const kept = await store.getBuffer(`srv/base/${OLD}/annotations/keep`).then(() => true, (e) => {
      if (e instanceof NotFoundError) return false;
      throw e;
    });
    return { status: old?.status ?? 'not listed', kept };
  }

  /** A promise and the function that settles it. */
  function gate(): { opened: Promise<void>; open: () => void } {
    let open!: () => void;
    return { opened: new Promise<void>((r) => (open = r)), open };
  }

  it.each([
    { how: '-r', args: ['-r', 'REDUNDANCY 1'], code: 0, says: `Skipping delete of backup ${OLD} for server srv: a keep request was added during this run` },
    { how: '-b', args: ['-b', OLD], code: 1, says: `Skipping delete of backup ${OLD} for server srv as it has a current keep request` },
  ])('keep while the deletion ($how) marks: keep exits 0, the deletion sees it and leaves the backup DONE', async ({ args, code, says }) => {
    const keepExited = gate();
    let held = false;
    const deleteProxy = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => (marks(r) && !held ? ((held = true), keepExited.opened) : undefined),
    });
    proxies.push(deleteProxy);
    const deletion = runBin('barman-cloud-backup-delete', [...url(deleteProxy.url), ...args], { env });
    for (let i = 0; !held && i < 1500; i++) await new Promise((r) => setTimeout(r, 20));
    expect(held, 'backup-delete never marked OLD').toBe(true);
    const keep = await runBin('barman-cloud-backup-keep', ['--target', 'full', ...url(moto.url), OLD], { env });
    keepExited.open();
    const del = await deletion;
    expect(del.code, del.stderr).toBe(code);
    expect(del.stderr).toContain(says);
    expect({ keep: keep.code, ...(await outcome()) }).toEqual({ keep: 0, status: 'DONE', kept: true });
  }, 120_000);

  it('keep written after the deletion looked: keep finds the mark, withdraws and exits 1', async () => {
    const lookedAfterMark = gate();
    let marked = false;
    const deleteProxy = await startS3Proxy(moto.port, () => false, undefined, {
      answered: (r) => {
        if (marks(r)) marked = true;
        else if (marked && lists(r)) lookedAfterMark.open();
      },
    });
    let keepHeld = false;
    const keepProxy = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => (keeps(r) ? ((keepHeld = true), lookedAfterMark.opened) : undefined),
    });
    proxies.push(deleteProxy, keepProxy);
    const keep = runBin('barman-cloud-backup-keep', ['--target', 'full', ...url(keepProxy.url), OLD], { env });
    for (let i = 0; !keepHeld && i < 1500; i++) await new Promise((r) => setTimeout(r, 20));
    expect(keepHeld, 'backup-keep never wrote its annotation').toBe(true);
    const del = await runBin('barman-cloud-backup-delete', [...url(deleteProxy.url), '-r', 'REDUNDANCY 1'], { env });
    expect(del.code, del.stderr).toBe(0);
    const k = await keep;
    expect(k.stderr).toMatch(new RegExp(`Cannot add keep to backup ${OLD} because it has status (FAILED|deleted)`));
    expect({ keep: k.code, ...(await outcome()) }).toEqual({ keep: 1, status: 'not listed', kept: false });
  }, 120_000);

  it('keep once the deletion is deleting: keep sees FAILED and exits 1', async () => {
    const keepExited = gate();
    let held = false;
    const deleteProxy = await startS3Proxy(moto.port, () => false, undefined, {
      hold: (r) => (deletes(r) && !held ? ((held = true), keepExited.opened) : undefined),
    });
    proxies.push(deleteProxy);
    const deletion = runBin('barman-cloud-backup-delete', [...url(deleteProxy.url), '-r', 'REDUNDANCY 1'], { env });
    for (let i = 0; !held && i < 1500; i++) await new Promise((r) => setTimeout(r, 20));
    expect(held, 'backup-delete deleted nothing').toBe(true);
    const keep = await runBin('barman-cloud-backup-keep', ['--target', 'full', ...url(moto.url), OLD], { env });
    keepExited.open();
    const del = await deletion;
    expect(del.code, del.stderr).toBe(0);
    expect(keep.stderr).toContain(`Cannot add keep to backup ${OLD} because it has status FAILED`);
    expect({ keep: keep.code, ...(await outcome()) }).toEqual({ keep: 1, status: 'not listed', kept: false });
  }, 120_000);
});

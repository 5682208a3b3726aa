// Property tests of retention and deletion over random catalogs (seeded, reproducible): random
// statuses, keep annotations, timeline switches, end times, compression suffixes and hash
// directories. Whatever the catalog and the policy:
//   - the newest DONE backup is never deleted when the policy or -m keeps at least one backup;
//   - kept backups and non-DONE backups are never deleted by -r;
//   - every WAL from each remaining DONE / WAITING_FOR_WALS backup's begin_wal onward on its timeline
//     survives (only the [begin_wal, end_wal] range for a backup kept standalone), history files too;
//   - a dry run deletes nothing, and prints exactly the objects a real run then deletes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Readable } from 'node:stream';
import { NotFoundError } from '../../src/errors.ts';
import { setLogSink } from '../../src/log.ts';
import type { DeleteResult, ListEntry, ListOptions, ObjectInfo, ObjectStore, Tag } from '../../src/storage/types.ts';
import { newBackupInfo, pyDatetimeStr, serializeBackupInfo, timestampFromDate, type BackupInfo } from '../../src/catalog/backup-info.ts';
import { BackupCatalog } from '../../src/catalog/catalog.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { hex8 } from '../../src/xlog.ts';
import { evaluateRetention, obsoleteBackupIds, retentionDeletions, type RetentionPolicy } from '../../src/retention/policy.ts';
import { BackupDeleter } from '../../src/retention/delete.ts';
import { walNameFromKey } from '../../src/retention/wal-cleanup.ts';

/** mulberry32: a tiny seeded PRNG, enough to make every failing case reproducible from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An in-memory ObjectStore: key-ordered listings with '/' delimiter, small delete batches. */
class MemoryStore implements ObjectStore {
  readonly provider = 'file' as const;
  readonly bucket = 'memory';
  readonly maxDeleteBatch = 7;
  readonly objects = new Map<string, Buffer>();
  deleteRequests = 0;

  async testConnectivity() {
    return 'ok' as const;
  }
  async bucketExists() {
    return true;
  }
  async createBucket() {}
  async head(key: string): Promise<ObjectInfo | null> {
    const b = this.objects.get(key);
    return b ? { key, size: b.length } : null;
  }
  async get(key: string): Promise<Readable> {
    return Readable.from([await this.getBuffer(key)]);
  }
  async getBuffer(key: string): Promise<Buffer> {
    const b = this.objects.get(key);
    if (!b) throw new NotFoundError(key);
    return b;
  }
  async put(key: string, body: Buffer | Readable): Promise<void> {
    if (!Buffer.isBuffer(body)) throw new Error('buffers only');
    this.objects.set(key, body);
  }
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    const seen = new Set<string>();
    for (const key of [...this.objects.keys()].sort()) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const cut = options.delimiter ? rest.indexOf(options.delimiter) : -1;
      if (cut >= 0) {
        const p = prefix + rest.slice(0, cut + 1);
        if (!seen.has(p)) {
          seen.add(p);
          yield { kind: 'prefix', prefix: p };
        }
      } else yield { kind: 'object', key, size: this.objects.get(key)!.length };
    }
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
  async deleteMany(keys: string[], batchSize = this.maxDeleteBatch): Promise<DeleteResult> {
    expect(batchSize).toBeLessThanOrEqual(this.maxDeleteBatch);
    for (let i = 0; i < keys.length; i += batchSize) this.deleteRequests++;
    for (const k of keys) this.objects.delete(k);
    return { deleted: [...keys], errors: [] };
  }
  async getTags(): Promise<Tag[]> {
    return [];
  }
  async close() {}
  clone(): MemoryStore {
    const c = new MemoryStore();
    for (const [k, v] of this.objects) c.objects.set(k, v);
    return c;
  }
}

/**
 * A store that "dies" at its `limit`-th WAL delete request: that request and everything after it
 * never completes and changes nothing, like a process killed there. `crashed` resolves with the
 * objects as they stood.
 */
class DyingStore extends MemoryStore {
  private walRequests = 0;
  private dead = false;
  private resolveCrash!: (objects: Map<string, Buffer>) => void;
  readonly crashed = new Promise<Map<string, Buffer>>((r) => (this.resolveCrash = r));
  constructor(private readonly limit: number, from: MemoryStore) {
    super();
    for (const [k, v] of from.objects) this.objects.set(k, v);
  }
  override async deleteMany(keys: string[], batchSize?: number): Promise<DeleteResult> {
    if (!this.dead && keys.some((k) => k.startsWith(layout.walsPrefix)) && this.walRequests++ >= this.limit) {
      this.dead = true;
      this.resolveCrash(new Map(this.objects));
    }
    if (this.dead) return new Promise<DeleteResult>(() => {});
    return super.deleteMany(keys, batchSize);
  }
}

const NOW = new Date(Date.UTC(2026, 5, 30, 12));
const DAY = 86_400_000;
const layout = new ServerLayout('pfx', 'srv');
/** Few segments per log number, so that catalogs span many hash directories. */
const SEGS_PER_LOG = 4;
const walName = (tli: number, pos: number) => hex8(tli) + hex8(Math.floor(pos / SEGS_PER_LOG)) + hex8(pos % SEGS_PER_LOG);

interface World {
  store: MemoryStore;
  backups: BackupInfo[];
  keeps: Map<string, string>;
}

function randomWorld(rand: () => number): World {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const store = new MemoryStore();
  const put = (key: string, body: string) => store.objects.set(key, Buffer.from(body));
  const n = 1 + Math.floor(rand() * 9);
  const backups: BackupInfo[] = [];
  const keeps = new Map<string, string>();
  const switches: [number, number][] = [[0, 1]]; // (first position, timeline)
  let tli = 1;
  let pos = 1 + Math.floor(rand() * 6);
  let day = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0 && rand() < 0.2) {
      tli += 1;
      switches.push([pos, tli]);
      put(`${layout.walsPrefix}${hex8(tli)}.history`, `history ${tli}`);
    }
    day += 1 + Math.floor(rand() * 6);
    const when = new Date(NOW.getTime() - (60 - day) * DAY);
    const id = `${when.toISOString().slice(0, 10).replace(/-/g, '')}T${String(i).padStart(2, '0')}0000`;
    const status = pick(['DONE', 'DONE', 'DONE', 'DONE', 'DONE', 'DONE', 'FAILED', 'WAITING_FOR_WALS', 'STARTED'] as const);
    const begin = pos;
    const end = begin + Math.floor(rand() * 3);
    const hasEnd = status === 'DONE' || status === 'WAITING_FOR_WALS' || rand() < 0.5;
    const endTime = new Date(when.getTime() + 3_600_000);
    const tablespaces = rand() < 0.3 ? [{ name: 'tbs', oid: 16384 + Math.floor(rand() * 3), location: '/tbs' }] : null;
    const info = newBackupInfo(id, {
      status, timeline: tli, begin_wal: walName(tli, begin), end_wal: hasEnd ? walName(tli, end) : null,
      begin_time: pyDatetimeStr(timestampFromDate(when, 0, 0)),
      end_time: hasEnd ? pyDatetimeStr(timestampFromDate(endTime, 0, 0)) : null,
      tablespaces,
    });
    backups.push(info);
    put(layout.backupInfoKey(id), serializeBackupInfo(info));
    put(`${layout.backupPrefix(id)}data.tar.gz`, `data of ${id}`);
    if (rand() < 0.3) put(`${layout.backupPrefix(id)}data_0001.tar.gz`, `more data of ${id}`);
    for (const ts of tablespaces ?? []) put(`${layout.backupPrefix(id)}${ts.oid}.tar.gz`, `tbs of ${id}`);
    put(layout.walKey(`${walName(tli, begin)}.00000028.backup`) + pick(['', '.gz']), `label of ${id}`);
    if (status === 'DONE' && rand() < 0.3) {
      const target = pick(['full', 'standalone', 'standalone']);
      keeps.set(id, target);
      put(layout.annotationKey(id, 'keep'), target);
    }
    pos = end + 1 + Math.floor(rand() * 4);
  }
  // The archive: every position up to a little past the last backup, on the timeline current then.
  const last = pos + Math.floor(rand() * 5);
  for (let p = 1; p <= last; p++) {
    let t = 1;
    for (const [from, tl] of switches) if (p >= from) t = tl;
    if (rand() < 0.1) continue; // holes happen
    put(layout.walKey(walName(t, p)) + pick(['', '.gz', '.zst', '.lz4']), `wal ${t}/${p}`);
    // the old timeline's last segment, renamed .partial at a switch
    const sw = switches.find(([from]) => from === p + 1);
    if (sw && rand() < 0.7) put(layout.walKey(`${walName(sw[1] - 1, p + 1)}.partial`), 'partial');
  }
  return { store, backups, keeps };
}

function randomPolicy(rand: () => number): { policy: RetentionPolicy; m: number } {
  const m = rand() < 0.5 ? 0 : Math.floor(rand() * 4);
  if (rand() < 0.5) return { policy: { kind: 'redundancy', value: Math.floor(rand() * 5) }, m };
  return { policy: { kind: 'window', value: Math.floor(rand() * 40), unit: 'd' }, m };
}

async function runDeletion(store: ObjectStore, ids: (catalog: Map<string, BackupInfo>, keeps: Map<string, string | null>) => string[], fromRetentionPolicy: boolean, dryRun: boolean) {
  const catalog = new BackupCatalog(store, layout);
  const backups = await catalog.getBackupList();
  const keeps = new Map<string, string | null>();
  for (const id of backups.keys()) keeps.set(id, await catalog.getKeepTarget(id));
  const printed: string[] = [];
  const deleter = new BackupDeleter(store, catalog, layout, keeps, { dryRun, batchSize: 3, print: (l) => printed.push(l) });
  const toDelete = ids(new Map(backups), keeps);
  const summary = await deleter.deleteAll(toDelete, fromRetentionPolicy);
  return { summary, printed, toDelete };
}

/** The keys a dry run announced: object lists, and every object under an announced prefix. */
function announcedKeys(printed: string[], store: MemoryStore): Set<string> {
  const keys = new Set<string>();
  for (const line of printed) {
    const list = /^Skipping deletion of objects \[(.*)\] due to --dry-run option$/.exec(line);
    const prefix = /^Skipping deletion of all objects under prefix (.*) due to --dry-run option$/.exec(line);
    if (list) {
      for (const m of list[1]!.matchAll(/'([^']*)'/g)) keys.add(m[1]!);
    } else if (prefix) {
      for (const k of store.objects.keys()) if (k.startsWith(prefix[1]!)) keys.add(k);
    } else {
      throw new Error(`unexpected dry-run line: ${line}`);
    }
  }
  return keys;
}

/** Everything a remaining backup needs must still be there. */
function checkSafety(world: World, before: MemoryStore, after: MemoryStore, label: string): void {
  const remaining = world.backups.filter((b) => after.objects.has(layout.backupInfoKey(b.backup_id)));
  const walNames = [...before.objects.keys()].filter((k) => k.startsWith(layout.walsPrefix))
    .map((k) => ({ key: k, name: walNameFromKey(k) })).filter((w): w is { key: string; name: string } => w.name !== null);
  for (const w of walNames) {
    if (w.name.endsWith('.history')) expect(after.objects.has(w.key), `${label}: history ${w.key}`).toBe(true);
  }
  for (const b of remaining) {
    for (const k of before.objects.keys()) {
      if (k.startsWith(layout.backupPrefix(b.backup_id))) expect(after.objects.has(k), `${label}: object ${k} of remaining ${b.backup_id}`).toBe(true);
    }
    if (b.status !== 'DONE' && b.status !== 'WAITING_FOR_WALS') continue;
    const tli = hex8(b.timeline!);
    const standalone = world.keeps.get(b.backup_id) === 'standalone';
    for (const w of walNames) {
      if (!w.name.startsWith(tli) || w.name.endsWith('.history')) continue;
      const n = w.name.slice(0, 24);
      const needed = standalone ? n >= b.begin_wal! && n <= b.end_wal! : n >= b.begin_wal!;
      if (needed) expect(after.objects.has(w.key), `${label}: WAL ${w.key} needed by ${b.backup_id}`).toBe(true);
    }
  }
}

describe('retention and deletion over random catalogs', () => {
  let logs: string[] = [];
  beforeAll(() => setLogSink((l) => logs.push(l)));
  afterAll(() => setLogSink((l) => process.stderr.write(l)));

  it('-r: never deletes what the remaining backups need; dry run = real run, and changes nothing', async () => {
    // How much each run exercised, so that the generator cannot silently degenerate.
    const seen = { deletions: 0, walDeletions: 0, prefixLines: 0, protectedStandalone: 0 };
    for (let seed = 1; seed <= 400; seed++) {
      logs = [];
      const rand = prng(seed);
      const world = randomWorld(rand);
      const { policy, m } = randomPolicy(rand);
      const label = `seed ${seed} ${JSON.stringify(policy)} -m ${m}`;
      const byId = new Map(world.backups.map((b) => [b.backup_id, b]));
      const report = evaluateRetention(policy, { backups: byId, keepTarget: (id) => world.keeps.get(id) ?? null, minimumRedundancy: m, now: NOW });
      const obsolete = obsoleteBackupIds(report);
      for (const id of obsolete) {
        expect(byId.get(id)!.status, label).toBe('DONE');
        expect(world.keeps.has(id), label).toBe(false);
      }
      const newestDone = world.backups.filter((b) => b.status === 'DONE').at(-1);
      const keepsOne = policy.kind === 'window' || Math.max(policy.value, m) >= 1;
      if (newestDone && keepsOne) expect(obsolete, label).not.toContain(newestDone.backup_id);

      const ids = (catalog: Map<string, BackupInfo>, keeps: Map<string, string | null>) =>
        retentionDeletions(evaluateRetention(policy, { backups: catalog, keepTarget: (id) => keeps.get(id) ?? null, minimumRedundancy: m, now: NOW }), catalog.values());
      const dryStore = world.store.clone();
      const dry = await runDeletion(dryStore, ids, true, true);
      expect([...dryStore.objects.keys()], label).toEqual([...world.store.objects.keys()]);
      expect(dryStore.deleteRequests, label).toBe(0);
      expect(dry.toDelete, label).toEqual(obsolete);

      const realStore = world.store.clone();
      const real = await runDeletion(realStore, ids, true, false);
      expect(real.summary.failure, label).toBeUndefined();
      expect(real.summary.backupIds, label).toEqual(obsolete);
      const deleted = [...world.store.objects.keys()].filter((k) => !realStore.objects.has(k)).sort();
      expect(deleted, label).toEqual([...announcedKeys(dry.printed, world.store)].sort());
      expect(real.summary.backupObjectsDeleted + real.summary.walObjectsDeleted, label).toBe(deleted.length);
      expect(real.summary.bytesFreed, label).toBe(deleted.reduce((s, k) => s + world.store.objects.get(k)!.length, 0));
      if (newestDone && keepsOne) expect(realStore.objects.has(layout.backupInfoKey(newestDone.backup_id)), label).toBe(true);
      for (const id of world.keeps.keys()) expect(realStore.objects.has(layout.backupInfoKey(id)), label).toBe(true);
      checkSafety(world, world.store, realStore, label);
      if (real.summary.backupIds.length > 0) seen.deletions++;
      if (real.summary.walObjectsDeleted > 0) seen.walDeletions++;
      if (dry.printed.some((l) => l.includes('under prefix'))) seen.prefixLines++;
      if (real.summary.walObjectsDeleted > 0 && [...world.keeps.values()].includes('standalone')) seen.protectedStandalone++;

      // Running the same policy again deletes nothing more: the first run left a consistent state.
      const again = realStore.clone();
      const second = await runDeletion(again, ids, true, false);
      expect(second.summary.backupIds, label).toEqual([]);
      expect([...again.objects.keys()], label).toEqual([...realStore.objects.keys()]);
    }
    expect(seen.deletions).toBeGreaterThan(150);
    expect(seen.walDeletions).toBeGreaterThan(100);
    expect(seen.prefixLines).toBeGreaterThan(50);
    expect(seen.protectedStandalone).toBeGreaterThan(10);
  });

  it('-b: deleting any unkept backup keeps what the others need', async () => {
    for (let seed = 1001; seed <= 1300; seed++) {
      const rand = prng(seed);
      const world = randomWorld(rand);
      const candidates = world.backups.filter((b) => !world.keeps.has(b.backup_id));
      if (candidates.length === 0) continue;
      const victim = candidates[Math.floor(rand() * candidates.length)]!.backup_id;
      const label = `seed ${seed} -b ${victim}`;
      const dryStore = world.store.clone();
      const dry = await runDeletion(dryStore, () => [victim], false, true);
      expect([...dryStore.objects.keys()], label).toEqual([...world.store.objects.keys()]);
      const store = world.store.clone();
      const real = await runDeletion(store, () => [victim], false, false);
      expect(real.summary.backupIds, label).toEqual([victim]);
      expect(store.objects.has(layout.backupInfoKey(victim)), label).toBe(false);
      const deleted = [...world.store.objects.keys()].filter((k) => !store.objects.has(k)).sort();
      expect(deleted, label).toEqual([...announcedKeys(dry.printed, world.store)].sort());
      checkSafety(world, world.store, store, label);
    }
  });

  it('a -r run killed during its WAL pass is finished by the next run: same end state, nothing needed lost', async () => {
    let interrupted = 0;
    for (let seed = 3001; seed <= 3300; seed++) {
      const rand = prng(seed);
      const world = randomWorld(rand);
      const { policy, m } = randomPolicy(rand);
      const ids = (catalog: Map<string, BackupInfo>, keeps: Map<string, string | null>) =>
        retentionDeletions(evaluateRetention(policy, { backups: catalog, keepTarget: (id) => keeps.get(id) ?? null, minimumRedundancy: m, now: NOW }), catalog.values());
      const clean = world.store.clone();
      await runDeletion(clean, ids, true, false);
      const dying = new DyingStore(Math.floor(rand() * 4), world.store);
      const outcome = await Promise.race([dying.crashed, runDeletion(dying, ids, true, false).then(() => null)]);
      if (outcome === null) continue; // finished before the chosen request
      interrupted++;
      const label = `seed ${seed} ${JSON.stringify(policy)} -m ${m}`;
      const store = new MemoryStore();
      for (const [k, v] of outcome) store.objects.set(k, v);
      const second = await runDeletion(store, ids, true, false);
      expect(second.summary.failure, label).toBeUndefined();
      checkSafety(world, world.store, store, label);
      expect([...store.objects.keys()], label).toEqual([...clean.objects.keys()]);
    }
    expect(interrupted).toBeGreaterThan(50);
  });

  it('a -r run killed while deleting the first backup\'s data objects is finished by the next run', async () => {
    for (let seed = 2001; seed <= 2150; seed++) {
      const rand = prng(seed);
      const world = randomWorld(rand);
      const policy: RetentionPolicy = { kind: 'redundancy', value: 1 };
      const ids = (catalog: Map<string, BackupInfo>, keeps: Map<string, string | null>) =>
        retentionDeletions(evaluateRetention(policy, { backups: catalog, keepTarget: (id) => keeps.get(id) ?? null, minimumRedundancy: 0, now: NOW }), catalog.values());
      const clean = world.store.clone();
      await runDeletion(clean, ids, true, false);
      // Interrupt: the first obsolete backup loses some of its data objects only.
      const store = world.store.clone();
      const first = ids(new Map(world.backups.map((b) => [b.backup_id, b])), new Map(world.keeps));
      if (first.length === 0) continue;
      const dataKeys = [...store.objects.keys()].filter((k) => k.startsWith(layout.backupPrefix(first[0]!)) && !k.endsWith('backup.info'));
      for (const k of dataKeys.slice(0, 1 + Math.floor(rand() * dataKeys.length))) store.objects.delete(k);
      await runDeletion(store, ids, true, false);
      expect([...store.objects.keys()], `seed ${seed}`).toEqual([...clean.objects.keys()]);
      checkSafety(world, world.store, store, `seed ${seed}`);
    }
  });
});

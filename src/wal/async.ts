// Asynchronous archiving and prefetching (--async): a detached worker per (store, server) keeps
// uploading the segments PostgreSQL marked .ready, or keeps N segments ahead of recovery, while
// PostgreSQL's one-file-at-a-time calls are answered from the spool. The contract stays that of
// the one-shot path: a call exits 0 only once its own segment is confirmed by the store (the
// marker is written after the confirmation), and a failure of the worker for that segment is
// handed to that call through an error file, so it fails as the worker's error would (src/cli maps it).
//   archive/worker.pid, restore/worker.pid   the running worker (pid; touched while it lives)
//   archive/<wal>.error                      {"kind","message"}: the worker's failure for <wal> (errorKind)
//   restore/want                             the last segment a Node call of wal-restore was asked for
//   restore/<wal>.fetching                   the prefetcher is downloading <wal> (the shell front waits)
import { promises as fs, constants as fsc, watch, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import { TaskWindow } from '../concurrency.js';
import { BarmanCloudError, GeneralError, NetworkError, NotFoundError, StorageError, errorKind, errorOfKind } from '../errors.js';
import { log } from '../log.js';
import type { ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { LONGEST_TIMER_MS } from '../storage/config.js';
import type { ArchiveOptions, WalListings } from './archive.js';
import { isSegmentName, nextSegment, parseSegmentName } from '../xlog.js';
import { archiveAndMark } from './parallel.js';
import { recordedWalEncryption } from './encryption-mode.js';
import { downloadTo, findWals, type WalCandidate } from './restore.js';
import type { AgeIdentities } from '../encryption/age.js';
import { processAlive, writeAtomic, type ArchiveSpool, type RestoreSpool } from './spool.js';
import { ownTempPrefix } from './temp-files.js';

const WORKER_LOCK = 'worker.pid';
/** A worker touches its lock this often; an untouched lock is stale even if its pid lives (reuse). */
const LOCK_TOUCH_MS = 1_000;
const LOCK_STALE_MS = 15_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The pid of the live worker whose lock is in `dir`, or null (none, dead, or not touched lately). */
export async function liveWorker(dir: string): Promise<number | null> {
  const path = join(dir, WORKER_LOCK);
  const [text, st] = await Promise.all([fs.readFile(path, 'utf8').catch(() => ''), fs.stat(path).catch(() => null)]);
  const pid = Number(text);
  if (!st || !Number.isInteger(pid) || pid <= 0) return null;
  if (Date.now() - st.mtimeMs > LOCK_STALE_MS || !processAlive(pid)) return null;
  return pid;
}

/**
 * Become the one worker of `dir`: O_EXCL create of the lock holding our pid; a stale lock (dead
 * pid, or not touched for LOCK_STALE_MS) is removed and the create tried once more. Two workers at
 * once would still be safe (each segment is claimed before upload), only wasteful.
 */
async function takeWorkerLock(dir: string): Promise<{ stillOurs: () => Promise<boolean>; release: () => Promise<void> } | null> {
  const path = join(dir, WORKER_LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await fs.open(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      let lastTouch = Date.now();
      return {
        // Touched every LOCK_TOUCH_MS so that it is not taken for stale; false once a successor
        // replaced us after a stall, and the worker should leave.
        stillOurs: async () => {
          const now = Date.now();
          if (now - lastTouch < LOCK_TOUCH_MS) return true;
          lastTouch = now;
          await fs.utimes(path, new Date(now), new Date(now)).catch(() => undefined);
          return (await liveWorker(dir)) === process.pid;
        },
        release: async () => {
          // Only our own lock: a successor may have replaced it after we were thought stale.
          if ((await fs.readFile(path, 'utf8').catch(() => '')) === String(process.pid)) await fs.rm(path, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if ((await liveWorker(dir)) !== null) return null;
      await fs.rm(path, { force: true });
    }
  }
  return null;
}

// ---- archive --------------------------------------------------------------------------------------

export interface WorkerFailure {
  /** The error's class in src/errors.ts (errorKind); absent for an error from outside the hierarchy. */
  kind?: string;
  message: string;
}

const errorPath = (spool: ArchiveSpool, walName: string) => join(spool.dir, `${walName}.error`);

/** The worker's failure for `walName`, consumed: the worker then tries once more, so each of PostgreSQL's retries gets a fresh verdict. */
export async function takeWorkerFailure(spool: ArchiveSpool, walName: string): Promise<Error | null> {
  const path = errorPath(spool, walName);
  const text = await fs.readFile(path, 'utf8').catch(() => null);
  if (text === null) return null;
  await fs.rm(path, { force: true });
  let f: WorkerFailure;
  try {
    f = JSON.parse(text) as WorkerFailure;
  } catch {
    return new GeneralError(`unreadable failure record of the archive worker for ${walName}`);
  }
  return errorOfKind(f.kind, String(f.message).split('\n')[0] ?? '');
}

export interface ArchiveWorkerOptions {
  walDir: string;
  maxParallel: number;
  /** Exit after this long with nothing .ready. */
  idleMs: number;
  archive: ArchiveOptions;
}

/** .ready WAL files of `walDir`, oldest first (PostgreSQL's own order). */
async function readyNames(walDir: string): Promise<string[] | null> {
  try {
    return (await fs.readdir(join(walDir, 'archive_status')))
      .filter((n) => n.endsWith('.ready'))
      .map((n) => n.slice(0, -'.ready'.length))
      .sort();
  } catch {
    return null;
  }
}

/** Whether PostgreSQL has asked for `walName` to be archived (its .ready status exists). */
export async function isReady(walDir: string, walName: string): Promise<boolean> {
  return fs.access(join(walDir, 'archive_status', `${walName}.ready`)).then(() => true, () => false);
}

/**
 * The detached archive worker: upload .ready files oldest first, `maxParallel` at once, with the
 * one-shot path's rules (archiveWal: no overwrite, content check, race settle), a marker after
 * each confirmed upload, an error file after each failure. Returns when idle or replaced.
 */
export async function runArchiveWorker(store: ObjectStore, layout: ServerLayout, spool: ArchiveSpool, o: ArchiveWorkerOptions): Promise<void> {
  const lock = await takeWorkerLock(spool.dir);
  if (!lock) return;
  log.info(`Archive worker ${process.pid} started for ${o.walDir}`);
  // --overwrite decides on the copies it deletes afterwards: from its own listing, as a call does.
  const listings = o.archive.allowOverwrite ? undefined : new SharedWalListings(store);
  const archive: ArchiveOptions = { ...o.archive, listings, encryptionRecord: sharedEncryptionRecord(store, layout) };
  const inFlight = new TaskWindow<string>(o.maxParallel);
  // What this worker already settled, until PostgreSQL drops the .ready status: 'marked' (the
  // marker waits for PostgreSQL's call; the moment between the call consuming it and the status
  // going must not look like a file still to upload) or 'failed' (retried once the call took the
  // error file). Checking the spool for every .ready file at every poll cost more CPU than lz4.
  const settled = new Map<string, 'marked' | 'failed'>();
  let lastWork = Date.now();
  try {
    for (;;) {
      if (!(await lock.stillOurs())) break;
      const ready = await readyNames(o.walDir);
      if (ready === null) break; // pg_wal is gone
      const readySet = new Set(ready);
      for (const [n, state] of settled) {
        if (readySet.has(n)) continue;
        settled.delete(n);
        // PostgreSQL took the call's exit 0 (the .ready went): the marker is ours to remove, as the
        // shell front leaves it under --async (one program less per call; a lost one is pruned).
        if (state === 'marked') await fs.rm(join(spool.dir, n), { force: true });
      }
      let started = false;
      for (const name of ready) {
        if (inFlight.full) break;
        if (inFlight.has(name)) continue;
        const state = settled.get(name);
        if (state === 'marked') continue;
        if (state === 'failed') {
          // A failure waits for PostgreSQL's call to read it; that call's next retry brings us back.
          if (await exists(errorPath(spool, name))) continue;
          settled.delete(name);
        } else if ((await exists(join(spool.dir, name))) || (await exists(errorPath(spool, name)))) {
          settled.set(name, (await exists(errorPath(spool, name))) ? 'failed' : 'marked'); // another worker's
          continue;
        }
        const release = await spool.claim(name);
        if (!release) continue; // another archiver has it
        if (await exists(join(spool.dir, name))) {
          // Its archiver marked it and let go between our look and our claim (a call that archived
          // its own file beside us, src/cli/commands/wal.ts): done, not ours to upload again.
          await release();
          settled.set(name, 'marked');
          continue;
        }
        started = true;
        inFlight.start(async () => {
          try {
            const outcome = await uploadOne(store, layout, spool, join(o.walDir, name), archive);
            // A file that changed while read got no marker: it is looked at again.
            if (outcome !== 'unmarked') settled.set(name, outcome);
          } finally {
            await release();
          }
        }, { key: name });
      }
      if (inFlight.size > 0 || started) lastWork = Date.now();
      else if (Date.now() - lastWork > o.idleMs) break;
      // Wake on the first finished upload, or poll for new .ready files: often while PostgreSQL is
      // busy, less when it has been quiet for a while.
      const poll = inFlight.full ? 1_000 : Date.now() - lastWork < 2_000 ? 10 : 50;
      await Promise.race([sleep(poll), inFlight.next()]);
      inFlight.check(); // uploadOne records its failures; one that escapes it (releasing a claim) ends the worker
    }
    await inFlight.drain();
  } finally {
    await lock.release();
    log.info(`Archive worker ${process.pid} exits${listings ? ` (${listings.listed} listings)` : ''}`);
  }
}

const exists = (path: string) => fs.access(path).then(() => true, () => false);

/** Upload one file: 'marked' once stored, 'unmarked' if it changed while read, 'failed' with an error file. */
async function uploadOne(
  store: ObjectStore, layout: ServerLayout, spool: ArchiveSpool, path: string, options: ArchiveOptions,
): Promise<'marked' | 'unmarked' | 'failed'> {
  const name = basename(path);
  try {
    // Marked once confirmed by the store: only then may PostgreSQL's call for this file be answered.
    // A file that changed while read gets no marker; its call archives it itself, with the content check.
    return (await archiveAndMark(store, layout, path, spool, options)).marked ? 'marked' : 'unmarked';
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log.warning(`Archiving ${name} failed: ${message}`);
    await writeAtomic(errorPath(spool, name), JSON.stringify({ kind: errorKind(e), message } satisfies WorkerFailure)).catch(() => undefined);
    return 'failed';
  }
}

/**
 * The worker's listings of WAL directories, shared by its uploads: each segment's pre-check and
 * settle would otherwise be a LIST of their own (with 8 uploads in flight, 16 LISTs for 8
 * segments, each costing the server as much as a small PUT). `recent` answers from the last
 * listing of the directory, or the one under way; `fresh` waits for a listing that starts after
 * the call (the one under way may have started before our create, so it is not enough), which
 * every caller arriving meanwhile then shares. A failed listing is nobody's next answer.
 */
export class SharedWalListings implements WalListings {
  private readonly dirs = new Map<string, { last?: string[]; running?: Promise<string[]>; queued?: Promise<string[]> }>();
  listed = 0;

  constructor(private readonly store: ObjectStore) {}

  private dir(prefix: string) {
    let d = this.dirs.get(prefix);
    if (!d) this.dirs.set(prefix, (d = {}));
    return d;
  }

  private start(prefix: string): Promise<string[]> {
    const d = this.dir(prefix);
    const run = (async () => {
      this.listed++;
      const keys: string[] = [];
      for await (const e of this.store.list(prefix, { delimiter: '/' })) if (e.kind === 'object') keys.push(e.key);
      return keys;
    })();
    d.running = run;
    run.then((keys) => {
      d.last = keys;
    }, () => {
      d.last = undefined;
    }).finally(() => {
      if (d.running === run) d.running = undefined;
    });
    return run;
  }

  recent(prefix: string): Promise<string[]> {
    const d = this.dir(prefix);
    return d.last ? Promise.resolve(d.last) : (d.running ?? this.start(prefix));
  }

  fresh(prefix: string): Promise<string[]> {
    const d = this.dir(prefix);
    if (!d.running) return this.start(prefix);
    if (!d.queued) {
      const queued = d.running.catch(() => undefined).then(() => {
        d.queued = undefined;
        return this.start(prefix);
      });
      d.queued = queued;
    }
    return d.queued;
  }
}

/**
 * The archive's encryption record for the worker's uploads: one GET answers every upload that asks
 * while it runs or within RECORD_REUSE_MS after. A call reads it once before it creates anything;
 * an upload here reads it at most that long before, the same check against another archiver
 * switching the archive meanwhile, with a slightly wider window.
 */
function sharedEncryptionRecord(store: ObjectStore, layout: ServerLayout): () => Promise<string | undefined | null> {
  let read: { at: number; value: Promise<string | undefined | null> } | undefined;
  return () => {
    if (!read || Date.now() - read.at > RECORD_REUSE_MS) {
      const value = recordedWalEncryption(store, layout);
      const entry = { at: Date.now(), value };
      read = entry;
      value.catch(() => {
        if (read === entry) read = undefined; // a failure is nobody's next answer
      });
    }
    return read.value;
  };
}

const RECORD_REUSE_MS = 1_000;

export type ArchiveWait = 'archived' | 'changed' | 'no-worker' | 'timeout';

/**
 * Wait for the worker's verdict on `walPath`: its marker (then checked against the file: an
 * unchanged file is 'archived', else 'changed'), its failure (thrown), the worker's death with
 * nothing written ('no-worker': `workerAlive` said no), or the timeout.
 */
export async function awaitArchived(
  spool: ArchiveSpool,
  walPath: string,
  timeoutMs: number,
  workerAlive: () => Promise<boolean>,
  markerMatches: () => Promise<boolean>,
): Promise<ArchiveWait> {
  const name = basename(walPath);
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  let nextWorkerCheck = Date.now() + 500;
  for (;;) {
    const failure = await takeWorkerFailure(spool, name);
    if (failure) throw failure;
    if (await fs.access(join(spool.dir, name)).then(() => true, () => false)) return (await markerMatches()) ? 'archived' : 'changed';
    if (Date.now() >= nextWorkerCheck) {
      nextWorkerCheck = Date.now() + 500;
      if (!(await workerAlive())) {
        // The worker may have written its verdict just before leaving.
        if (await fs.access(join(spool.dir, name)).then(() => true, () => false)) continue;
        if (await fs.access(errorPath(spool, name)).then(() => true, () => false)) continue;
        return 'no-worker';
      }
    }
    if (Date.now() >= deadline) return 'timeout';
    await sleep(delay);
    delay = Math.min(delay * 2, 20);
  }
}

// ---- restore --------------------------------------------------------------------------------------

const WANT = 'want';
/** `restore/<wal>.fetching`: the prefetcher is downloading <wal>; the shell front waits for it. */
const FETCHING = '.fetching';

/** Tell the prefetcher which segment recovery asked for (only Node calls: the shell's hits it sees itself). */
export async function recordWanted(spool: RestoreSpool, walName: string): Promise<void> {
  await writeAtomic(join(spool.dir, WANT), walName);
}

/**
 * A call that has just started the prefetcher waits (up to `timeoutMs`) for it to take up the
 * segment after `walName`: its `.fetching` mark or the file itself. Recovery asks for that
 * segment as soon as this call exits, and a shell front that finds neither starts Node, which a
 * new prefetcher (a Node start of its own) often did not beat. Returns at once when `worker`
 * exits or the segment size is unknown.
 */
export async function awaitPrefetchStart(
  spool: RestoreSpool, walName: string, segmentSize: number | undefined, worker: { exitCode: number | null; signalCode: string | null }, timeoutMs: number,
): Promise<void> {
  const size = segmentSize ?? (await spool.segmentSize());
  if (!size) return;
  const next = nextSegment(walName, size);
  const deadline = Date.now() + timeoutMs;
  const seen = (p: string) => fs.access(p).then(() => true, () => false);
  while (Date.now() < deadline && worker.exitCode === null && worker.signalCode === null) {
    if ((await seen(join(spool.dir, `${next}${FETCHING}`))) || (await seen(spool.path(next)))) return;
    await sleep(5);
  }
}

export interface PrefetcherOptions {
  /** Keep this many segments after the last one asked for (N−1 of --parallel N). */
  ahead: number;
  segmentSize?: number;
  /** Exit after this long without recovery asking for anything. */
  idleMs: number;
  /** Wait this long before asking again for a segment that was not in the archive. */
  missRetryMs: number;
  /** A failed download is tried again after missRetryMs, doubled at each failure up to this. */
  failRetryMaxMs: number;
  /**
   * A download not finished after this long is abandoned: a server that trickles bytes never
   * trips the read timeout, and one such download once kept a prefetcher alive for 20 minutes.
   */
  downloadDeadlineMs: number;
  /** age identities for encrypted objects. */
  identities?: AgeIdentities;
}

/**
 * Downloads at once. They share one thread: 15 started together all finished after ~3.4 s on a
 * loaded machine, so recovery waited for the whole window; four at a time hand over the next
 * segment first and still keep the server busy.
 */
const PREFETCH_SLOTS = 4;

const timelineOf = (name: string) => parseSegmentName(name).timeline;

/** True when a is after b on the same timeline. */
function after(a: string, b: string): boolean {
  const x = parseSegmentName(a);
  const y = parseSegmentName(b);
  return x.log > y.log || (x.log === y.log && x.seg > y.seg);
}

/** The store with `signal` added to every get(): how a download past its deadline is cut off. */
function abortableGets(store: ObjectStore, signal: AbortSignal): ObjectStore {
  const s = Object.create(store) as ObjectStore; // every other member is the store's own
  s.get = (key, options) => store.get(key, { ...options, signal });
  return s;
}

/**
 * The detached prefetcher: keeps the `ahead` segments after the last one asked for in the spool.
 * Recovery's progress is what it asks for through Node (the `want` file) and the prefetched files
 * that the shell front took, both seen through a watch on the spool directory (a full look every
 * second in case the watch misses something). The window's objects come from one LIST per batch.
 * It stops at the first segment missing from the archive, or whose download failed or was refused,
 * and asks for it again later (docs/commands/wal-restore.md#prefetch-failures). A request on
 * another timeline drops what was fetched ahead on the old one; downloads of the old timeline
 * still running are thrown away. Each download in flight has a `.fetching` mark, so that the
 * shell front waits for it instead of starting Node.
 */
export async function runPrefetcher(store: ObjectStore, layout: ServerLayout, spool: RestoreSpool, o: PrefetcherOptions): Promise<void> {
  const lock = await takeWorkerLock(spool.dir);
  if (!lock) return;
  log.info(`Prefetcher ${process.pid} started`);
  // Marks of a predecessor that was killed would make the shell wait for nothing.
  for (const n of await fs.readdir(spool.dir).catch(() => [] as string[])) {
    if (n.endsWith(FETCHING)) await fs.rm(join(spool.dir, n), { force: true });
  }
  let base: string | null = null;
  let wantSeen = '';
  let generation = 0;
  let size = o.segmentSize;
  const mine = new Set<string>();
  /** Not before this time is a segment asked for again: missing from the archive, or its download failed. */
  const retryAt = new Map<string, number>();
  /** Failed downloads of a segment in a row: each doubles the wait. */
  const failures = new Map<string, number>();
  /** The object versions (key, size, last-modified) whose content was refused: never downloaded again. */
  const refused = new Map<string, string>();
  const versionOf = (c: WalCandidate) => `${c.key} ${c.version ?? ''}`;
  const inFlight = new TaskWindow<string>(Math.min(o.ahead, PREFETCH_SLOTS));
  const aborts = new Set<AbortController>();
  let leaving = false;
  /** Objects found by the last listings, by WAL name (archived WAL does not change under us). */
  const known = new Map<string, WalCandidate>();
  let listing: { names: Set<string>; done: Promise<void> } | null = null;
  let lastProgress = Date.now();

  // What changed in the spool since the last turn; `wake` ends the wait for it.
  const changed = new Set<string>();
  let lookAtAll = true;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(spool.dir, (_event, file) => {
      // Our own temp files and marks change with every write: no news of recovery there.
      if (file && (file.includes('.tmp-') || file.endsWith(FETCHING))) return;
      if (file) changed.add(file);
      else lookAtAll = true;
      notify();
    });
    watcher.on('error', () => {
      watcher?.close();
      watcher = null;
    });
  } catch (e) {
    log.debug(`Cannot watch the spool (${(e as Error).message}); polling it`);
  }

  /** The window from `name` on, listed once: names already listed and not found are misses. */
  const candidateFor = async (name: string): Promise<WalCandidate | null> => {
    const cached = known.get(name);
    if (cached) return cached;
    let l = listing;
    if (!l || !l.names.has(name)) {
      const names = [name];
      for (let i = 1; i < 2 * o.ahead && size; i++) names.push(nextSegment(names[i - 1]!, size));
      const done: Promise<void> = findWals(store, layout, names, { noPartial: true }).then((found) => {
        for (const [n, c] of found) if (c) known.set(n, c);
      }).finally(() => {
        if (listing?.done === done) listing = null;
      });
      l = listing = { names: new Set(names), done };
    }
    await l.done;
    return known.get(name) ?? null;
  };

  const fetchOne = async (name: string, gen: number) => {
    const mark = join(spool.dir, `${name}${FETCHING}`);
    let timer: NodeJS.Timeout | undefined;
    let abort: AbortController | undefined;
    let candidate: WalCandidate | null = null;
    try {
      await fs.writeFile(mark, '', { mode: 0o600 });
      const t0 = Date.now();
      candidate = await candidateFor(name);
      const t1 = Date.now();
      if (!candidate || refused.get(name) === versionOf(candidate)) {
        // Not archived, or the object refused before and unchanged: listed again after missRetryMs.
        known.delete(name);
        retryAt.set(name, Date.now() + o.missRetryMs);
        return;
      }
      refused.delete(name);
      const controller = (abort = new AbortController());
      aborts.add(controller);
      const download = downloadTo(abortableGets(store, controller.signal), candidate, spool.path(name), o.identities);
      // One that still finishes after the deadline is a complete, checked file: kept unless of an old timeline.
      download.then(async () => {
        if (gen !== generation) await spool.remove(name);
      }, () => undefined);
      await Promise.race([
        download,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const e = new NetworkError(`not finished after ${Math.round(o.downloadDeadlineMs / 1000)} s; abandoned`);
            controller.abort(e);
            reject(e);
          }, Math.min(o.downloadDeadlineMs, LONGEST_TIMER_MS)); // longer would fire at once
        }),
      ]);
      known.delete(name);
      if (gen !== generation) await spool.remove(name); // a timeline switch meanwhile
      else {
        mine.add(name);
        retryAt.delete(name);
        failures.delete(name);
      }
      // Where the time goes, and whether the window stays full (-vv in the worker's log).
      log.debug(`Prefetched ${name}: listed in ${t1 - t0} ms, downloaded in ${Date.now() - t1} ms; ${mine.size} ready, ${inFlight.size - 1} more in flight`);
    } catch (e) {
      known.delete(name);
      if (leaving) return;
      if (e instanceof NotFoundError) {
        // Gone since the listing: as if not archived.
        retryAt.set(name, Date.now() + o.missRetryMs);
        log.debug(`Prefetch of ${name}: ${e.message}`);
        return;
      }
      // Our own verdict on the content (errors outside the store's), not the store's or the disk's:
      // the same bytes would be refused again.
      if (candidate && e instanceof BarmanCloudError && !(e instanceof StorageError)) {
        refused.set(name, versionOf(candidate));
        retryAt.set(name, Date.now() + o.missRetryMs);
        log.warning(`Prefetch of ${name} refused: ${(e as Error).message}; not downloaded again until the object changes`);
        return;
      }
      const n = (failures.get(name) ?? 0) + 1;
      failures.set(name, n);
      const wait = Math.min(o.missRetryMs * 2 ** (n - 1), o.failRetryMaxMs);
      retryAt.set(name, Date.now() + wait);
      log.warning(`Prefetch of ${name} failed: ${(e as Error).message}; tried again in ${Math.round(wait / 1000)} s`);
    } finally {
      clearTimeout(timer);
      if (abort) aborts.delete(abort);
      await fs.rm(mark, { force: true });
    }
  };

  let lastFullLook = 0;
  try {
    for (;;) {
      const now = Date.now();
      if (!(await lock.stillOurs())) break;
      // Without a watch, or once a second, everything is looked at; otherwise what the watch reported.
      const all = lookAtAll || watcher === null || now - lastFullLook >= 1_000;
      const seen = new Set(changed);
      changed.clear();
      lookAtAll = false;
      if (all) lastFullLook = now;
      if (all || seen.has(WANT)) {
        const want = (await fs.readFile(join(spool.dir, WANT), 'utf8').catch(() => '')).trim();
        if (want !== wantSeen && isSegmentName(want)) {
          wantSeen = want;
          lastProgress = now;
          if (base === null || timelineOf(want) !== timelineOf(base)) {
            if (base !== null) {
              generation++;
              for (const n of mine) if (timelineOf(n) !== timelineOf(want)) await spool.remove(n);
              mine.clear();
              retryAt.clear();
              failures.clear();
              refused.clear();
              known.clear();
            }
            base = want;
          } else if (after(want, base)) base = want;
        }
      }
      if (size === undefined && (all || seen.has('segment-size'))) size = await spool.segmentSize();
      // What the shell front took was asked for: recovery is at least there.
      for (const n of all ? [...mine] : [...seen].filter((f) => mine.has(f))) {
        if (await fs.access(spool.path(n)).then(() => false, () => true)) {
          mine.delete(n);
          lastProgress = now;
          if (base !== null && timelineOf(n) === timelineOf(base) && after(n, base)) base = n;
        }
      }
      if (base !== null && size) {
        let next = base;
        for (let i = 0; i < o.ahead && !inFlight.full; i++) {
          next = nextSegment(next, size);
          const name = next; // each task's own: the loop goes on with `next`
          if (inFlight.has(name)) continue;
          const at = retryAt.get(name);
          if (at !== undefined && now < at) break; // not past a hole
          if (mine.has(name) || (await spool.has(name))) continue;
          inFlight.start(() => fetchOne(name, generation), { key: name });
        }
      }
      // Idle: recovery asked for nothing for idleMs. Downloads still running are cut off (their
      // temp files go with them): nothing can keep the prefetcher alive once recovery stopped.
      if (Date.now() - lastProgress > o.idleMs) break;
      if (changed.size === 0 && !lookAtAll) {
        // A download ending frees a slot: inFlight.next() settles once the window has let it go.
        await Promise.race([
          new Promise<void>((r) => (wake = r)),
          inFlight.next(),
          sleep(watcher === null ? 20 : retryAt.size > 0 ? o.missRetryMs : 1_000),
        ]);
      }
    }
    leaving = true;
    for (const a of aborts) a.abort(new NetworkError('the prefetcher is leaving'));
    await Promise.race([inFlight.drain(), sleep(5_000)]);
    // Downloads that did not settle even so (a loaded machine, a stream deaf to the abort): their
    // marks and this process's temp files go now, so a leaving prefetcher leaves nothing behind.
    if (inFlight.size > 0) {
      const entries = await fs.readdir(spool.dir).catch(() => [] as string[]);
      for (const name of inFlight.keys()) {
        const ours = ownTempPrefix(name);
        for (const f of entries) {
          if (f === `${name}${FETCHING}` || f.startsWith(ours)) await fs.rm(join(spool.dir, f), { force: true });
        }
      }
    }
  } finally {
    watcher?.close();
    await lock.release();
    log.info(`Prefetcher ${process.pid} exits`);
  }
}

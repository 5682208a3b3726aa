// Parallel archiving and restore prefetching (beyond barman; what a user sees:
// docs/commands/wal-archive.md#parallel-archiving, docs/commands/wal-restore.md#prefetch):
// - archive: while archiving the requested file, also upload up to N−1 files PostgreSQL marked
//   .ready, oldest first; a marker with the file's digest is written only after an upload is
//   confirmed, so a later call for that file answers from the spool, and a regenerated file with
//   other content is never mistaken for an archived one.
// - restore: on a request for segment X also fetch the next N−1 segments of the same timeline, with
//   the real segment size, into the spool (temp + rename); a miss is never cached, so a segment that
//   appears in the archive later is found then.
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { mapBounded } from '../concurrency.js';
import { GeneralError } from '../errors.js';
import { log } from '../log.js';
import type { ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { archiveWal, readWalFile, type ArchiveOptions, type ArchiveOutcome } from './archive.js';
import { isSegmentName, isValidSegmentSize, nextSegment, parseSegmentName } from '../xlog.js';
import { downloadTo, findWal } from './restore.js';
import type { AgeIdentities } from '../encryption/age.js';
import { ArchiveSpool, RestoreSpool, moveInto } from './spool.js';

/** Run `tasks` with at most `limit` at once; results in order, failures as Error values (one failure stops no other). */
function bounded<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<(T | Error)[]> {
  return mapBounded(tasks, limit, (task) => task().catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
}

// ---- archive --------------------------------------------------------------------------------------

/** The identity of a file that any write changes: inode and mtime in nanoseconds. */
async function fileIdentity(path: string): Promise<{ ino: string; mtimeNs: string; size: number }> {
  const st = await fs.stat(path, { bigint: true });
  return { ino: String(st.ino), mtimeNs: String(st.mtimeNs), size: Number(st.size) };
}

/** Answer from the spool: true when a confirmed upload of exactly this file's content is recorded. */
export async function archivedBySpool(spool: ArchiveSpool, walPath: string): Promise<boolean> {
  const name = basename(walPath);
  const marker = await spool.readMarker(name);
  if (!marker) return false;
  await spool.removeMarker(name);
  const id = await fileIdentity(walPath);
  // The same file, untouched since its upload: no need to read it again. Anything else is archived
  // as usual, where identical content already in the store is recognised (archiveWal).
  if (marker.ino === id.ino && marker.mtimeNs === id.mtimeNs && marker.size === id.size) {
    log.info(`WAL file ${name} was archived ahead by a parallel upload`);
    return true;
  }
  log.warning(`WAL file ${name} changed since its parallel upload; archiving it again`);
  return false;
}

/** Up to `limit` WAL files with a .ready status, oldest first, excluding `exclude`. */
async function readyWalFiles(walDir: string, limit: number, exclude: string): Promise<string[]> {
  const statusDir = join(walDir, 'archive_status');
  const names = (await fs.readdir(statusDir).catch(() => [] as string[]))
    .filter((n) => n.endsWith('.ready'))
    .map((n) => n.slice(0, -'.ready'.length))
    .filter((n) => n !== exclude)
    .sort();
  return names.slice(0, limit).map((n) => join(walDir, n));
}

/**
 * Archive `path` and, once the store confirmed it, record it in the spool for PostgreSQL's later
 * call, only if the file did not change while it was read (its identity, not a digest: that would
 * be another read). `marked` says whether the marker was written.
 */
export async function archiveAndMark(
  store: ObjectStore, layout: ServerLayout, path: string, spool: ArchiveSpool, options: ArchiveOptions,
): Promise<{ outcome: ArchiveOutcome; marked: boolean }> {
  const before = await fileIdentity(path);
  const wal = await readWalFile(path);
  const outcome = await archiveWal(store, layout, wal, options);
  const after = await fileIdentity(path);
  const marked = before.ino === after.ino && before.mtimeNs === after.mtimeNs && after.size === wal.size;
  if (marked) await spool.writeMarker(wal.name, { size: after.size, ino: after.ino, mtimeNs: after.mtimeNs });
  return { outcome, marked };
}

/** Archive `walPath` and up to `maxParallel` − 1 other .ready files at once, each claimed in the spool. */
export async function archiveInParallel(
  store: ObjectStore,
  layout: ServerLayout,
  walPath: string,
  maxParallel: number,
  spool: ArchiveSpool,
  options: ArchiveOptions,
): Promise<ArchiveOutcome> {
  const name = basename(walPath);
  const walDir = dirname(resolve(walPath));
  // Ask for more candidates than slots: some may be claimed by another archiver or already done.
  const candidates = await readyWalFiles(walDir, (maxParallel - 1) * 2, name);
  const extras: string[] = [];
  const releases: (() => Promise<void>)[] = [];
  for (const path of candidates) {
    if (extras.length >= maxParallel - 1) break;
    if (await spool.readMarker(basename(path))) continue;
    const release = await spool.claim(basename(path));
    if (!release) continue;
    extras.push(path);
    releases.push(release);
  }
  const releaseOwn = await spool.claim(name);

  try {
    const tasks = [
      async () => archiveWal(store, layout, await readWalFile(walPath), options),
      ...extras.map((path) => async () => (await archiveAndMark(store, layout, path, spool, options)).outcome),
    ];
    const [own, ...rest] = await bounded(maxParallel, tasks);
    rest.forEach((r, i) => {
      if (r instanceof Error) log.warning(`Parallel archiving of ${basename(extras[i] ?? '')} failed (PostgreSQL will retry it): ${r.message}`);
    });
    // The requested file's task is always the first.
    if (own === undefined) throw new GeneralError(`no result for ${name}`);
    if (own instanceof Error) throw own;
    log.info(`Archived ${name} and ${rest.filter((r) => !(r instanceof Error)).length} more WAL files in parallel`);
    return own;
  } finally {
    await Promise.all([...releases, ...(releaseOwn ? [releaseOwn] : [])].map((r) => r()));
  }
}

// ---- restore --------------------------------------------------------------------------------------

export interface PrefetchOptions {
  parallel: number;
  noPartial?: boolean;
  /** From --wal-segment-size; otherwise learned from a downloaded segment and kept in the spool. */
  segmentSize?: number;
  /** Prefetched files older than this are not served (the archive may have changed). */
  maxAgeMs: number;
  /** age identities for encrypted objects. */
  identities?: AgeIdentities;
}

/** Serve a request from the spool: true when the file was there and is now at `dest`. */
export async function restoredFromSpool(spool: RestoreSpool, walName: string, dest: string, maxAgeMs: number): Promise<boolean> {
  const hit = await spool.lookup(walName, maxAgeMs);
  if (!hit) return false;
  // Only segments are prefetched: one of another size than the spool's segment size (cut short,
  // whatever the reason) is fetched again rather than handed to PostgreSQL.
  const size = isSegmentName(walName) ? await spool.segmentSize() : undefined;
  if (size !== undefined && (await fs.lstat(hit)).size !== size) {
    log.warning(`Prefetched WAL file ${walName} does not have the segment size (${size} bytes); fetching it again`);
    await spool.remove(walName);
    return false;
  }
  await moveInto(hit, dest);
  log.info(`WAL file ${walName} restored from the prefetch spool`);
  return true;
}

/** Fetch `walName` into `dest`, and prefetch the following segments into the spool. False = not found. */
export async function restoreWithPrefetch(
  store: ObjectStore,
  layout: ServerLayout,
  walName: string,
  dest: string,
  spool: RestoreSpool,
  options: PrefetchOptions,
): Promise<boolean> {
  await pruneSpool(spool, walName, options.maxAgeMs);
  let segmentSize = options.segmentSize ?? (await spool.segmentSize());
  const plainSegment = isSegmentName(walName);

  const fetchExtras = async (size: number) => {
    const names: string[] = [];
    for (let n = walName, i = 1; i < options.parallel; i++) {
      n = nextSegment(n, size);
      names.push(n);
    }
    const wanted: string[] = [];
    for (const n of names) if (!(await spool.has(n))) wanted.push(n);
    const results = await bounded(options.parallel, wanted.map((n) => async () => {
      const candidate = await findWal(store, layout, n, { noPartial: true });
      if (!candidate) return false;
      await downloadTo(store, candidate, spool.path(n), options.identities);
      return true;
    }));
    results.forEach((r, i) => {
      if (r instanceof Error) log.warning(`Prefetch of ${wanted[i]} failed: ${r.message}`);
    });
  };

  // With a known segment size the prefetch runs alongside the requested file.
  const early = plainSegment && segmentSize && options.parallel > 1 ? fetchExtras(segmentSize) : null;
  const candidate = await findWal(store, layout, walName, { noPartial: options.noPartial });
  if (!candidate) {
    await early;
    return false;
  }
  const bytes = await downloadTo(store, candidate, dest, options.identities);
  if (plainSegment && !candidate.key.includes('.partial') && isValidSegmentSize(bytes) && bytes !== segmentSize) {
    // The real segment size, from a real segment: never assume 16 MiB.
    segmentSize = bytes;
    // Only a hint for later calls: the segment is in place whatever happens to the spool.
    await spool.setSegmentSize(bytes).catch((e: Error) => log.debug(`Could not record the segment size in the spool: ${e.message}`));
    if (!early && options.parallel > 1) await fetchExtras(bytes);
  }
  await early;
  return true;
}

/**
 * Drop what can no longer be asked for: entries past their age, and entries of another timeline at
 * or after the requested position (recovery moves to newer timelines only), so a segment prefetched
 * before a timeline switch is never served afterwards.
 */
async function pruneSpool(spool: RestoreSpool, walName: string, maxAgeMs: number): Promise<void> {
  await spool.prune(maxAgeMs);
  if (!isSegmentName(walName)) return;
  const want = parseSegmentName(walName);
  for (const entry of await spool.entries()) {
    if (!isSegmentName(entry)) continue;
    const e = parseSegmentName(entry);
    const samePosOrLater = e.log > want.log || (e.log === want.log && e.seg >= want.seg);
    if (e.timeline !== want.timeline && samePosOrLater) await spool.remove(entry);
  }
}

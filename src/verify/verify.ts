// `barman-cloud verify`: read every part of the chosen backups from the store without writing a data
// directory, check them against parts.json and backup_manifest where the backup has them, parse
// every tar to its end, and check that the WAL each backup needs is in the archive.
import { Readable } from 'node:stream';
import { mapBounded } from '../concurrency.js';
import { EncryptedDataError, GeneralError, NotFoundError, ObjectTooLargeError, OperationError } from '../errors.js';
import { log } from '../log.js';
import { BackupCatalog } from '../catalog/catalog.js';
import { DEFAULT_XLOG_SEGMENT_SIZE, STATUS, type BackupInfo } from '../catalog/backup-info.js';
import type { ServerLayout } from '../catalog/layout.js';
import { PARTS_LIST_MAX_BYTES, PARTS_LIST_NAME, decodePartsList, type PartsList } from '../catalog/parts-list.js';
import { CompressionFormatError, codecFromSuffix, loadCodec, type Codec } from '../compression/index.js';
import { decryptBuffer, decryptStream, isEncryptedName, stripAgeSuffix, type AgeIdentities } from '../encryption/age.js';
import { unencryptedRefused } from '../encryption/names.js';
import { checkIdentities } from '../backup/restore.js';
import { memberPathComponents } from '../backup/extract.js';
import type { ObjectStore } from '../storage/types.js';
import { readWhole } from '../storage/body.js';
import { historyFileName, isSegmentName, isValidSegmentSize, walFileMaxBytes, walTimeline } from '../xlog.js';
import { readPart } from './archive.js';
import { ArchiveFiles, MANIFEST_MEMBER, ManifestMember } from './manifest-check.js';
import { DataDirectoryView, TablespaceView, oversizedControlFile } from './data-directory.js';
import { ArchiveTree, unsafeRefusal } from './archive-tree.js';
import { CONTROL_FILE } from '../backup/archive-identity.js';
import type { BackupResult, Problem, VerifyReport, WalResult } from './report.js';
import {
  backupRange, indexSegments, missingRuns, parseHistoryFile, planChain, segmentNameAt, type HistoryEntry, type SegmentRange,
} from './wal-chain.js';

export interface VerifyOptions {
  /** `all`, or what restore accepts: an ID, a name, or a shortcut. */
  backup: string;
  /** Archives (data, each tablespace) read at once. */
  jobs: number;
  onProgress?: (p: { backupId: string; part: string; bytes: number; totalBytes: number }) => void;
  signal?: AbortSignal;
  /** age identities for encrypted backups and WAL (--encryption-identity-file). */
  identities?: AgeIdentities;
}

/** A stored part: `data.tar`, `data_0001.tar.lz4`, `16384.tar.gz`, … (group 1: the archive; `%04d` grows past 9999). */
const PART_NAME = /^(data|\d+)(?:_(\d{4,}))?\.tar(?:\.[a-z0-9]+)?(?:\.age)?$/;

interface StoredPart {
  name: string;
  key: string;
  size: number;
  archive: string;
  index: number;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function verify(store: ObjectStore, layout: ServerLayout, options: VerifyOptions): Promise<VerifyReport> {
  const catalog = new BackupCatalog(store, layout);
  const problems: Problem[] = [];
  const chosen: BackupInfo[] = [];
  const all = await catalog.getBackupList();
  if (options.backup === 'all') {
    chosen.push(...all.values());
    for (const u of (await catalog.load()).unreadable) {
      problems.push({ kind: 'unreadable-backup-info', backup_id: u.backupId, message: `backup ${u.backupId}: backup.info cannot be read: ${u.error.message}` });
    }
  } else {
    const id = await catalog.resolve(options.backup);
    const info = await catalog.getBackupInfo(id);
    if (!info) throw new OperationError(`Backup ${id} for server ${layout.serverName} does not exist`);
    chosen.push(info);
  }

  const backups: BackupResult[] = [];
  for (const info of chosen) backups.push(await verifyBackup(store, layout, info, options));

  const done = chosen.filter((b) => b.status === STATUS.DONE);
  const newestDone = [...all.values()].filter((b) => b.status === STATUS.DONE).at(-1);
  const wal = done.length ? await verifyWal(store, layout, done, newestDone, backups, options) : emptyWal();
  const count = problems.length + backups.reduce((n, b) => n + b.problems.length, 0) + wal.problems.length;
  if (problems.length) {
    // Backups whose backup.info is unreadable get a line of their own.
    for (const p of problems) {
      backups.push({
        backup_id: p.backup_id!, backup_name: null, status: null, result: 'failed', timeline: null, begin_wal: null, end_wal: null,
        part_checksums: 'unavailable', file_checksums: 'unavailable', parts: 0, bytes: 0, members: 0, problems: [p],
      });
    }
    backups.sort((a, b) => (a.backup_id < b.backup_id ? -1 : a.backup_id > b.backup_id ? 1 : 0));
  }
  return { server_name: layout.serverName, backups, wal, problems: count, ok: count === 0 };
}

function emptyWal(): WalResult {
  return { checked_segments: 0, newest_segment: null, timeline: null, problems: [] };
}

async function verifyBackup(store: ObjectStore, layout: ServerLayout, info: BackupInfo, options: VerifyOptions): Promise<BackupResult> {
  const id = info.backup_id;
  const result: BackupResult = {
    backup_id: id,
    backup_name: info.backup_name ?? null,
    status: info.status ?? null,
    result: 'skipped',
    timeline: info.timeline ?? null,
    begin_wal: info.begin_wal ?? null,
    end_wal: info.end_wal ?? null,
    part_checksums: 'unavailable',
    file_checksums: 'unavailable',
    parts: 0,
    bytes: 0,
    members: 0,
    problems: [],
  };
  if (info.status !== STATUS.DONE) return result;
  const problem = (p: Omit<Problem, 'backup_id'>) => result.problems.push({ ...p, backup_id: id });

  const prefix = layout.backupPrefix(id);
  const stored = new Map<string, StoredPart>();
  let hasPartsList = false;
  for await (const e of store.list(prefix, { delimiter: '/' })) {
    // only this backup's objects, whatever a faulty listing adds (docs/format.md#listed-keys)
    if (e.kind !== 'object' || !e.key.startsWith(prefix)) continue;
    const name = e.key.slice(prefix.length);
    if (name === PARTS_LIST_NAME) hasPartsList = true;
    const m = PART_NAME.exec(name);
    if (m) stored.set(name, { name, key: e.key, size: e.size, archive: m[1]!, index: m[2] ? Number(m[2]) : 0 });
  }

  let partsList: PartsList | undefined;
  if (hasPartsList) {
    try {
      partsList = decodePartsList((await store.getBuffer(prefix + PARTS_LIST_NAME, { maxBytes: PARTS_LIST_MAX_BYTES })).toString('utf8'), id);
      result.part_checksums = 'verified';
    } catch (e) {
      if (!(e instanceof NotFoundError)) {
        if (!(e instanceof GeneralError) && !(e instanceof ObjectTooLargeError)) throw e;
        problem({ kind: 'invalid-parts-list', part: PARTS_LIST_NAME, message: `backup ${id}: ${e.message}` });
      }
    }
  }
  const expected = new Map(partsList?.parts.map((p) => [p.name, p]) ?? []);
  for (const name of expected.keys()) {
    if (!stored.has(name)) problem({ kind: 'missing-part', part: name, message: `backup ${id}: part ${name} is listed in parts.json but missing from the store` });
  }
  if (partsList) {
    for (const name of stored.keys()) {
      if (!expected.has(name)) problem({ kind: 'extra-part', part: name, message: `backup ${id}: part ${name} is in the store but not in parts.json` });
    }
  }

  // The archives: data and every tablespace of backup.info, whatever else the store holds.
  // An encrypted backup cannot be checked without a fitting identity: that is the command's failure
  // (exit 1, naming what is missing), not a finding about the backup.
  if (info.encryption === 'age' || [...stored.keys()].some(isEncryptedName)) {
    checkIdentities(`backup ${id}`, options.identities, partsList?.encryption?.recipients);
  }
  const archives = new Map<string, StoredPart[]>();
  for (const a of ['data', ...(info.tablespaces ?? []).map((t) => String(t.oid))]) archives.set(a, []);
  for (const p of stored.values()) {
    if (!archives.has(p.archive)) archives.set(p.archive, []);
    archives.get(p.archive)!.push(p);
  }
  for (const [archive, parts] of archives) {
    parts.sort((a, b) => a.index - b.index || (a.name < b.name ? -1 : 1));
    const listedMissing = [...expected.keys()].some((n) => PART_NAME.exec(n)?.[1] === archive && !stored.has(n));
    if (parts.length === 0) {
      if (!listedMissing) problem({ kind: 'missing-archive', part: `${archive}.tar`, message: `backup ${id}: no part of archive ${archive} in the store` });
      continue;
    }
    // Without parts.json, a gap in the numbering is what shows a vanished part.
    if (!partsList) {
      const indexes = new Set(parts.map((p) => p.index));
      const max = Math.max(...indexes);
      for (let i = 0; i <= max; i++) {
        if (indexes.has(i)) continue;
        const sfx = parts[0]!.name.slice(parts[0]!.name.indexOf('.tar'));
        const name = i === 0 ? `${archive}${sfx}` : `${archive}_${String(i).padStart(4, '0')}${sfx}`;
        problem({ kind: 'part-gap', part: name, message: `backup ${id}: part ${name} is missing (the archive has later parts)` });
      }
    }
  }

  const totalBytes = [...stored.values()].reduce((n, p) => n + p.size, 0);
  let readBytes = 0;
  const codecs = new Map<string, Promise<Codec>>();
  const codecFor = (name: string): Promise<Codec> | undefined => {
    const c = codecFromSuffix(stripAgeSuffix(name).name);
    if (!c) return undefined;
    if (!codecs.has(c)) codecs.set(c, loadCodec(c));
    return codecs.get(c);
  };
  // what the manifest is checked against: the regular files, not every member record
  const files = new ArchiveFiles();
  let manifest: ManifestMember | undefined;
  // the data directory restore would leave, at the names it compares with backup.info
  const dataDirectory = new DataDirectoryView();
  // the tablespaces restore extracts: those backup.info lists, into their locations
  const tablespaces = new Map((info.tablespaces ?? []).map((t) => [String(t.oid), new TablespaceView(t)]));
  // the names each archive leaves as restore extracts it, one archive's parts in order
  const trees = new Map([...archives.keys()].map((a) => [a, new ArchiveTree(a === 'data' ? CONTROL_FILE : undefined)]));

  const readArchive = async (archive: string, parts: StoredPart[]) => {
    for (const part of parts) {
      result.parts++;
      if (part.size === 0) {
        problem({ kind: 'empty-part', part: part.name, message: `backup ${id}: part ${part.name} is empty (0 bytes)` });
        continue;
      }
      // as restore refuses it (src/encryption/names.ts, unencryptedRefused)
      if (options.identities && !options.identities.allowUnencrypted && !isEncryptedName(part.name)) {
        problem({ kind: 'unencrypted-part', part: part.name, message: unencryptedRefused(`backup ${id}: part ${part.name}`).message });
      }
      const codec = await codecFor(part.name);
      const read = await readPart(store, part.key, part.size, codec, (m, content) => {
        files.add(archive, m);
        const unsafe = unsafeMemberName(m.name);
        if (unsafe) problem({ kind: 'unsafe-member', part: part.name, file: m.name, message: `backup ${id}: part ${part.name}: ${unsafe}` });
        const outside = unsafe ? undefined : tablespaces.get(archive)?.add(m);
        if (outside) problem({ kind: 'outside-version-directory', part: part.name, file: m.name, message: `backup ${id}: part ${part.name}: ${outside}` });
        // restore stops at the first refusal of a member: nothing more to say of it
        const refused = unsafe || outside ? undefined : trees.get(archive)!.add(m);
        if (refused) problem({ kind: refused.kind, part: part.name, file: m.name, message: `backup ${id}: part ${part.name}: ${refused.message}` });
        if (archive !== 'data') return;
        dataDirectory.add(m, content);
        const oversized = oversizedControlFile(m);
        if (oversized) problem({ kind: 'unreadable-part', part: part.name, message: `backup ${id}: part ${part.name}: ${oversized}` });
      }, {
        keepContent: archive === 'data' ? (n) => dataDirectory.keep(n) : undefined,
        // held as its bytes, read a line at a time once every archive is (docs/format.md#manifest-reading)
        streamContent: archive === 'data' ? (n) => (n === MANIFEST_MEMBER ? (manifest = new ManifestMember()).write : undefined) : undefined,
        decrypt: isEncryptedName(part.name) ? () => decryptStream(options.identities!, `part ${part.name}`) : undefined,
        onBytes: options.onProgress
          ? (n) => {
              readBytes += n;
              options.onProgress!({ backupId: id, part: part.name, bytes: readBytes, totalBytes });
            }
          : undefined,
        signal: options.signal,
      });
      result.bytes += read.bytes;
      result.members += read.members;
      if (read.missing) {
        problem({ kind: 'missing-part', part: part.name, message: `backup ${id}: part ${part.name} disappeared while being read` });
        continue;
      }
      const want = expected.get(part.name);
      if (want && want.size !== read.bytes) {
        problem({ kind: 'size-mismatch', part: part.name, message: `backup ${id}: part ${part.name} has ${read.bytes} bytes, parts.json says ${want.size}` });
      } else if (want && want.sha256 !== read.sha256) {
        problem({ kind: 'checksum-mismatch', part: part.name, message: `backup ${id}: part ${part.name} has SHA-256 ${read.sha256}, parts.json says ${want.sha256}` });
      }
      if (read.unreadable) problem({ kind: 'unreadable-part', part: part.name, message: `backup ${id}: part ${part.name}: ${read.unreadable}` });
    }
  };
  const queue = [...archives].filter(([, parts]) => parts.length > 0);
  await mapBounded(queue, options.jobs, ([archive, parts]) => readArchive(archive, parts));

  for (const p of dataDirectory.problems(info, trees.get('data')!.through)) problem(p);
  for (const [oid, t] of tablespaces) for (const p of t.problems(id, trees.get(oid)?.through ?? new Map())) problem(p);
  if (manifest) {
    result.file_checksums = 'verified';
    for (const p of manifest.check(files)) problem(p);
  } else if ((archives.get('data') ?? []).some((p) => isEncryptedName(p.name))) {
    // as restore refuses it: ours always ends its data archive with one, inside what age
    // authenticates, and parts.json cannot vouch for a shortened archive (anyone may delete it)
    problem({ kind: 'invalid-manifest', file: MANIFEST_MEMBER, message: `backup ${id}: its data archive is encrypted but holds no ${MANIFEST_MEMBER}` });
  }
  result.result = result.problems.length ? 'failed' : 'ok';
  log.info(`backup ${id}: ${plural(result.parts, 'part')}, ${plural(result.problems.length, 'problem')}`);
  return result;
}

/**
 * Why restore refuses to extract a member for its name (absolute, `..`, NUL, not UTF-8:
 * src/backup/extract.ts), if it does: such a backup does not restore, so verify cannot call it OK.
 */
const unsafeMemberName = (name: string) => unsafeRefusal(() => memberPathComponents(name));

interface WalIndex {
  /** Segment names (upper-case) with at least one object. */
  segments: Set<string>;
  newestByTimeline: Map<number, string>;
  historyKeys: Map<number, string>;
  problems: Problem[];
}

async function indexWal(store: ObjectStore, layout: ServerLayout, segmentSize: number, identities: AgeIdentities | undefined): Promise<WalIndex> {
  const index: WalIndex = { segments: new Set(), newestByTimeline: new Map(), historyKeys: new Map(), problems: [] };
  // as wal-restore refuses them (src/encryption/names.ts, unencryptedRefused)
  const refusePlain = identities !== undefined && !identities.allowUnencrypted;
  const plain = (file: string, name: string) =>
    index.problems.push({ kind: 'unencrypted-wal', segment: name, message: unencryptedRefused(`WAL object ${file}`).message });
  for await (const e of store.list(layout.walsPrefix)) {
    // another server's WAL under the same names must not pass for ours (docs/format.md#listed-keys)
    if (e.kind !== 'object' || !e.key.startsWith(layout.walsPrefix)) continue;
    const file = e.key.slice(e.key.lastIndexOf('/') + 1);
    const { name: stored, encrypted } = stripAgeSuffix(file);
    const codec = codecFromSuffix(stored);
    const base = (codec ? stored.slice(0, stored.lastIndexOf('.')) : stored).toUpperCase();
    if (/^[0-9A-F]{8}\.HISTORY$/.test(base)) {
      if (refusePlain && !encrypted) plain(file, historyFileName(walTimeline(base)));
      index.historyKeys.set(walTimeline(base), e.key);
      continue;
    }
    if (!isSegmentName(base)) continue;
    if (refusePlain && !encrypted) plain(file, base);
    if (e.size === 0) {
      index.problems.push({ kind: 'empty-wal', segment: base, message: `WAL object ${file} is empty (0 bytes)` });
      continue;
    }
    if (!codec && !encrypted && e.size !== segmentSize) {
      index.problems.push({ kind: 'wal-size-mismatch', segment: base, message: `WAL object ${file} has ${e.size} bytes, a segment has ${segmentSize}` });
    }
    index.segments.add(base);
    const tli = walTimeline(base);
    const cur = index.newestByTimeline.get(tli);
    if (cur === undefined || base > cur) index.newestByTimeline.set(tli, base);
  }
  return index;
}

function rangeText(r: SegmentRange, segmentSize: number): string {
  const first = segmentNameAt(r.timeline, r.first, segmentSize);
  if (r.first === r.last) return first;
  return `${first}..${segmentNameAt(r.timeline, r.last, segmentSize)}`;
}

async function verifyWal(
  store: ObjectStore, layout: ServerLayout, done: BackupInfo[], newest: BackupInfo | undefined, results: BackupResult[],
  options: VerifyOptions,
): Promise<WalResult> {
  const sizes = new Set(done.map((b) => b.xlog_segment_size ?? DEFAULT_XLOG_SEGMENT_SIZE));
  const segmentSize = [...sizes].at(-1)!;
  const wal: WalResult = emptyWal();
  if (!isValidSegmentSize(segmentSize) || sizes.size > 1) {
    wal.problems.push({ kind: 'invalid-wal-range', message: `backups disagree on xlog_segment_size or it is invalid: ${[...sizes].join(', ')}` });
    return wal;
  }
  const index = await indexWal(store, layout, segmentSize, options.identities);
  wal.problems.push(...index.problems);
  const archived = indexSegments(index.segments, segmentSize);
  const byId = new Map(results.map((r) => [r.backup_id, r]));
  const addMissing = (range: SegmentRange, backup: BackupInfo, why: string) => {
    wal.checked_segments += range.last - range.first + 1;
    for (const run of missingRuns(range, archived)) {
      const n = run.last - run.first + 1;
      const p: Problem = {
        kind: 'missing-wal', backup_id: backup.backup_id, segment: rangeText(run, segmentSize),
        message: `WAL ${n === 1 ? 'segment' : `${n} segments`} ${rangeText(run, segmentSize)} missing (${why} of backup ${backup.backup_id})`,
      };
      const r = byId.get(backup.backup_id);
      if (r && why === 'range') {
        r.problems.push(p);
        r.result = 'failed';
      } else {
        wal.problems.push(p);
      }
    }
  };
  for (const b of done) {
    const range = b.begin_wal && b.end_wal ? backupRange(b.begin_wal, b.end_wal, segmentSize) : null;
    if (!range) {
      const r = byId.get(b.backup_id)!;
      r.problems.push({ kind: 'invalid-wal-range', backup_id: b.backup_id, message: `backup ${b.backup_id}: begin_wal ${b.begin_wal} / end_wal ${b.end_wal} is not a WAL range` });
      r.result = 'failed';
      continue;
    }
    addMissing(range, b, 'range');
  }
  if (newest && done.some((b) => b.backup_id === newest.backup_id) && newest.begin_wal && newest.end_wal && isSegmentName(newest.end_wal)) {
    const timeline = walTimeline(newest.end_wal);
    const histories = new Map<number, HistoryEntry[] | null>();
    for (const [tli, key] of index.historyKeys) {
      if (tli <= timeline) continue;
      let parsed: HistoryEntry[] | null = null;
      try {
        // stored and plain bytes alike within a history file's limit (docs/format.md#metadata-limits)
        const maxBytes = walFileMaxBytes(historyFileName(tli));
        let body = await store.getBuffer(key, { maxBytes });
        const { name: stored, encrypted } = stripAgeSuffix(key);
        if (encrypted) {
          checkIdentities(`history file ${key}`, options.identities, undefined);
          body = await decryptBuffer(options.identities!, body, `history file ${key}`);
        }
        const codec = codecFromSuffix(stored);
        if (codec) body = await readWhole(Readable.from([body]).pipe((await loadCodec(codec)).decompressStream()), { key, maxBytes });
        parsed = parseHistoryFile(body.toString('utf8'), tli);
      } catch (e) {
        if (!(e instanceof NotFoundError) && !(e instanceof CompressionFormatError) && !(e instanceof EncryptedDataError) &&
          !(e instanceof ObjectTooLargeError)) throw e;
      }
      if (!parsed) wal.problems.push({ kind: 'invalid-history', segment: key.slice(key.lastIndexOf('/') + 1), message: `history file ${key.slice(key.lastIndexOf('/') + 1)} cannot be read` });
      histories.set(tli, parsed);
    }
    for (const tli of index.newestByTimeline.keys()) {
      if (tli > timeline && !index.historyKeys.has(tli)) {
        const name = historyFileName(tli);
        wal.problems.push({ kind: 'missing-history', segment: name, message: `timeline ${tli} has WAL segments but no ${name}: cannot tell where it branched` });
      }
    }
    const plan = planChain({ timeline, endWal: newest.end_wal.toUpperCase(), segmentSize, newestByTimeline: index.newestByTimeline, histories });
    for (const r of plan.ranges) addMissing(r, newest, 'after the end');
    wal.newest_segment = plan.newest ?? null;
    wal.timeline = plan.targetTimeline;
  }
  return wal;
}

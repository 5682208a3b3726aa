// The backup catalog of one server in the object store (docs/format.md#layout, #backup-names): which backups exist, their
// backup.info, name/shortcut resolution, and the keep annotation.
import { mapBounded } from '../concurrency.js';
import { GeneralError, NotFoundError, SseCustomerKeyError } from '../errors.js';
import { log } from '../log.js';
import type { ObjectStore, Tag } from '../storage/types.js';
import {
  BACKUP_INFO_MAX_BYTES, STATUS, markDeletionStarted, UnknownBackupInfoField, parseBackupInfo, serializeBackupInfo, type BackupInfo, type BackupInfoFields,
  type SerializeOptions,
} from './backup-info.js';
import type { ServerLayout } from './layout.js';

/** barman's is_backup_id: `re.match(r"(\d{8})T\d{6}$", s)`. */
const BACKUP_ID_RE = /^\d{8}T\d{6}$/;

export function isBackupId(text: string): boolean {
  return BACKUP_ID_RE.test(text);
}

/** The name of the keep annotation (docs/format.md#layout). */
export const KEEP_ANNOTATION = 'keep';

/** A backup directory whose backup.info exists but could not be read. */
export interface UnreadableBackup {
  backupId: string;
  error: Error;
}

export interface CatalogListing {
  /** Readable backups, sorted by ID. */
  backups: Map<string, BackupInfo>;
  /** Backups skipped because their backup.info could not be read (barman logs a WARNING). */
  unreadable: UnreadableBackup[];
  /** Backups whose backup.info has a key barman 3.17 does not know (barman aborts, exit 1). */
  unknownField: { backupId: string; error: UnknownBackupInfoField }[];
}

export interface CatalogOptions {
  /** backup.info files read at once (default 16). */
  concurrency?: number;
}

function byId(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class BackupCatalog {
  private readonly concurrency: number;
  private listing: CatalogListing | undefined;
  private annotations: Set<string> | undefined;
  private warned = false;

  constructor(
    readonly store: ObjectStore,
    readonly layout: ServerLayout,
    options: CatalogOptions = {},
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 16);
  }

  get serverName(): string {
    return this.layout.serverName;
  }

  /**
   * The IDs of the backup directories (sorted): every common prefix under `base/` holding a
   * backup.info. The ID is the last path component, not validated (docs/format.md#layout).
   */
  async listBackupIds(): Promise<string[]> {
    const candidates = await this.candidateIds();
    const present = await mapBounded(candidates, this.concurrency, async (id) =>
      (await this.store.head(this.layout.backupInfoKey(id))) !== null);
    return candidates.filter((_, i) => present[i]);
  }

  private async candidateIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const entry of this.store.list(this.layout.basePrefix, { delimiter: '/' })) {
      if (entry.kind !== 'prefix') continue;
      const trimmed = entry.prefix.replace(/\/+$/, '');
      const id = trimmed.slice(trimmed.lastIndexOf('/') + 1);
      if (id !== '') ids.push(id);
    }
    return [...new Set(ids)].sort(byId);
  }

  /** Read one backup.info: null when it does not exist; parse errors are thrown. */
  async readBackupInfo(backupId: string): Promise<BackupInfo | null> {
    let body: Buffer;
    try {
      body = await this.store.getBuffer(this.layout.backupInfoKey(backupId), { maxBytes: BACKUP_INFO_MAX_BYTES });
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
    return { ...parseBackupInfo(body), backup_id: backupId };
  }

  /**
   * Mark a backup as being deleted before its first object goes (docs/format.md#delete-backup):
   * backup.info rewritten in one PUT with status FAILED and our deletion error, its other lines
   * unchanged. The cached listing keeps the backup as it was: the run's WAL decisions stay those
   * of a run that is never interrupted. Returns the file as it was, for unmarkBeingDeleted.
   */
  async markBeingDeleted(backupId: string): Promise<Buffer> {
    const key = this.layout.backupInfoKey(backupId);
    const body = await this.store.getBuffer(key, { maxBytes: BACKUP_INFO_MAX_BYTES });
    parseBackupInfo(body); // refuses what a reader would refuse (bad UTF-8, bad lines) before any write
    const text = markDeletionStarted(body.toString('utf8'));
    parseBackupInfo(text);
    await this.store.put(key, Buffer.from(text, 'utf8'));
    return body;
  }

  /**
   * Put back the backup.info that markBeingDeleted replaced, byte for byte: a keep request came
   * while the deletion marked it (docs/format.md#keep-handshake), and nothing of it was deleted yet.
   */
  async unmarkBeingDeleted(backupId: string, original: Buffer): Promise<void> {
    await this.store.put(this.layout.backupInfoKey(backupId), original);
  }

  /**
   * Every backup.info, read with bounded concurrency, readable and unreadable ones apart.
   * Cached: call invalidate() after changing the store.
   */
  async load(): Promise<CatalogListing> {
    if (this.listing) return this.listing;
    const { entries, unreadable, unknownField } = await this.readAll((info) => info);
    this.listing = { backups: entries, unreadable, unknownField };
    return this.listing;
  }

  /**
   * Read every backup.info and keep only `map(info)` of each (the parsed object is dropped as
   * soon as it is mapped), in ID order. Not cached.
   */
  private async readAll<R>(map: (info: BackupInfo) => R): Promise<{ entries: Map<string, R> } & Omit<CatalogListing, 'backups'>> {
    const ids = await this.candidateIds();
    const results = await mapBounded(ids, this.concurrency, async (id) => {
      try {
        const info = await this.readBackupInfo(id);
        return { id, value: info ? map(info) : undefined, missing: info === null };
      } catch (e) {
        return { id, error: e instanceof Error ? e : new Error(String(e)) };
      }
    });
    const out = { entries: new Map<string, R>(), unreadable: [] as UnreadableBackup[], unknownField: [] as CatalogListing['unknownField'] };
    for (const r of results) {
      if (r.error !== undefined) {
        if (r.error instanceof UnknownBackupInfoField) out.unknownField.push({ backupId: r.id, error: r.error });
        else out.unreadable.push({ backupId: r.id, error: r.error });
      } else if (!r.missing) out.entries.set(r.id, r.value as R);
    }
    return out;
  }

  /**
   * barman's get_backup_list(): readable backups sorted by ID, after logging a WARNING for each
   * unreadable one. A backup.info with an unknown key aborts with UnknownBackupInfoField (exit 1).
   */
  async getBackupList(): Promise<Map<string, BackupInfo>> {
    const listing = await this.load();
    this.reportProblems(listing);
    return listing.backups;
  }

  /**
   * getBackupList() for output over large catalogs: the same warnings and abort, but each backup
   * is kept only as `map(info)` (a formatted line, a few fields). Uses the loaded listing if any.
   */
  async mapBackupList<R>(map: (info: BackupInfo) => R): Promise<Map<string, R>> {
    if (this.listing) return new Map([...(await this.getBackupList())].map(([id, info]) => [id, map(info)]));
    const read = await this.readAll(map);
    this.reportProblems(read);
    return read.entries;
  }

  private reportProblems(listing: Omit<CatalogListing, 'backups'>): void {
    // barman reads in ID order and stops at the first unknown key: warnings before it are printed,
    // once per listing (barman caches the list).
    const abortAt = listing.unknownField[0];
    if (!this.warned) {
      this.warned = true;
      for (const u of listing.unreadable) {
        if (abortAt && u.backupId > abortAt.backupId) break;
        log.warning(`Unable to open backup.info file for ${u.backupId}: ${u.error.message}`);
      }
    }
    if (abortAt) throw abortAt.error;
  }

  /** One backup's metadata: from the loaded listing when there is one, else read from the store. */
  async getBackupInfo(backupId: string): Promise<BackupInfo | null> {
    const cached = this.listing?.backups.get(backupId);
    if (cached) return cached;
    return this.readBackupInfo(backupId);
  }

  /** Forget the cached listing and annotations. */
  invalidate(): void {
    this.listing = undefined;
    this.annotations = undefined;
    this.warned = false;
  }

  /** Drop one backup from the cached listing (after deleting it). */
  forget(backupId: string): void {
    this.listing?.backups.delete(backupId);
  }

  /**
   * Resolve a backup ID, shortcut or name (docs/format.md#backup-names): an ID-shaped string as is (no existence
   * check), then first/oldest/last/latest/last-failed over all readable backups, then a unique
   * backup_name. Throws GeneralError (exit 4) when nothing or several backups match.
   */
  async resolve(idOrName: string): Promise<string> {
    if (isBackupId(idOrName)) return idOrName;
    // Only what the resolution needs of each backup, so that a name over thousands stays small.
    const pick = (b: BackupInfo) => ({ backup_id: b.backup_id, status: b.status, backup_name: b.backup_name });
    const read = this.listing
      ? { ...this.listing, entries: new Map([...this.listing.backups].map(([id, b]) => [id, pick(b)])) }
      : await this.readAll(pick);
    // A name that matches nothing while backup.info files could not be read for want of the store's
    // customer-provided key: that missing key is the one thing to say (one line), not a warning per
    // backup followed by "Unknown backup".
    const lockedOut = read.unreadable.find((u) => u.error instanceof SseCustomerKeyError);
    if (lockedOut && read.unknownField.length === 0 && resolveShortcut(read.entries, idOrName) === null &&
      ![...read.entries.values()].some((b) => b.backup_name === idOrName)) {
      throw lockedOut.error;
    }
    this.reportProblems(read);
    const backups = read.entries;
    const shortcut = resolveShortcut(backups, idOrName);
    if (shortcut !== null) return shortcut;
    const matching = [...backups.values()].filter((b) => b.backup_name === idOrName);
    if (matching.length > 1) {
      throw new GeneralError(
        `Multiple backups found matching name '${idOrName}' (try using backup ID instead): ` +
          matching.map((b) => b.backup_id).join(' '),
      );
    }
    if (matching.length === 1) return matching[0]!.backup_id;
    throw new GeneralError(`Unknown backup '${idOrName}' for server '${this.serverName}'`);
  }

  // ---- annotations ----

  /** Which (backup, annotation) pairs exist, from one recursive listing of `base/` (barman's cache). */
  private async annotationIndex(): Promise<Set<string>> {
    if (this.annotations) return this.annotations;
    const probe = this.layout.annotationKey('x', 'y');
    const prefix = probe.slice(0, probe.length - 'x/annotations/y'.length);
    const found = new Set<string>();
    for await (const entry of this.store.list(prefix)) {
      if (entry.kind !== 'object') continue;
      const parts = entry.key.split('/');
      if (parts.length > 3 && parts[parts.length - 2] === 'annotations') {
        found.add(`${parts[parts.length - 3]}/${parts[parts.length - 1]}`);
      }
    }
    this.annotations = found;
    return found;
  }

  /**
   * An annotation's value: its first line as barman's readline() returns it (a trailing newline,
   * if the object has one, is kept), or null when the annotation does not exist.
   */
  async getAnnotation(backupId: string, name: string, useCache = true): Promise<string | null> {
    if (useCache && !(await this.annotationIndex()).has(`${backupId}/${name}`)) return null;
    let body: Buffer;
    try {
      // an annotation is a word ("full", "standalone"): 64 KiB is plenty (docs/format.md#metadata-limits)
      body = await this.store.getBuffer(this.layout.annotationKey(backupId, name), { maxBytes: 64 << 10 });
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
    const nl = body.indexOf(0x0a);
    return body.subarray(0, nl < 0 ? body.length : nl + 1).toString('utf8');
  }

  /** The keep target (`full` / `standalone`) of a backup, or null when it is not kept. */
  async getKeepTarget(backupId: string, useCache = true): Promise<string | null> {
    return this.getAnnotation(backupId, KEEP_ANNOTATION, useCache);
  }

  /** Write an annotation (barman writes the value without a newline). */
  async putAnnotation(backupId: string, name: string, value: string): Promise<void> {
    await this.store.put(this.layout.annotationKey(backupId, name), Buffer.from(value, 'utf8'));
    this.annotations?.add(`${backupId}/${name}`);
  }

  /** Remove an annotation; a missing one is not an error. */
  async deleteAnnotation(backupId: string, name: string): Promise<void> {
    await this.store.delete(this.layout.annotationKey(backupId, name));
    this.annotations?.delete(`${backupId}/${name}`);
  }

  // ---- writing ----

  /** Store a backup.info (barman writes it last, also for a FAILED backup). */
  /** Writes backup.info; `tags` are the backup's own (barman tags backup.info like every tar). */
  async writeBackupInfo(
    backupId: string, info: BackupInfoFields, options: SerializeOptions & { tags?: Tag[]; ifNoneMatch?: boolean } = {},
  ): Promise<void> {
    const text = serializeBackupInfo(info, options);
    const tags = options.tags?.length ? options.tags : undefined;
    await this.store.put(this.layout.backupInfoKey(backupId), Buffer.from(text, 'utf8'), { tags, ifNoneMatch: options.ifNoneMatch });
    if (this.listing) {
      const backups = this.listing.backups;
      backups.set(backupId, { ...info, backup_id: backupId });
      this.listing.backups = new Map([...backups].sort(([a], [b]) => byId(a, b)));
    }
  }
}

/** first/oldest, last/latest, last-failed over the given backups (any status); null if none applies. */
function resolveShortcut(backups: ReadonlyMap<string, Pick<BackupInfo, 'status'>>, shortcut: string): string | null {
  if (backups.size === 0) return null;
  const ids = [...backups.keys()].sort(byId);
  if (shortcut === 'last' || shortcut === 'latest') return ids[ids.length - 1]!;
  if (shortcut === 'first' || shortcut === 'oldest') return ids[0]!;
  if (shortcut === 'last-failed') {
    for (let i = ids.length - 1; i >= 0; i--) if (backups.get(ids[i]!)!.status === STATUS.FAILED) return ids[i]!;
  }
  return null;
}

// Restoring a base backup (docs/format.md#restore): choose the backup (id, name, shortcut or `auto` with targets),
// refuse a non-empty destination before downloading anything, then download, decompress and extract
// every archive — in parallel across archives (beyond barman), the parts of one archive in order —
// recreate pg_tblspc links and pg_wal, and optionally write the recovery configuration.
// A backup of ours is checked while it is extracted (integrity.ts): parts against parts.json before
// and while they are read, files against the backup_manifest once everything is written.
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { mapBounded } from '../concurrency.js';
import { BarmanCloudError, EncryptionKeyError, GeneralError, OperationError } from '../errors.js';
import { log } from '../log.js';
import { listedBelow, type ServerLayout } from '../catalog/layout.js';
import { BackupCatalog, isBackupId } from '../catalog/catalog.js';
import { isInterruptedDeletion, parseTimestamp, STATUS, timestampEpochMicros, type BackupInfo } from '../catalog/backup-info.js';
import { CompressionFormatError, TAR_EXTENSIONS, codecFromSuffix, type CodecName } from '../compression/index.js';
import { AGE_SUFFIX, decryptStream, stripAgeSuffix, type AgeIdentities } from '../encryption/age.js';
import { unencryptedRefused } from '../encryption/names.js';
import type { ObjectStore } from '../storage/types.js';
import { decodePartsList, PARTS_LIST_MAX_BYTES, PARTS_LIST_NAME, type PartsList } from '../catalog/parts-list.js';
import { extractArchiveParts, placeHeldFile, type HeldFile } from './extract.js';
import { BackupIntegrityError, checkStoredParts, compareWithManifest, FileDigests, partDigestCheck } from './integrity.js';
import { BACKUP_MANIFEST_NAME } from './manifest.js';
import {
  BACKUP_LABEL, BACKUP_LABEL_MAX_BYTES, CONTROL_FILE, backupLabelMismatch, systemIdMismatch, unlistedTablespaceLink,
} from './archive-identity.js';
import { parseLsn, walTimeline } from '../xlog.js';
import { checkTablespaceTargets, ensureDirectory, realpathLoose, replaceFile, replaceSymlink } from './restore-paths.js';
import { readRegularFile } from '../regular-file.js';

/**
 * Plain parts are read in pieces of 1 MiB, not the stores' default (128 KiB from S3, 64 KiB from
 * files): each piece then passes the hash, the tar parser and write(2) once, without a copy
 * (docs/benchmarks-history.md "restore in 1 MiB pieces"). Not compressed or encrypted ones: a decoder fed
 * 1 MiB at a time queued several MiB of output per piece (lz4, zstd, snappy restores at -J 4 peaked
 * at 144-154 MB, backup-memory.test.ts).
 */
const PART_PIECE = 1 << 20;

export interface RestoreTargets {
  tli?: string;
  lsn?: string;
  /** Epoch milliseconds of --target-time. */
  timeMs?: number;
}

export interface RestoreOptions {
  /** NAME:LOCATION rules, already parsed. */
  tablespaces: Map<string, string>;
  jobs: number;
  targets: RestoreTargets;
  /** Lines for postgresql.auto.conf plus recovery.signal, when the recovery configuration is wanted. */
  recoveryConf?: (backup: BackupInfo) => string[];
  signal?: AbortSignal;
  /** age identities for an encrypted backup (--encryption-identity-file). */
  identities?: AgeIdentities;
  /** Stored bytes read so far, of all the parts to read (a progress line on a terminal). */
  onProgress?: (bytes: number, totalBytes: number) => void;
}

/** `--target-tli latest`: the timeline of the greatest WAL name in the archive (docs/format.md#restore). */
async function latestTimeline(store: ObjectStore, layout: ServerLayout): Promise<number> {
  let greatest = '';
  const ours = listedBelow(layout.walsPrefix);
  for await (const e of store.list(layout.walsPrefix)) {
    if (e.kind !== 'object' || !ours(e.key)) continue;
    const name = e.key.slice(e.key.lastIndexOf('/') + 1);
    if (name > greatest) greatest = name;
  }
  if (!greatest) throw new GeneralError('No WAL files found in the archive: cannot determine the latest timeline');
  return walTimeline(greatest);
}

/** barman's `auto` choice among all backups, newest ID first (docs/format.md#restore). */
async function chooseBackup(catalog: BackupCatalog, store: ObjectStore, layout: ServerLayout, targets: RestoreTargets): Promise<string> {
  let tli: number | undefined;
  if (targets.tli === 'current') throw new GeneralError("'current' is not supported as --target-tli when the backup is 'auto'");
  if (targets.tli === 'latest') tli = await latestTimeline(store, layout);
  else if (targets.tli !== undefined) tli = Number(targets.tli);
  const backups = [...(await catalog.getBackupList()).values()].sort((a, b) => (a.backup_id < b.backup_id ? 1 : -1));
  for (const b of backups) {
    // Only what restore accepts is a candidate (docs/format.md#restore-status; a half-deleted
    // backup is FAILED too); barman's auto would pick a newer FAILED backup.
    if (b.status !== STATUS.DONE) continue;
    if (tli !== undefined && b.timeline !== tli) continue;
    if (targets.timeMs !== undefined) {
      if (!b.end_time) continue;
      if (Number(timestampEpochMicros(parseTimestamp(b.end_time)) / 1000n) > targets.timeMs) continue;
    }
    if (targets.lsn !== undefined) {
      if (!b.end_xlog || parseLsn(b.end_xlog) > parseLsn(targets.lsn)) continue;
    }
    return b.backup_id;
  }
  throw new OperationError('Cannot find any candidate backup for recovery.');
}

// barman's words, then what to do: an interrupted restore leaves exactly this (docs/commands/restore.md)
const notEmpty = (dir: string) => new OperationError(
  `Destination ${dir} already exists and it is not empty: restore into an empty or new directory (a restore that was interrupted leaves part of a backup there; remove it first)`,
);

async function assertEmptyOrMissing(dir: string): Promise<void> {
  const entries = await fs.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  if (entries.length > 0) throw notEmpty(dir);
}

/**
 * The data directory's backup_label, as PostgreSQL will read it (the file left at that name once
 * every member is extracted, whatever links or later members put it there), must be the label
 * backup.info records: without it, or with another backup's, PostgreSQL does not start from this
 * backup's start (docs/format.md#restore-backup-label). A label recorded as None is not checked.
 */
async function checkBackupLabel(dataDir: string, backup: BackupInfo, incomplete: string): Promise<void> {
  if (backup.backup_label == null) return;
  const found = await readRegularFile(join(dataDir, BACKUP_LABEL), BACKUP_LABEL_MAX_BYTES);
  const why = backupLabelMismatch(found?.content, backup);
  if (why) throw new BackupIntegrityError(`${why}; ${incomplete}`);
}

/**
 * global/pg_control begins with the system identifier of the cluster it belongs to (PostgreSQL's
 * ControlFileData, a uint64 in the server's byte order): it must be backup.info's `systemid`, or
 * the archive is another cluster's (docs/format.md#restore-system-id). Not checked when None.
 */
function checkSystemId(control: HeldFile | undefined, backup: BackupInfo, incomplete: string): void {
  const why = systemIdMismatch(control?.content, backup);
  if (why) throw new BackupIntegrityError(`${why}; ${incomplete}`);
}

/**
 * barman's data archives hold no `pg_tblspc/<oid>` members: restore makes each tablespace's link from
 * backup.info. A link the archive put there for a tablespace backup.info does not list would send
 * PostgreSQL's reads and writes wherever it points (docs/format.md#restore-tablespaces).
 */
async function checkTablespaceLinks(dataDir: string, backup: BackupInfo, incomplete: string): Promise<void> {
  const dir = join(dataDir, 'pg_tblspc');
  // anything but a directory there is replaced by one later (restore-paths.ts ensureDirectory)
  if (!(await fs.lstat(dir).then((st) => st.isDirectory(), () => false))) return;
  const entries = await fs.readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const why = e.isSymbolicLink() ? unlistedTablespaceLink(e.name, backup) : undefined;
    if (why) throw new BackupIntegrityError(`${why}; ${incomplete}`);
  }
}

/** The restore's mark in its destination while it runs (docs/format.md#restore-claim). */
const RESTORE_CLAIM = '.barman-cloud-restore-running';

/**
 * Two restores into one directory both found it empty and then extracted over each other, each
 * exiting 0 (docs/format.md#restore-claim). Right after the check, an empty file is created in it
 * with O_EXCL: a second restore finds the directory not empty, or cannot create the file, and is
 * refused as for any non-empty destination. The returned release removes the file, and the
 * directories this call made while they are empty (a refusal before extraction leaves nothing
 * behind, as before).
 */
async function claimDestination(dir: string): Promise<() => Promise<void>> {
  const made = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const claim = join(dir, RESTORE_CLAIM);
  try {
    await (await fs.open(claim, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600)).close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw notEmpty(dir);
    throw e;
  }
  return async () => {
    await fs.unlink(claim).catch(() => undefined);
    // rmdir removes only an empty directory: after an extraction, nothing goes
    for (let d = dir; made !== undefined; d = dirname(d)) {
      if (!(await fs.rmdir(d).then(() => true, () => false)) || d === made) break;
    }
  };
}

/** The parts of archive `base` (`data` or an OID), main file first, then `_NNNN` parts in key order (docs/format.md#layout). */
function archiveParts(keys: string[], prefix: string, base: string): { key: string; codec?: CodecName; encrypted: boolean }[] {
  const main: string[] = [];
  const extra: string[] = [];
  for (const key of keys) {
    if (!key.startsWith(prefix + base)) continue;
    const rest = key.slice(prefix.length + base.length);
    if (rest[0] !== '.' && rest[0] !== '_') continue;
    const ext = stripAgeSuffix(rest.slice(rest.indexOf('.') + 1)).name;
    if (!TAR_EXTENSIONS.has(ext)) {
      log.warning(`Skipping unknown extension: ${key}`);
      continue;
    }
    if (rest[0] === '.') main.push(key);
    else if (/^_\d{4,}\./.test(rest)) extra.push(key);
  }
  // `%04d` grows past 9999: in part order, not key order (data_10000 sorts before data_9999)
  const number = (key: string) => partNumber(key, prefix, base);
  extra.sort((a, b) => number(a) - number(b) || (a < b ? -1 : 1));
  return [...main, ...extra].map((key) => {
    const { name, encrypted } = stripAgeSuffix(key);
    return { key, codec: codecFromSuffix(name), encrypted };
  });
}

/** n of `<base>_n.tar…`; 0 for the main part. */
function partNumber(key: string, prefix: string, base: string): number {
  const rest = key.slice(prefix.length + base.length);
  return rest[0] === '_' ? Number.parseInt(rest.slice(1), 10) : 0;
}

/**
 * Without parts.json (barman's backups) the numbering is the only sign of a lost part: parts are
 * numbered from 1 without gaps (docs/format.md#layout), and a missing middle one would restore
 * with its files absent and nothing to say so. Exit 4, before anything is downloaded.
 */
function checkPartNumbers(parts: readonly { key: string }[], prefix: string, base: string): void {
  const main = parts.filter((p) => partNumber(p.key, prefix, base) === 0);
  if (main.length > 1) throw new BackupIntegrityError(`Two objects hold the first part of ${base}: ${main.map((p) => p.key.slice(prefix.length)).join(' and ')}`);
  const extra = parts.filter((p) => partNumber(p.key, prefix, base) > 0);
  extra.forEach(({ key }, i) => {
    const n = partNumber(key, prefix, base);
    if (n < i + 1) throw new BackupIntegrityError(`Two objects hold part ${n} of ${base}: ${extra[i - 1]!.key.slice(prefix.length)} and ${key.slice(prefix.length)}`);
    if (n > i + 1) {
      throw new BackupIntegrityError(`Missing file ${base}_${String(i + 1).padStart(4, '0')}.* before ${key.slice(prefix.length)}: the backup is incomplete`);
    }
  });
}

/**
 * Refuses (EncryptionKeyError, exit 1) to read an encrypted backup without identities, or with
 * identities of which none fits the recipients recorded in parts.json (when recorded).
 */
export function checkIdentities(what: string, ids: AgeIdentities | undefined, recipients: readonly string[] | undefined): void {
  if (!ids) {
    throw new EncryptionKeyError(
      `${what} is encrypted (age) and no identity was given: use --encryption-identity-file or BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE`,
    );
  }
  if (recipients && !ids.fingerprints.some((f) => recipients.includes(f))) {
    throw new EncryptionKeyError(
      `${what} is encrypted for recipients ${recipients.join(', ')} (fingerprints) and none of the identities in ${ids.source} matches`,
    );
  }
}

/**
 * An error while extracting a part, made to name it: an integrity failure and anything that is not
 * ours (a decoder or tar parser refusing the bytes) becomes a BackupIntegrityError naming the part;
 * our other errors (network, unsafe members) keep their class. All say the destination is incomplete.
 */
function damagedPart(e: unknown, part: string, incomplete: string): unknown {
  if (e instanceof BackupIntegrityError) return new BackupIntegrityError(`${e.message}; ${incomplete}`, { cause: e });
  // A codec refusing the bytes (empty, truncated, checksum) is the part's damage: name the part.
  if (e instanceof BarmanCloudError && !(e instanceof CompressionFormatError)) {
    e.message = `${e.message}; ${incomplete}`;
    return e;
  }
  if (e instanceof Error && e.name === 'AbortError') return e;
  // a system call failing (ENOSPC, EACCES…) is the destination's trouble, not the part's
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return new GeneralError(`${(e as Error).message}; ${incomplete}`, { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new BackupIntegrityError(`part ${part} cannot be read (${msg.split('\n')[0]}); ${incomplete}`, { cause: e });
}

export async function restoreBackup(
  store: ObjectStore,
  layout: ServerLayout,
  requested: string,
  recoveryDir: string,
  options: RestoreOptions,
): Promise<BackupInfo> {
  const catalog = new BackupCatalog(store, layout);
  const backupId = requested === 'auto' ? await chooseBackup(catalog, store, layout, options.targets) : await catalog.resolve(requested);
  const backup = await catalog.readBackupInfo(backupId);
  if (!backup) throw new OperationError(`Backup ${backupId} for server ${layout.serverName} does not exists`);
  if (isInterruptedDeletion(backup)) {
    // Part of it may be gone already (docs/format.md#delete-backup): refused before any download.
    throw new OperationError(`Backup ${backupId} for server ${layout.serverName} is being deleted: its deletion was interrupted; run barman-cloud-backup-delete again to finish it, or restore another backup`);
  }
  if (backup.status !== STATUS.DONE) {
    // A backup that never finished holds no consistent copy (docs/format.md#restore-status).
    throw new OperationError(`Backup ${backupId} for server ${layout.serverName} has status ${backup.status}: only a backup with status DONE can be restored; restore another backup`);
  }
  if (backup.snapshots_info) throw new GeneralError('restoring snapshot backups is not supported by this implementation');
  if (!isBackupId(backupId)) log.warning(`Backup directory ${backupId} does not look like a backup ID`);

  // Where each archive goes: data into recovery_dir, each tablespace to its (relocated) location.
  const dataDir = resolvePath(recoveryDir);
  const tablespaces = (backup.tablespaces ?? []).map((ts) => {
    const relocated = options.tablespaces.get(ts.name);
    return { name: ts.name, oid: ts.oid, dir: relocated ? realpathLoose(relocated) : ts.location };
  });
  checkTablespaceTargets(dataDir, tablespaces);
  const targets: { base: string; dir: string; tablespace?: { name: string; oid: number } }[] = [
    { base: 'data', dir: dataDir },
    ...tablespaces.map((t) => ({ base: String(t.oid), dir: t.dir, tablespace: t })),
  ];
  for (const t of targets) await assertEmptyOrMissing(t.dir);
  const release = await claimDestination(dataDir);
  try {
    const prefix = layout.backupPrefix(backupId);
    const keys: string[] = [];
    const listed = new Map<string, number>();
    const ours = listedBelow(prefix);
    for await (const e of store.list(prefix, { delimiter: '/' })) {
      if (e.kind !== 'object' || !ours(e.key)) continue;
      keys.push(e.key);
      listed.set(e.key.slice(prefix.length), e.size);
    }
    const plan = targets.map((t) => ({ ...t, parts: archiveParts(keys, prefix, t.base) }));
    for (const p of plan) {
      if (p.parts.length === 0) throw new OperationError(`Missing file ${p.base}.* for server ${layout.serverName}`);
    }
    const incomplete = `the destination ${dataDir} is incomplete`;

    // Part checks before anything is downloaded; the hashes are checked while each part is read.
    let partsList: PartsList | undefined;
    if (listed.has(PARTS_LIST_NAME)) {
      partsList = decodePartsList((await store.getBuffer(`${prefix}${PARTS_LIST_NAME}`, { signal: options.signal, maxBytes: PARTS_LIST_MAX_BYTES })).toString('utf8'), backupId);
    } else {
      for (const p of plan) checkPartNumbers(p.parts, prefix, p.base);
      log.info(`Backup ${backupId} has no ${PARTS_LIST_NAME} (taken by barman or an older barman-cloud-ts): part and file checksums are unavailable`);
    }
    const partName = (key: string) => key.slice(prefix.length);
    const expected = checkStoredParts(
      plan.flatMap((p) => p.parts.map((part) => ({ name: partName(part.key), size: listed.get(partName(part.key)) ?? 0 }))),
      listed,
      partsList,
    );
    // Encrypted parts carry their backup_manifest inside what age authenticates: it is checked even
    // when parts.json (plain, anyone's to delete) is gone, or another backup's authentic part put in
    // place of one of ours would restore with exit 0.
    const encryptedParts = plan.some((p) => p.parts.some((part) => part.encrypted));
    const digests = partsList || encryptedParts ? new FileDigests() : undefined;
    const totalBytes = plan.reduce((sum, p) => sum + p.parts.reduce((n, part) => n + (listed.get(partName(part.key)) ?? 0), 0), 0);
    let readBytes = 0;
    // An encrypted backup needs a fitting identity: refused before anything is downloaded or created.
    if (backup.encryption === 'age' || encryptedParts) {
      checkIdentities(`backup ${backupId}`, options.identities, partsList?.encryption?.recipients);
    }
    // With an identity, every part must be encrypted (src/encryption/names.ts, unencryptedRefused).
    if (options.identities && !options.identities.allowUnencrypted) {
      const plain = plan.flatMap((p) => p.parts).find((part) => !part.encrypted);
      if (plain) throw unencryptedRefused(`part ${partName(plain.key)} of backup ${backupId}`);
    }

    // The control file waits in memory until every archive is extracted and checked: a restore that
    // fails or is killed before then leaves a directory PostgreSQL refuses to start on
    // (docs/format.md#restore-control-file).
    let controlFile: HeldFile | undefined;
    // Archives in parallel (up to -J), the parts of one archive in order.
    await mapBounded(plan, options.jobs, async (p) => {
      await fs.mkdir(p.dir, { recursive: true, mode: 0o700 });
      log.info(`Extracting ${p.base} into ${p.dir}`);
      let current = '';
      const openPart = async (key: string, asIs: boolean): Promise<Readable> => {
        current = partName(key);
        const source = await store.get(key, { signal: options.signal, pieceSize: asIs ? PART_PIECE : undefined });
        const onProgress = options.onProgress;
        if (onProgress) source.on('data', (piece: Buffer) => onProgress((readBytes += piece.length), totalBytes));
        const check = partDigestCheck(current, expected.get(current));
        source.on('error', (e) => check.destroy(e));
        if (!key.endsWith(AGE_SUFFIX)) return source.pipe(check);
        // the stored (encrypted) bytes are what parts.json hashes; the tar reader gets the plaintext
        const plain = decryptStream(options.identities!, `part ${current}`);
        check.on('error', (e) => plain.destroy(e));
        return source.pipe(check).pipe(plain);
      };
      try {
        const stats = await extractArchiveParts(
          p.parts.map((part) => () => openPart(part.key, !part.codec && !part.encrypted)),
          p.dir,
          {
            codec: p.parts[0]?.codec ?? null,
            signal: options.signal,
            digests: digests && { record: digests, archive: p.base },
            holdBack: p.base === 'data' ? CONTROL_FILE : undefined,
            tablespace: p.tablespace,
          },
        );
        if (p.base === 'data') controlFile = stats.held;
      } catch (e) {
        throw damagedPart(e, current, incomplete);
      }
    });

    if (digests) {
      let manifest: FileHandle;
      try {
        // not through a link the archive may have planted there
        manifest = await fs.open(join(dataDir, BACKUP_MANIFEST_NAME), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      } catch {
        throw new BackupIntegrityError(`${BACKUP_MANIFEST_NAME} is missing from the data archive of backup ${backupId}; ${incomplete}`);
      }
      try {
        // read in pieces, never whole: its size grows with the number of files (docs/format.md#manifest-reading)
        await compareWithManifest(manifest.createReadStream({ autoClose: false, highWaterMark: 256 << 10 }), digests);
      } catch (e) {
        if (e instanceof BarmanCloudError) e.message = `${e.message}; ${incomplete}`;
        throw e;
      } finally {
        await manifest.close();
      }
      log.info(`Checked ${digests.files.size} files against ${BACKUP_MANIFEST_NAME} and ${expected.size} parts against ${PARTS_LIST_NAME}`);
    }
    // Whoever wrote them, the archives must be the backup backup.info describes.
    checkSystemId(controlFile, backup, incomplete);
    await checkBackupLabel(dataDir, backup, incomplete);
    await checkTablespaceLinks(dataDir, backup, incomplete);

    // The archive may have planted links at any of these names: replace, never write through.
    // pg_tblspc itself too, tablespaces or not: PostgreSQL makes its links in there.
    ensureDirectory(join(dataDir, 'pg_tblspc'));
    for (const p of plan) {
      if (p.tablespace === undefined) continue;
      replaceSymlink(join(dataDir, 'pg_tblspc', String(p.tablespace.oid)), p.dir);
    }
    ensureDirectory(join(dataDir, (backup.version ?? 0) < 100000 ? 'pg_xlog' : 'pg_wal'));

    if (options.recoveryConf) {
      await replaceFile(dataDir, 'postgresql.auto.conf', `${options.recoveryConf(backup).join('\n')}\n`, true);
      await replaceFile(dataDir, 'recovery.signal', '');
    }
    if (controlFile) await placeHeldFile(controlFile);
    return backup;
  } finally {
    await release();
  }
}

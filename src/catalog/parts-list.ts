// The object-level checksum list of a backup: `P/S/base/<id>/parts.json`, one entry per stored part
// (tablespaces first, then data, in upload order) with its stored size and the SHA-256 of its stored
// (compressed) bytes. Written after the last part is uploaded and before backup.info says DONE, so a
// DONE backup of ours always has one (created empty before the first part, as the run's claim on its
// backup ID: docs/format.md#backup-id-claim); barman ignores the object (its restore takes only keys that
// start with `data` or a tablespace OID, docs/compatibility.md). Backups without it (barman's, or ours from
// before it existed) restore and verify without part checksums.
import { GeneralError } from '../errors.js';
import { BACKUP_INFO_MAX_BYTES } from './backup-info.js';

export const PARTS_LIST_NAME = 'parts.json';
/**
 * The most a parts.json is read of (docs/format.md#metadata-limits): ~150 bytes per part, so room
 * for over 400,000 parts (a 40 TB backup at the smallest part size S3 allows is 8 million 5 MiB
 * chunks, but only ~400 parts at the default -S of 100 GB).
 */
export const PARTS_LIST_MAX_BYTES = 64 << 20;
const PARTS_LIST_VERSION = 1;

export interface PartEntry {
  /** The part's name inside the backup directory, e.g. `data_0001.tar.lz4` or `16384.tar`. */
  name: string;
  /** Stored size in bytes. */
  size: number;
  /** SHA-256 of the stored bytes, lower-case hex. */
  sha256: string;
}

/** Client-side encryption of the parts: the format and the fingerprints of the recipients (age/recipientFingerprint). */
export interface PartsEncryption {
  format: 'age';
  recipients: string[];
}

/**
 * The run that writes the backup (docs/format.md#backup-heartbeat): how often it rewrites this file
 * while it runs, and the backup.info it had so far. A later run that finds this file older than
 * MISSED_HEARTBEATS of those intervals, and no backup.info, records the backup as FAILED from it.
 */
export interface BackupRun {
  heartbeatSeconds: number;
  /** backup.info text (status STARTED) as of the last rewrite. */
  backupInfo: string;
}

/** The longest heartbeat interval a run record may declare: a day (docs/format.md#backup-heartbeat). */
export const MAX_HEARTBEAT_SECONDS = 86_400;

export interface PartsList {
  version: number;
  backupId: string;
  parts: PartEntry[];
  encryption?: PartsEncryption;
  run?: BackupRun;
}

export function encodePartsList(list: Omit<PartsList, 'version'>): string {
  const body = {
    version: PARTS_LIST_VERSION,
    backup_id: list.backupId,
    parts: list.parts.map((p) => ({ name: p.name, size: p.size, sha256: p.sha256 })),
    ...(list.encryption ? { encryption: list.encryption } : {}),
    ...(list.run ? { run: { heartbeat_seconds: list.run.heartbeatSeconds, backup_info: list.run.backupInfo } } : {}),
  };
  return `${JSON.stringify(body, null, 1)}\n`;
}

const PART_NAME = /^[A-Za-z0-9_.-]{1,200}$/;

/**
 * Parses and validates a parts list read from the store. Anything malformed (not JSON, an unknown
 * version, a part name that is not a plain file name, a negative size, a hash that is not 64 hex
 * digits, a duplicate) is a GeneralError naming the backup: such a list proves nothing.
 */
export function decodePartsList(text: string, backupId: string): PartsList {
  const bad = (why: string) => new GeneralError(`invalid ${PARTS_LIST_NAME} for backup ${backupId}: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not an object');
  const obj = raw as Record<string, unknown>;
  if (obj.version !== PARTS_LIST_VERSION) throw bad(`unsupported version ${JSON.stringify(obj.version)}`);
  if (obj.backup_id !== backupId) throw bad(`it names backup ${JSON.stringify(obj.backup_id)}`);
  if (!Array.isArray(obj.parts)) throw bad('no parts array');
  const seen = new Set<string>();
  const parts: PartEntry[] = obj.parts.map((p: unknown, i: number) => {
    if (typeof p !== 'object' || p === null) throw bad(`part ${i} is not an object`);
    const { name, size, sha256 } = p as Record<string, unknown>;
    if (typeof name !== 'string' || !PART_NAME.test(name) || name === '.' || name === '..') throw bad(`part ${i} has an invalid name`);
    if (seen.has(name)) throw bad(`part ${name} is listed twice`);
    seen.add(name);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad(`part ${name} has an invalid size`);
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw bad(`part ${name} has an invalid sha256`);
    return { name, size, sha256 };
  });
  let encryption: PartsEncryption | undefined;
  if (obj.encryption !== undefined) {
    const e = obj.encryption as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || e.format !== 'age' || !Array.isArray(e.recipients)
      || !e.recipients.every((r) => typeof r === 'string' && /^[0-9a-f]{16}$/.test(r))) {
      throw bad('invalid encryption record');
    }
    encryption = { format: 'age', recipients: e.recipients as string[] };
  }
  let run: BackupRun | undefined;
  if (obj.run !== undefined) {
    const r = obj.run as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || typeof r.heartbeat_seconds !== 'number' || !Number.isSafeInteger(r.heartbeat_seconds)
      || r.heartbeat_seconds < 1 || r.heartbeat_seconds > MAX_HEARTBEAT_SECONDS
      || typeof r.backup_info !== 'string' || Buffer.byteLength(r.backup_info) > BACKUP_INFO_MAX_BYTES) {
      throw bad('invalid run record');
    }
    run = { heartbeatSeconds: r.heartbeat_seconds, backupInfo: r.backup_info };
  }
  return { version: PARTS_LIST_VERSION, backupId, parts, ...(encryption ? { encryption } : {}), ...(run ? { run } : {}) };
}

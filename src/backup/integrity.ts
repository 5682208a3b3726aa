// Checks a restore (and `verify`) makes against the two integrity records of a backup of ours:
// parts.json (each stored part's size and SHA-256) and the backup_manifest at the end of data.tar
// (each file's size and CRC-32C). Backups without them (barman's, ours from before) get the one
// check that needs no record: no part may be empty.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { GeneralError } from '../errors.js';
import type { PartEntry, PartsList } from '../catalog/parts-list.js';
import { BACKUP_MANIFEST_NAME, Crc32c, crc32cHex, type ParsedBackupManifest } from './manifest.js';

/**
 * Stored data that does not match what the backup recorded, or cannot be what it recorded (an empty
 * part). Exit 4, as barman's restore exits for an archive it cannot read (its "empty file").
 */
export class BackupIntegrityError extends GeneralError {}

export interface StoredPart {
  /** Name inside the backup directory, e.g. `data_0001.tar.lz4`. */
  name: string;
  /** Size in the store listing. */
  size: number;
}

/**
 * Compare the parts a restore is about to read (and every part object the listing shows) with
 * parts.json, before anything is downloaded: a part missing from the store, a part parts.json
 * does not know, a size that differs. Without parts.json only an empty part is refused.
 * Returns the entry of each part to check its hash against while it is read.
 */
export function checkStoredParts(
  planned: readonly StoredPart[],
  listed: ReadonlyMap<string, number>,
  list: PartsList | undefined,
): Map<string, PartEntry> {
  for (const p of planned) {
    if (p.size === 0) throw new BackupIntegrityError(`empty file: part ${p.name} has 0 bytes`);
  }
  const expected = new Map<string, PartEntry>();
  if (!list) return expected;
  for (const e of list.parts) expected.set(e.name, e);
  for (const e of list.parts) {
    const size = listed.get(e.name);
    if (size === undefined) throw new BackupIntegrityError(`part ${e.name} is missing from the store (parts.json lists it)`);
    if (size !== e.size) throw new BackupIntegrityError(`part ${e.name} has ${size} bytes in the store, parts.json says ${e.size}`);
  }
  const plannedNames = new Set(planned.map((p) => p.name));
  for (const p of planned) {
    if (!expected.has(p.name)) throw new BackupIntegrityError(`part ${p.name} is not listed in parts.json (an unknown part)`);
  }
  for (const e of list.parts) {
    if (!plannedNames.has(e.name)) throw new BackupIntegrityError(`part ${e.name} listed in parts.json belongs to no archive of the backup`);
  }
  return expected;
}

/**
 * A pass-through over a part's stored bytes that fails at the end of the stream when their count
 * or SHA-256 differs from parts.json (or when nothing arrived at all).
 */
export function partDigestCheck(name: string, expected: PartEntry | undefined): Transform {
  const hash = expected ? createHash('sha256') : undefined;
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      hash?.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (bytes === 0) return cb(new BackupIntegrityError(`empty file: part ${name} has 0 bytes`));
      if (!expected || !hash) return cb();
      if (bytes !== expected.size) return cb(new BackupIntegrityError(`part ${name} has ${bytes} bytes, parts.json says ${expected.size}`));
      const actual = hash.digest('hex');
      if (actual !== expected.sha256) return cb(new BackupIntegrityError(`part ${name} is altered: SHA-256 ${actual}, parts.json says ${expected.sha256}`));
      cb();
    },
  });
}

/** Size and CRC-32C of every regular file a restore wrote, by manifest path. */
export class FileDigests {
  readonly files = new Map<string, { size: number; crc: number }>();

  /** Start one file; call done() with its final byte count once its data is written. */
  begin(path: string): { crc: Crc32c; done: (size: number) => void } {
    const crc = new Crc32c();
    return { crc, done: (size) => this.files.set(path, { size, crc: crc.value }) };
  }

  /** A hard link at `path` to the file written at `target`. */
  link(path: string, target: string): void {
    const t = this.files.get(target);
    if (t) this.files.set(path, t);
  }
}

/** One disagreement between a backup_manifest and the files of the archives (data for the caller's words). */
export type ManifestFinding =
  | { kind: 'missing-file'; path: string }
  | { kind: 'file-size-mismatch'; path: string; size: number; expected: number }
  | { kind: 'file-checksum-mismatch'; path: string; checksum: string; expected: string }
  | { kind: 'unlisted-file'; path: string };

/**
 * The one comparison of a manifest with the files an archive holds (restore's written files,
 * verify's tar members): every listed file present with its size and, for CRC32C manifests, its
 * checksum; then every file the manifest does not list, unless `mayBeUnlisted` allows it. Files
 * without a CRC (`crc` undefined) are compared by size only.
 */
export function compareFiles(
  manifest: ParsedBackupManifest,
  files: ReadonlyMap<string, { size: number; crc?: number }>,
  mayBeUnlisted: (path: string) => boolean,
): ManifestFinding[] {
  const findings: ManifestFinding[] = [];
  for (const [path, entry] of manifest.files) {
    const got = files.get(path);
    if (!got) findings.push({ kind: 'missing-file', path });
    else if (got.size !== entry.size) findings.push({ kind: 'file-size-mismatch', path, size: got.size, expected: entry.size });
    else if (entry.algorithm === 'CRC32C' && got.crc !== undefined && crc32cHex(got.crc) !== entry.checksum) {
      findings.push({ kind: 'file-checksum-mismatch', path, checksum: crc32cHex(got.crc), expected: entry.checksum });
    }
  }
  for (const path of files.keys()) {
    if (!manifest.files.has(path) && !mayBeUnlisted(path)) findings.push({ kind: 'unlisted-file', path });
  }
  return findings;
}

/**
 * Every file the manifest lists was written with its size and checksum, and nothing else was
 * written. The first problem is named, with how many there are in all.
 */
export function compareWithManifest(manifest: ParsedBackupManifest, written: FileDigests): void {
  const problems = compareFiles(manifest, written.files, (path) => path === BACKUP_MANIFEST_NAME).map((f) => {
    switch (f.kind) {
      case 'missing-file': return `file ${f.path} is missing (backup_manifest lists it)`;
      case 'file-size-mismatch': return `file ${f.path} has ${f.size} bytes, backup_manifest says ${f.expected}`;
      case 'file-checksum-mismatch': return `file ${f.path} has CRC32C ${f.checksum}, backup_manifest says ${f.expected}`;
      case 'unlisted-file': return `file ${f.path} is not listed in backup_manifest`;
    }
  });
  if (problems.length === 0) return;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  throw new BackupIntegrityError(`${problems[0]}${more}`);
}

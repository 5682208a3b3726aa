// Checks a restore (and `verify`) makes against the two integrity records of a backup of ours:
// parts.json (each stored part's size and SHA-256) and the backup_manifest at the end of data.tar
// (each file's size and CRC-32C). Backups without them (barman's, ours from before) get the one
// check that needs no record: no part may be empty.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { GeneralError } from '../errors.js';
import type { PartEntry, PartsList } from '../catalog/parts-list.js';
import { BACKUP_MANIFEST_NAME, Crc32c, crc32cHex, type ManifestFileEntry } from './manifest.js';
import { BackupManifestError, BackupManifestReader } from './manifest-reader.js';

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

/** A regular file the archives hold: its size, its CRC-32C where known, and whether a manifest entry named it yet. */
export interface FileRecord {
  size: number;
  crc?: number;
  listed?: boolean;
}

/** Size and CRC-32C of every regular file a restore wrote, by manifest path. */
export class FileDigests {
  readonly files = new Map<string, FileRecord>();

  /** Start one file; call done() with its final byte count once its data is written. */
  begin(path: string): { crc: Crc32c; done: (size: number) => void } {
    const crc = new Crc32c();
    return { crc, done: (size) => this.files.set(path, { size, crc: crc.value }) };
  }

  /** A hard link at `path` to the file written at `target` (a record of its own: each path is listed once). */
  link(path: string, target: string): void {
    const t = this.files.get(target);
    if (t) this.files.set(path, { size: t.size, crc: t.crc });
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
 * verify's tar members), an entry at a time as the manifest is read: every listed file present with
 * its size and, for CRC32C manifests, its checksum; at finish(), every file no entry named, unless
 * `mayBeUnlisted` allows it. Files without a CRC are compared by size only. It marks the records it
 * matches (`listed`), so a map must not share one record between two paths. At most `keep`
 * findings are kept (a hostile manifest may name millions of files); `count` has them all.
 */
export class ManifestComparison {
  private readonly found: ManifestFinding[] = [];
  count = 0;

  constructor(
    private readonly files: ReadonlyMap<string, FileRecord>,
    private readonly mayBeUnlisted: (path: string) => boolean,
    private readonly keep = Infinity,
  ) {}

  entry(entry: ManifestFileEntry): void {
    const { path } = entry;
    const got = this.files.get(path);
    if (!got) return this.add({ kind: 'missing-file', path });
    // PostgreSQL refuses a manifest that names a path twice
    if (got.listed) throw new BackupManifestError(`invalid backup_manifest: duplicate path name ${JSON.stringify(path)}`);
    got.listed = true;
    if (got.size !== entry.size) this.add({ kind: 'file-size-mismatch', path, size: got.size, expected: entry.size });
    else if (entry.algorithm === 'CRC32C' && got.crc !== undefined && crc32cHex(got.crc) !== entry.checksum) {
      this.add({ kind: 'file-checksum-mismatch', path, checksum: crc32cHex(got.crc), expected: entry.checksum });
    }
  }

  finish(): ManifestFinding[] {
    for (const [path, f] of this.files) if (!f.listed && !this.mayBeUnlisted(path)) this.add({ kind: 'unlisted-file', path });
    return this.found;
  }

  private add(finding: ManifestFinding): void {
    this.count++;
    if (this.found.length < this.keep) this.found.push(finding);
  }
}

/**
 * Every file the manifest lists was written with its size and checksum, and nothing else was
 * written. The manifest is read from `manifest` as it comes, never held whole; the first problem
 * is named, with how many there are in all.
 */
export async function compareWithManifest(manifest: AsyncIterable<Buffer>, written: FileDigests): Promise<void> {
  const comparison = new ManifestComparison(written.files, (path) => path === BACKUP_MANIFEST_NAME, 1);
  const reader = new BackupManifestReader((entry) => comparison.entry(entry));
  for await (const chunk of manifest) reader.write(chunk);
  reader.end();
  const [first] = comparison.finish();
  if (!first) return;
  const problem = (() => {
    switch (first.kind) {
      case 'missing-file': return `file ${first.path} is missing (backup_manifest lists it)`;
      case 'file-size-mismatch': return `file ${first.path} has ${first.size} bytes, backup_manifest says ${first.expected}`;
      case 'file-checksum-mismatch': return `file ${first.path} has CRC32C ${first.checksum}, backup_manifest says ${first.expected}`;
      case 'unlisted-file': return `file ${first.path} is not listed in backup_manifest`;
    }
  })();
  const n = comparison.count;
  const more = n > 1 ? ` (and ${n - 1} more problem${n > 2 ? 's' : ''})` : '';
  throw new BackupIntegrityError(`${problem}${more}`);
}

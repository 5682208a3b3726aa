// Reading a backup_manifest as it streams in (docs/format.md#manifest-reading): restore reads it back
// from the restored data directory and verify from the data archive's last member, and neither
// holds it whole. A cluster with 100,000 files has a 15 MB manifest, which JSON.parse turned into
// ~250 MB of peak memory; and the bytes come from the store, which may hand us anything.
//
// Why not a streaming JSON library: they build every value they meet, so a manifest holding one
// endless array under a field nobody asked for would still be held. This reader knows the schema
// (the fields PostgreSQL's parse_manifest.c accepts, nothing else) and relies on one property of
// JSON: no token contains a raw newline, so a manifest is tokenized a line at a time. Its memory is
// one line (refused beyond MAX_LINE) and the field values of one entry; the entries go to a callback.
import { createHash } from 'node:crypto';
import { GeneralError } from '../errors.js';
import type { ManifestFileEntry, ParsedBackupManifest, WalRange } from './manifest.js';

/** A manifest that cannot be trusted (bad JSON, wrong checksum, malformed entry): exit 4. */
export class BackupManifestError extends GeneralError {}

/**
 * The longest line accepted. PostgreSQL and our builder write one entry per line; PostgreSQL's paths
 * are at most 1,024 bytes (MAXPGPATH) and the system's 4,096 (PATH_MAX), ~24 KiB once every byte is
 * escaped: 1 MiB is far beyond any real entry and still bounds memory.
 */
export const MAX_LINE = 1 << 20;

export interface ManifestSummary {
  version: number;
  walRanges: WalRange[];
  /** How many file entries were handed to the callback. */
  files: number;
}

type Scalar = string | number | boolean | null;
type Token = { kind: 'punct'; char: string } | { kind: 'value'; value: Scalar };

/** Where the structure stands: the manifest is one object of known fields, two of them arrays of flat objects. */
type Place =
  | 'start' | 'top-key' | 'top-colon' | 'top-value' | 'top-next' | 'end'
  | 'array-open' | 'array-item' | 'array-next'
  | 'entry-key' | 'entry-colon' | 'entry-value' | 'entry-next';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const TOP_FIELDS = new Set(['PostgreSQL-Backup-Manifest-Version', 'System-Identifier', 'Files', 'WAL-Ranges', 'Manifest-Checksum']);
const FILE_FIELDS = new Set(['Path', 'Encoded-Path', 'Size', 'Last-Modified', 'Checksum-Algorithm', 'Checksum']);
const RANGE_FIELDS = new Set(['Timeline', 'Start-LSN', 'End-LSN']);

const bad = (why: string) => new BackupManifestError(`invalid backup_manifest: ${why}`);

/**
 * Feed it the manifest's bytes with write(), then call end(): every file entry goes to `onFile` as
 * soon as its object closes, checked as parseBackupManifest always checked it; end() checks the
 * Manifest-Checksum (SHA-256 of everything up to and including the newline before the last line, as
 * pg_verifybackup does) and returns the rest. Any error is a BackupManifestError, thrown by the call
 * that meets it; a reader that threw must not be fed again.
 */
export class BackupManifestReader {
  private readonly hash = createHash('sha256');
  /** The last complete line, not hashed yet: the manifest's last line is the one the checksum leaves out. */
  private held: Buffer | undefined;
  private lines = 0;
  /** Bytes after the last newline, waiting for the rest of their line: the first partialLength bytes, copied. */
  private partial = Buffer.alloc(0);
  private partialLength = 0;

  private place: Place = 'start';
  private key = '';
  private array: 'Files' | 'WAL-Ranges' | undefined;
  private entry = new Map<string, Scalar>();
  private version: number | undefined;
  private checksum: string | undefined;
  private readonly seenTop = new Set<string>();
  private readonly walRanges: WalRange[] = [];
  private files = 0;

  constructor(private readonly onFile: (entry: ManifestFileEntry) => void) {}

  write(chunk: Buffer): void {
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
      let line = chunk.subarray(from, nl + 1);
      if (this.partialLength > 0) {
        line = Buffer.concat([this.partial.subarray(0, this.partialLength), line]);
        this.partialLength = 0;
      }
      this.line(line);
      from = nl + 1;
    }
    const rest = chunk.length - from;
    if (rest > 0) {
      if (this.partialLength + rest > MAX_LINE) throw bad(`a line longer than ${MAX_LINE} bytes`);
      // copied (the caller may reuse its buffer once write() returns) into room that doubles, so
      // that a line fed a byte at a time costs linear time
      if (this.partialLength + rest > this.partial.length) {
        const room = Buffer.allocUnsafe(Math.min(MAX_LINE, Math.max(4096, 2 * this.partial.length, this.partialLength + rest)));
        this.partial.copy(room, 0, 0, this.partialLength);
        this.partial = room;
      }
      chunk.copy(this.partial, this.partialLength, from);
      this.partialLength += rest;
    }
    if (this.held && this.held.buffer === chunk.buffer) this.held = Buffer.from(this.held);
  }

  end(): ManifestSummary {
    if (this.partialLength > 0 || this.lines === 0) throw bad('last line not newline-terminated');
    if (this.lines < 2) throw bad('expected at least 2 lines');
    if (this.place !== 'end') throw bad('it ends before its closing brace');
    if (this.version === undefined) throw bad('no version');
    if (!this.seenTop.has('Files')) throw bad('no Files array');
    if (this.checksum === undefined || !/^[0-9a-fA-F]{64}$/.test(this.checksum)) throw bad('no manifest checksum');
    const actual = this.hash.digest('hex');
    if (actual !== this.checksum.toLowerCase()) throw bad(`manifest checksum mismatch: actual ${actual}, expected ${this.checksum}`);
    return { version: this.version, walRanges: this.walRanges, files: this.files };
  }

  private line(line: Buffer): void {
    if (line.length > MAX_LINE) throw bad(`a line longer than ${MAX_LINE} bytes`);
    if (this.held) this.hash.update(this.held);
    this.held = line;
    this.lines++;
    for (const token of tokens(line)) this.token(token);
  }

  private token(t: Token): void {
    const punct = t.kind === 'punct' ? t.char : undefined;
    switch (this.place) {
      case 'start':
        if (punct !== '{') throw bad('not an object');
        this.place = 'top-key';
        return;
      case 'top-key':
      case 'entry-key': {
        const inEntry = this.place === 'entry-key';
        if (punct === '}' && (inEntry ? this.entry.size === 0 : this.seenTop.size === 0)) return this.close(inEntry);
        if (t.kind !== 'value' || typeof t.value !== 'string') throw bad('expected a field name');
        this.key = t.value;
        this.place = inEntry ? 'entry-colon' : 'top-colon';
        return;
      }
      case 'top-colon':
      case 'entry-colon':
        if (punct !== ':') throw bad(`expected ':' after "${this.key}"`);
        this.place = this.place === 'top-colon' ? 'top-value' : 'entry-value';
        return;
      case 'top-value':
        return this.topValue(t);
      case 'entry-value':
        if (t.kind !== 'value') throw bad(`${this.entryName()} field "${this.key}" is not a string or number`);
        if (this.entry.has(this.key)) throw bad(`${this.entryName()} names "${this.key}" twice`);
        this.entry.set(this.key, t.value);
        this.place = 'entry-next';
        return;
      case 'top-next':
      case 'entry-next':
        if (punct === ',') this.place = this.place === 'top-next' ? 'top-key' : 'entry-key';
        else if (punct === '}') this.close(this.place === 'entry-next');
        else throw bad(`expected ',' or '}' after "${this.key}"`);
        return;
      case 'array-open':
      case 'array-next':
        if (punct === ']') {
          this.array = undefined;
          this.place = 'top-next';
        } else if (this.place === 'array-next') {
          if (punct !== ',') throw bad(`expected ',' or ']' in ${this.array}`);
          this.place = 'array-item';
        } else this.openEntry(punct);
        return;
      case 'array-item':
        return this.openEntry(punct);
      case 'end':
        throw bad('more after the closing brace');
    }
  }

  private topValue(t: Token): void {
    const key = this.key;
    if (!TOP_FIELDS.has(key)) throw bad(`unexpected top-level field "${key}"`);
    if (this.seenTop.has(key)) throw bad(`"${key}" appears twice`);
    if (this.seenTop.size === 0 && key !== 'PostgreSQL-Backup-Manifest-Version') throw bad('expected the version first');
    this.seenTop.add(key);
    if (key === 'Files' || key === 'WAL-Ranges') {
      if (t.kind !== 'punct' || t.char !== '[') throw bad(`${key} is not an array`);
      this.array = key;
      this.place = 'array-open';
      return;
    }
    if (t.kind !== 'value') throw bad(`"${key}" is not a string or number`);
    if (key === 'PostgreSQL-Backup-Manifest-Version') {
      if (t.value !== 1 && t.value !== 2) throw bad(`unsupported version ${JSON.stringify(t.value)}`);
      this.version = t.value;
    } else if (key === 'Manifest-Checksum') {
      if (typeof t.value !== 'string') throw bad('no manifest checksum');
      this.checksum = t.value;
    }
    this.place = 'top-next';
  }

  private openEntry(punct: string | undefined): void {
    if (punct !== '{') throw bad(`${this.array} holds something other than objects`);
    this.place = 'entry-key';
  }

  private close(inEntry: boolean): void {
    if (!inEntry) {
      this.place = 'end';
      return;
    }
    const e = this.entry;
    this.entry = new Map();
    this.place = 'array-next';
    if (this.array === 'Files') {
      this.onFile(fileEntry(e, this.files));
      this.files++;
    } else this.walRanges.push(walRange(e, this.walRanges.length));
  }

  private entryName(): string {
    return this.array === 'Files' ? `file ${this.files}` : `WAL range ${this.walRanges.length}`;
  }
}

function fileEntry(e: Map<string, Scalar>, i: number): ManifestFileEntry {
  for (const k of e.keys()) if (!FILE_FIELDS.has(k)) throw bad(`file ${i} has an unexpected field "${k}"`);
  const text = e.get('Path');
  const encoded = e.get('Encoded-Path');
  let path: string;
  if (typeof text === 'string' && encoded === undefined) path = text;
  else if (typeof encoded === 'string' && text === undefined && HEX.test(encoded)) {
    // a name that is not valid UTF-8 reaches us through tar headers decoded the same lossy way
    path = Buffer.from(encoded, 'hex').toString('utf8');
  } else throw bad(`file ${i} has no path`);
  const size = e.get('Size');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad(`file ${path} has an invalid size`);
  const algorithm = e.get('Checksum-Algorithm') ?? 'NONE';
  if (typeof algorithm !== 'string') throw bad(`file ${path} has an invalid checksum algorithm`);
  const checksum = e.get('Checksum') ?? '';
  if (typeof checksum !== 'string' || !HEX.test(checksum) || (algorithm !== 'NONE' && checksum === '')) {
    throw bad(`file ${path} has an invalid checksum`);
  }
  const lastModified = e.get('Last-Modified');
  return {
    path, size, algorithm: algorithm.toUpperCase(), checksum: checksum.toLowerCase(),
    lastModified: typeof lastModified === 'string' ? lastModified : undefined,
  };
}

function walRange(e: Map<string, Scalar>, i: number): WalRange {
  for (const k of e.keys()) if (!RANGE_FIELDS.has(k)) throw bad(`WAL range ${i} has an unexpected field "${k}"`);
  const timeline = e.get('Timeline');
  const start = e.get('Start-LSN');
  const end = e.get('End-LSN');
  if (typeof timeline !== 'number' || !Number.isInteger(timeline) || timeline < 1) throw bad(`WAL range ${i} has an invalid timeline`);
  if (typeof start !== 'string' || !LSN.test(start)) throw bad(`WAL range ${i} has an invalid Start-LSN`);
  if (typeof end !== 'string' || !LSN.test(end)) throw bad(`WAL range ${i} has an invalid End-LSN`);
  return { timeline, startLsn: start, endLsn: end };
}

/**
 * The JSON tokens of one line. A string or number token is cut out and handed to JSON.parse, which
 * decodes escapes and refuses what JSON refuses; the line's own bytes never outlive the call.
 */
function* tokens(line: Buffer): Generator<Token> {
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      i++;
    } else if (c === 0x7b || c === 0x7d || c === 0x5b || c === 0x5d || c === 0x3a || c === 0x2c) {
      yield { kind: 'punct', char: String.fromCharCode(c) };
      i++;
    } else if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      for (; j < line.length; j++) {
        const d = line[j]!;
        if (d === 0x5c) {
          escaped = true;
          j++;
        } else if (d === 0x22) break;
        else if (d < 0x20) throw bad('a control character inside a string');
      }
      if (j >= line.length) throw bad('a string not closed on its line');
      yield { kind: 'value', value: escaped ? parseToken(line, i, j + 1) as string : line.toString('utf8', i + 1, j) };
      i = j + 1;
    } else {
      let j = i;
      while (j < line.length && isWordByte(line[j]!)) j++;
      if (j === i) throw bad('not JSON');
      yield { kind: 'value', value: parseToken(line, i, j) as Scalar };
      i = j;
    }
  }
}

/** Bytes that may form a number or a literal (true, false, null). */
const isWordByte = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x45;

function parseToken(line: Buffer, from: number, to: number): unknown {
  try {
    return JSON.parse(line.toString('utf8', from, to));
  } catch {
    throw bad('not JSON');
  }
}

/**
 * The whole manifest at once, its files by path (a path listed twice is refused, as PostgreSQL
 * refuses it), for tests. Restore and verify stream it instead (integrity.ts, verify/manifest-check.ts).
 */
export function parseBackupManifest(input: string | Buffer): ParsedBackupManifest {
  const files = new Map<string, ManifestFileEntry>();
  const reader = new BackupManifestReader((f) => {
    if (files.has(f.path)) throw bad(`duplicate path name ${JSON.stringify(f.path)}`);
    files.set(f.path, f);
  });
  reader.write(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  const { version, walRanges } = reader.end();
  return { version, files, walRanges };
}

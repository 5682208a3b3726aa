// Restore side of base-backup archives (docs/format.md#restore): stream a tar (optionally compressed) into a
// directory with the semantics of Python's TarFile.extractall as barman-cloud-restore uses it:
//   * directories are created 0700 while extracting; their owner, mtime and mode are applied at
//     the end, deepest first (reverse name order), so that extracting their content cannot disturb
//     them;
//   * files are written, then chown (only when running as root, by user/group *name* first, then by
//     id), chmod, utime (atime = mtime = the member's mtime, sub-second from the PAX record);
//   * symlinks are created as they are (lchown as root; no chmod/utime), hard links with link(2);
//   * failures of chown/chmod/utime are ignored (tarfile errorlevel 1 treats them as non-fatal).
// Unlike a trusting extractall, an archive is untrusted input and nothing is written outside the
// destination or through a link: members whose path is absolute or contains '..', whose parent
// resolves (through a symlink extracted earlier) outside the destination, and hard links to anything
// but a regular file this extractor wrote are refused; parent directories are created one level at a
// time after checking the level above; files are opened O_EXCL|O_NOFOLLOW and their attributes set
// through the open descriptor; device nodes and FIFOs are skipped with a warning and setuid, setgid
// and sticky bits are dropped (PGDATA never needs any of them).
// One member may be held in memory instead of written (holdBack: restore's control file, put in
// place last by placeHeldFile; docs/format.md#restore-control-file).
// Memory stays bounded: each entry is written chunk by chunk with back-pressure. File content and
// metadata go through synchronous calls, as tar(1) and Python's tarfile do: a write into the page
// cache or a chmod takes microseconds, a thread-pool round trip per call made extraction idle-bound
// (200–400 MB/s from a local tar, where tarfile does 940; 300–575 MB/s with synchronous calls).
import { link, lstat, mkdir, realpath, symlink } from 'node:fs/promises';
import {
  closeSync, constants as fsConstants, fchmodSync, fchownSync, futimesSync, lchownSync, lstatSync, mkdirSync, openSync,
  realpathSync, statSync, unlinkSync,
} from 'node:fs';
import { join, sep } from 'node:path';
import { placeFile } from './restore-paths.js';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream, { type Header } from 'tar-stream';
import { TarEndTap } from './tar-end.js';
import { loadCodec, type Codec, type CodecName } from '../compression/index.js';
import { GeneralError } from '../errors.js';
import { CoalescingFileWriter } from '../file-writer.js';
import { log } from '../log.js';
import { groupId, userId } from './tar-header.js';
import type { FileDigests } from './integrity.js';
import { manifestPath } from './manifest.js';
import { CONTROL_FILE_MAX_BYTES, outsideVersionDirectory } from './archive-identity.js';

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = fsConstants;

/** Permission bits applied to anything extracted: setuid, setgid and sticky are never restored. */
const MODE_MASK = 0o777;

/** A member that would land outside the destination directory. */
export class UnsafeArchiveMemberError extends GeneralError {}

/** A hard link whose target is not a regular file this extraction wrote (also verify's words: src/verify/archive-tree.ts). */
export const notExtractedFile = (name: string, linkname: string) =>
  new UnsafeArchiveMemberError(`Refusing to extract hard link '${name}': its target '${linkname}' is not a regular file extracted from this archive`);

/** Any other failure to extract a member. */
class ExtractError extends GeneralError {}

/** Member types restore skips, leaving whatever is at the name (also what verify skips: src/verify/). */
export const SKIPPED_TYPES: ReadonlySet<string> = new Set(['fifo', 'character-device', 'block-device']);

/** Which archive a refusal names: restore's words, and verify's (src/verify/verify.ts). */
export const ofTablespace = (t: { name: string; oid: number }) => `from the archive of tablespace ${t.name} (${t.oid})`;

/** A held-back member larger than this is refused (archive-identity.ts says why). */
const HELD_MAX_BYTES = CONTROL_FILE_MAX_BYTES;

export interface ExtractOptions {
  /** Compression of the stream (registry name or loaded codec); none when absent. */
  codec?: CodecName | Codec | null;
  /** Apply ownership; default: only when running as root (euid 0), like tarfile. */
  preserveOwner?: boolean;
  signal?: AbortSignal;
  /** Record the size and CRC-32C of every file written, under its manifest path in `archive`. */
  digests?: { record: FileDigests; archive: string };
  /**
   * A regular-file member (its path in the archive) held in memory instead of written: the result's
   * `held`, for placeHeldFile() once the caller's checks have passed (docs/format.md#restore-control-file).
   */
  holdBack?: string;
  /**
   * The archive is this tablespace's: a member outside its version directories is refused before
   * anything is written for it (docs/format.md#restore-tablespace-members).
   */
  tablespace?: { name: string; oid: number };
}

interface MemberMeta {
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
}

/** A member extracted to memory (ExtractOptions.holdBack), with what placeHeldFile() needs to write it as extraction would have. */
export interface HeldFile {
  /** Where it goes: `name` in the checked real directory `dir`. */
  dir: string;
  name: string;
  content: Buffer;
  meta: MemberMeta;
  /** The attributes recorded for `dir`, applied again after the file is added to it. */
  dirMeta?: MemberMeta;
  owner: boolean;
}

export interface ExtractStats {
  members: number;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  /** Bytes of file content written. */
  bytes: number;
  /** Device nodes and FIFOs not recreated. */
  skipped: number;
  /** The member named by ExtractOptions.holdBack, when the archive had it as a regular file. */
  held?: HeldFile;
}

interface DeferredDir extends MemberMeta {
  member: string;
  path: string;
}

type EntryHeader = Header & { pax?: Record<string, string> | null };

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * tar-stream decodes names and link targets as UTF-8, so bytes that are not UTF-8 (barman stores such
 * names raw, with hdrcharset=BINARY) arrive as U+FFFD: extracting them would write a file under
 * another name, or a link to another target. Refused, with the name as read (docs/compatibility.md).
 */
export function refuseUndecodable(name: string, what: 'name' | 'link target', text = name): void {
  if (text.includes('\uFFFD')) {
    throw new UnsafeArchiveMemberError(`Refusing to extract '${name}': its ${what} is not valid UTF-8 (or holds U+FFFD)`);
  }
}

/**
 * Split a member name into safe components: '' and '.' are dropped; an absolute name or a '..'
 * component is refused (also by verify, which reports what restore refuses: src/verify/verify.ts).
 */
export function memberPathComponents(name: string): string[] {
  if (name.startsWith('/')) {
    throw new UnsafeArchiveMemberError(`Refusing to extract '${name}': absolute member path`);
  }
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new UnsafeArchiveMemberError(`Refusing to extract '${name}': member path leaves the destination directory`);
  }
  if (parts.some((p) => p.includes('\0'))) {
    throw new UnsafeArchiveMemberError(`Refusing to extract '${name}': NUL in member path`);
  }
  refuseUndecodable(name, 'name');
  return parts;
}

function lstatOrUndefined(path: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** tarfile's order: the user/group *name* first, then the numeric id. */
const ownerUid = (h: { uid: number; uname: string }): number => (h.uname ? userId(h.uname) : undefined) ?? h.uid;
const ownerGid = (h: { gid: number; gname: string }): number => (h.gname ? groupId(h.gname) : undefined) ?? h.gid;

function paxNumber(pax: Record<string, string> | null | undefined, key: string): number | undefined {
  const v = pax?.[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Owner (as root), mtime and mode through an open descriptor, never through a path that may be a link. */
function applyAttributes(fd: number, path: string, meta: MemberMeta, owner: boolean): void {
  if (owner) {
    try {
      fchownSync(fd, ownerUid(meta), ownerGid(meta));
    } catch (err) {
      log.debug(`could not change owner of ${path}: ${String(err)}`);
    }
  }
  try {
    futimesSync(fd, meta.mtime, meta.mtime);
  } catch (err) {
    log.debug(`could not change modification time of ${path}: ${String(err)}`);
  }
  try {
    // after chown, which clears setuid/setgid anyway; MODE_MASK keeps them off as root too
    fchmodSync(fd, meta.mode & MODE_MASK);
  } catch (err) {
    log.debug(`could not change mode of ${path}: ${String(err)}`);
  }
}

/** Apply attributes to an existing directory or regular file without following a link. */
function applyAttributesAt(path: string, flags: number, meta: MemberMeta, owner: boolean): void {
  let fd: number;
  try {
    fd = openSync(path, flags | O_NOFOLLOW);
  } catch (err) {
    log.debug(`could not open ${path} to set its attributes: ${String(err)}`);
    return;
  }
  try {
    applyAttributes(fd, path, meta, owner);
  } finally {
    closeSync(fd);
  }
}

/**
 * Extracts one or more archives into the same directory. Directory attributes are applied by
 * finish(), after the last archive, so that the parts of a split archive (data.tar, data_0001.tar,
 * …) leave every directory with its recorded mtime and mode.
 */
class TarExtractor {
  /** Reused write buffers, one per file being written (archives may be extracted concurrently). */
  private readonly writeBuffers: Buffer[] = [];

  readonly destDir: string;
  private readonly options: ExtractOptions;
  private realDest: string | undefined;
  /** Parent directory as named in the archive → its checked real path inside the destination. */
  private readonly verified = new Map<string, string>();
  /** Real paths of the regular files this extractor wrote: the only valid hard-link targets. */
  private readonly extractedFiles = new Set<string>();
  private readonly deferred: DeferredDir[] = [];
  private readonly owner: boolean;
  /** The held-back member (ExtractOptions.holdBack) read so far. */
  private held: HeldFile | undefined;
  readonly stats: ExtractStats = { members: 0, files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0, skipped: 0 };

  constructor(destDir: string, options: ExtractOptions = {}) {
    this.destDir = destDir;
    this.options = options;
    this.owner = options.preserveOwner ?? (typeof process.geteuid === 'function' && process.geteuid() === 0);
  }

  private async dest(): Promise<string> {
    if (this.realDest === undefined) {
      await mkdir(this.destDir, { recursive: true });
      this.realDest = await realpath(this.destDir);
    }
    return this.realDest;
  }

  /**
   * The real directory that member `parts` goes into, checked one level at a time from the
   * destination down, so that a missing level is created only below a level already known to lie
   * inside the destination (mkdir -p through a symlink would create it first and check after).
   * With `create` false a missing level is an error (hard-link targets).
   */
  private async resolveParent(name: string, parts: string[], create = true): Promise<string> {
    const root = await this.dest();
    const named = join(root, ...parts.slice(0, -1));
    const cached = this.verified.get(named);
    if (cached !== undefined) return cached;
    let real = root;
    for (const component of parts.slice(0, -1)) {
      const next = join(real, component);
      let st = lstatOrUndefined(next);
      if (st === undefined && create) {
        try {
          mkdirSync(next);
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw err;
        }
        st = lstatOrUndefined(next);
      }
      if (st === undefined) throw new ExtractError(`Cannot extract '${name}': '${next}' does not exist`);
      if (st.isDirectory()) {
        real = next;
        continue;
      }
      if (!st.isSymbolicLink()) throw new ExtractError(`Cannot extract '${name}': '${next}' is not a directory`);
      let target: string;
      try {
        target = realpathSync(next);
      } catch {
        throw new UnsafeArchiveMemberError(`Refusing to extract '${name}': its directory is a symbolic link that does not resolve`);
      }
      const tablespace = this.options.tablespace;
      if (target !== root && !target.startsWith(root + sep)) {
        throw new UnsafeArchiveMemberError(`Refusing to extract '${name}': its directory resolves outside the destination`);
      }
      // a link member may not lead a tablespace's member out of its version directories either
      if (tablespace && outsideVersionDirectory(target.slice(root.length + 1).split(sep).filter(Boolean), 'directory')) {
        throw new UnsafeArchiveMemberError(`Refusing to extract '${name}' ${ofTablespace(tablespace)}: its directory resolves outside the version directories`);
      }
      if (!statSync(target).isDirectory()) throw new ExtractError(`Cannot extract '${name}': '${next}' is not a directory`);
      real = target;
    }
    this.verified.set(named, real);
    return real;
  }

  /** A new link may redirect any cached parent: check them again. */
  private forget(): void {
    this.verified.clear();
  }

  /** Remove a non-directory in the way (tarfile overwrites; we never write through a symlink). */
  private clearTarget(name: string, target: string): void {
    try {
      const st = lstatSync(target);
      if (st.isDirectory()) {
        throw new ExtractError(`Cannot extract '${name}': a directory is in the way`);
      }
      unlinkSync(target);
      this.extractedFiles.delete(target);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    // a later member at the held name replaces it, as it would replace the file on disk
    if (this.held && join(this.held.dir, this.held.name) === target) this.held = undefined;
  }

  private applyLinkOwner(path: string, h: { uid: number; gid: number; uname: string; gname: string }): void {
    if (!this.owner) return;
    try {
      lchownSync(path, ownerUid(h), ownerGid(h));
    } catch (err) {
      log.debug(`could not change owner of ${path}: ${String(err)}`);
    }
  }

  private async entry(header: EntryHeader, stream: Readable): Promise<void> {
    const name = header.name;
    const parts = memberPathComponents(name);
    const tablespace = this.options.tablespace;
    const outside = tablespace && outsideVersionDirectory(parts, header.type ?? 'file');
    if (outside) throw new UnsafeArchiveMemberError(`Refusing to extract '${name}' ${ofTablespace(tablespace)}: ${outside}`);
    const root = await this.dest();
    const pax = header.pax ?? undefined;
    const meta = {
      mode: header.mode & MODE_MASK,
      mtime: paxNumber(pax, 'mtime') ?? header.mtime.getTime() / 1000,
      uid: paxNumber(pax, 'uid') ?? header.uid,
      gid: paxNumber(pax, 'gid') ?? header.gid,
      uname: pax?.uname ?? header.uname ?? '',
      gname: pax?.gname ?? header.gname ?? '',
    };
    this.stats.members++;

    if (header.type === 'directory') {
      stream.resume();
      let target = root;
      if (parts.length > 0) {
        target = join(await this.resolveParent(name, parts), parts[parts.length - 1]!);
        try {
          await mkdir(target, { mode: 0o700 });
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw err;
          const st = await lstat(target);
          if (!st.isDirectory()) throw new ExtractError(`Cannot extract directory '${name}': '${target}' exists and is not a directory`);
        }
      }
      this.deferred.push({ member: parts.join('/'), path: target, ...meta });
      this.stats.directories++;
      return;
    }

    if (parts.length === 0) throw new ExtractError(`Cannot extract '${name}' as a ${header.type}: it names the destination`);

    if (SKIPPED_TYPES.has(header.type ?? 'file')) {
      stream.resume();
      log.warning(`Skipping '${name}': ${header.type === 'fifo' ? 'FIFOs' : 'device nodes'} are not restored (a data directory never needs them)`);
      this.stats.skipped++;
      return;
    }

    const target = join(await this.resolveParent(name, parts), parts[parts.length - 1]!);

    if (header.type === 'symlink') {
      stream.resume();
      refuseUndecodable(name, 'link target', header.linkname ?? '');
      this.clearTarget(name, target);
      await symlink(header.linkname ?? '', target);
      this.forget();
      this.applyLinkOwner(target, meta);
      this.stats.symlinks++;
      return;
    }

    if (header.type === 'link') {
      stream.resume();
      const linkname = header.linkname ?? '';
      const linkParts = memberPathComponents(linkname);
      if (linkParts.length === 0) throw new ExtractError(`Cannot extract hard link '${name}': empty link target`);
      // Only a regular file written by this extraction: never an outside file, a link, or a node.
      let source: string | undefined;
      try {
        source = join(await this.resolveParent(linkname, linkParts, false), linkParts[linkParts.length - 1]!);
      } catch (err) {
        if (!(err instanceof ExtractError || err instanceof UnsafeArchiveMemberError)) throw err;
      }
      if (source === undefined || !this.extractedFiles.has(source) || !lstatOrUndefined(source)?.isFile()) {
        throw notExtractedFile(name, linkname);
      }
      this.clearTarget(name, target);
      await link(source, target);
      this.extractedFiles.add(target);
      this.options.digests?.record.link(
        manifestPath(this.options.digests.archive, parts.join('/')),
        manifestPath(this.options.digests.archive, linkParts.join('/')),
      );
      applyAttributesAt(target, O_RDONLY, meta, this.owner);
      this.stats.hardlinks++;
      return;
    }

    // regular file (and, as tarfile does, any unknown type)
    this.clearTarget(name, target);
    if (this.options.holdBack === parts.join('/')) {
      await this.holdMember(name, parts, target, stream, meta);
      return;
    }
    const fd = openSync(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    // Coalesced into 1 MiB writes through a reused buffer (src/file-writer.ts says why).
    const writer = new CoalescingFileWriter(fd, this.writeBuffers.pop());
    const digests = this.options.digests;
    const digest = digests?.record.begin(manifestPath(digests.archive, parts.join('/')));
    let size = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        digest?.crc.update(chunk);
        writer.write(chunk);
        size += chunk.length;
      }
      writer.flush();
      this.stats.bytes += size;
      digest?.done(size);
      this.extractedFiles.add(target);
      applyAttributes(fd, target, meta, this.owner);
    } finally {
      closeSync(fd);
      this.writeBuffers.push(writer.buffer);
    }
    this.stats.files++;
  }

  /** Read the held-back member into memory, recorded in the digests as if written (docs/format.md#restore-control-file). */
  private async holdMember(name: string, parts: string[], target: string, stream: Readable, meta: MemberMeta): Promise<void> {
    const digests = this.options.digests;
    const digest = digests?.record.begin(manifestPath(digests.archive, parts.join('/')));
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      // not ours to name: the caller names the part (restore.ts damagedPart)
      if (size > HELD_MAX_BYTES) throw new Error(`member '${name}' is over ${HELD_MAX_BYTES} bytes: not a PostgreSQL control file`);
      digest?.crc.update(chunk);
      chunks.push(chunk);
    }
    digest?.done(size);
    const slash = target.lastIndexOf(sep);
    this.held = { dir: target.slice(0, slash), name: target.slice(slash + 1), content: Buffer.concat(chunks), meta, owner: this.owner };
    this.stats.bytes += size;
    this.stats.files++;
  }

  /** Extract one archive stream. Directory attributes wait for finish(). */
  async extract(source: Readable, options: { codec?: CodecName | Codec | null } = {}): Promise<ExtractStats> {
    await this.dest();
    const c = options.codec === undefined ? this.options.codec : options.codec;
    const codec = c == null ? undefined : typeof c === 'string' ? await loadCodec(c) : c;
    const ex = tarStream.extract();
    // the first member error is the one to report (the pipeline then only sees a premature close)
    let entryError: Error | undefined;
    const tail = new TarEndTap();
    ex.on('entry', (header, stream, next) => {
      const refused = tail.refuseLate(header, stream, next, entryError);
      if (refused) {
        entryError = refused;
        return;
      }
      this.entry(header as EntryHeader, stream as unknown as Readable).then(
        () => next(),
        (err: unknown) => {
          entryError ??= err instanceof Error ? err : new Error(String(err));
          next(entryError);
        },
      );
    });
    const streams: (NodeJS.ReadableStream | NodeJS.ReadWriteStream | NodeJS.WritableStream)[] = [source];
    if (codec) streams.push(codec.decompressStream());
    streams.push(tail, ex as unknown as NodeJS.WritableStream);
    const signal = this.options.signal;
    try {
      await (pipeline as (...args: unknown[]) => Promise<void>)(...streams, signal ? { signal } : {});
    } catch (err) {
      throw entryError ?? err;
    }
    if (entryError) throw entryError;
    // not ours to name: the caller names the part, as for the tar parser's own refusals (restore.ts damagedPart)
    const unended = tail.unended();
    if (unended !== undefined) throw new Error(unended);
    return { ...this.stats };
  }

  /** Apply owner, mtime and mode to the extracted directories, deepest first. */
  async finish(): Promise<ExtractStats> {
    const dirs = this.deferred.splice(0).sort((a, b) => (a.member < b.member ? 1 : a.member > b.member ? -1 : 0));
    for (const d of dirs) applyAttributesAt(d.path, O_RDONLY | O_DIRECTORY, d, this.owner);
    if (this.held) this.held.dirMeta = dirs.find((d) => d.path === this.held!.dir);
    return { ...this.stats, held: this.held };
  }
}

/** Extract one archive into destDir (tarfile.extractall): content, then directory attributes. */
export async function extractArchive(stream: Readable, destDir: string, options: ExtractOptions = {}): Promise<ExtractStats> {
  const extractor = new TarExtractor(destDir, options);
  await extractor.extract(stream);
  return extractor.finish();
}

/**
 * Extract the parts of one archive (data.tar, data_0001.tar, …) in order into destDir; each part is
 * opened only when the previous one is done. Directory attributes are applied after the last part.
 */
export async function extractArchiveParts(
  parts: Iterable<() => Promise<Readable>> | AsyncIterable<() => Promise<Readable>>,
  destDir: string,
  options: ExtractOptions = {},
): Promise<ExtractStats> {
  const extractor = new TarExtractor(destDir, options);
  for await (const openPart of parts) {
    await extractor.extract(await openPart());
  }
  return extractor.finish();
}

/**
 * Put a held-back member in place as extraction would have (same bytes, owner, mode and mtime),
 * atomically (src/atomic-file.ts: a temp file in its directory, fsync, rename), then give the
 * directory back its recorded attributes, which the new name changed (docs/format.md#restore-control-file).
 */
export async function placeHeldFile(held: HeldFile): Promise<void> {
  const target = join(held.dir, held.name);
  await placeFile(held.dir, held.name, held.content, (fd) => applyAttributes(fd, target, held.meta, held.owner));
  if (held.dirMeta) applyAttributesAt(held.dir, O_RDONLY | O_DIRECTORY, held.dirMeta, held.owner);
}

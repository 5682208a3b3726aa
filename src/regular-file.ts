// The one way to read a file at a name someone else may have planted (docs/format.md#untrusted-input):
// a data directory restore extracted, the directory store's tag files, the spool. Loaded by the WAL
// commands (spool, file store): node:fs only.
import { constants as fsConstants, fstatSync, promises as fs, type Stats } from 'node:fs';

// O_NOFOLLOW: a symbolic link is refused by the kernel, not by a check that could race. O_NONBLOCK:
// opening a FIFO planted there must not wait for a writer; on a regular file it changes nothing.
const OPEN_REGULAR = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
const READ_CHUNK = 64 * 1024;

/** openRegularFile's answers when nothing is at the name (ENOENT), and when it is not a regular file. */
export const NOT_THERE = 'does not exist';
export const NOT_REGULAR = 'is not a regular file';

/**
 * `path` opened for reading if it is a regular file (fstat once open), never through a symbolic
 * link; `refuse` may add the caller's reason from the open descriptor and its stats. Otherwise why
 * not, in words that follow the path: NOT_THERE, 'is a symbolic link', NOT_REGULAR or
 * the caller's. Other errors are thrown (the descriptor closed).
 */
export async function openRegularFile(
  path: string,
  refuse?: (stats: Stats, fd: number) => string | null | Promise<string | null>,
): Promise<{ fh: fs.FileHandle; stats: Stats } | string> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, OPEN_REGULAR);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return NOT_THERE;
    if (code === 'ELOOP') return 'is a symbolic link';
    throw e;
  }
  let why: string | null;
  try {
    const stats = fstatSync(fh.fd);
    why = stats.isFile() ? ((await refuse?.(stats, fh.fd)) ?? null) : NOT_REGULAR;
    if (why === null) return { fh, stats };
  } catch (e) {
    await fh.close();
    throw e;
  }
  await fh.close();
  return why;
}

/**
 * The content and stats of the regular file `path` (openRegularFile), at most `maxBytes + 1` bytes
 * of it: more than `maxBytes` says the file is larger. Undefined when it is missing, not a regular
 * file (a symbolic link included) or refused by `refuse`.
 */
export async function readRegularFile(
  path: string,
  maxBytes = Infinity,
  refuse?: (stats: Stats, fd: number) => string | null | Promise<string | null>,
): Promise<{ content: Buffer; stats: Stats } | undefined> {
  const f = await openRegularFile(path, refuse);
  if (typeof f === 'string') return undefined;
  try {
    const limit = maxBytes + 1;
    const chunks: Buffer[] = [];
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, limit));
    let total = 0;
    for (let n; total < limit && (n = (await f.fh.read(buf, 0, Math.min(buf.length, limit - total), null)).bytesRead) > 0; total += n) {
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return { content: Buffer.concat(chunks, total), stats: f.stats };
  } finally {
    await f.fh.close();
  }
}

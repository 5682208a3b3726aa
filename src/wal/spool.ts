// The local spool shared by parallel archiving and restore prefetching. One directory per
// (store URL, server name), so entries of two archives never mix:
//   archive/<wal>          marker: {"size","ino","mtimeNs"} of a WAL file whose upload was confirmed
//   archive/<wal>.lock     claim of a WAL file being uploaded by some process (O_EXCL)
//   restore/<wal>          a complete prefetched WAL file (written as .tmp then renamed)
//   restore/segment-size   the WAL segment size learned from a downloaded segment
//   source                 the store URL and server name, one per line (read by the shell front)
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { tempBeside } from './temp-files.js';

export function defaultSpoolRoot(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `barman-cloud-spool-${uid}`);
}

/** The spool directory of one archive: `<root>/<16 hex of sha256(url, server)>`. */
export function spoolDirFor(root: string, storeUrl: string, serverName: string): string {
  const id = createHash('sha256').update(`${storeUrl}\0${serverName}`).digest('hex').slice(0, 16);
  return join(root, id);
}

/**
 * Record which (store URL, server name) a spool directory belongs to, in its `source` file (two
 * lines): the shell front of the WAL commands (src/cli/fast-path.ts) finds the directory by this
 * file instead of hashing. Written once, atomically.
 */
export async function recordSpoolSource(dir: string, storeUrl: string, serverName: string): Promise<void> {
  const content = `${storeUrl}\n${serverName}\n`;
  const path = join(dir, 'source');
  if ((await fs.readFile(path, 'utf8').catch(() => null)) === content) return;
  await ensureDir(dir);
  await writeAtomic(path, content);
}

async function ensureDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}

/** Write a file atomically: temp in the same directory, fsync, rename. */
export async function writeAtomic(path: string, data: Buffer | string): Promise<void> {
  await ensureDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Move a complete file into place atomically, also across filesystems (the spool may live in
 * /tmp and the destination in PGDATA): copy to a temp file beside the target, fsync, rename.
 */
export async function moveInto(source: string, target: string): Promise<void> {
  try {
    await fs.rename(source, target);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
  }
  const tmp = tempBeside(target); // beside wal_dest: removed by later runs if we are killed
  try {
    await fs.copyFile(source, tmp);
    const fh = await fs.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fs.rm(source, { force: true });
}

export interface ArchiveMarker {
  size: number;
  /**
   * The file's identity when it was read for the upload (inode, mtime in ns): an unchanged file is
   * recognised without reading it again; any write changes the mtime.
   */
  ino: string;
  mtimeNs: string;
}

export class ArchiveSpool {
  readonly dir: string;
  constructor(spoolDir: string) {
    this.dir = join(spoolDir, 'archive');
  }

  async readMarker(walName: string): Promise<ArchiveMarker | null> {
    try {
      return JSON.parse(await fs.readFile(join(this.dir, walName), 'utf8')) as ArchiveMarker;
    } catch {
      return null;
    }
  }

  /** Written only after the upload of `walName` was confirmed by the store. */
  async writeMarker(walName: string, marker: ArchiveMarker): Promise<void> {
    await writeAtomic(join(this.dir, walName), JSON.stringify(marker));
  }

  async removeMarker(walName: string): Promise<void> {
    await fs.rm(join(this.dir, walName), { force: true });
  }

  /**
   * Claim a WAL file for upload. A claim older than `staleMs` (a crashed archiver) is taken over.
   * Returns a release function, or null when another live process holds it.
   */
  async claim(walName: string, staleMs = 10 * 60_000): Promise<(() => Promise<void>) | null> {
    await ensureDir(this.dir);
    const lock = join(this.dir, `${walName}.lock`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await fs.open(lock, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        return () => fs.rm(lock, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const st = await fs.stat(lock).catch(() => null);
        const holder = Number(await fs.readFile(lock, 'utf8').catch(() => ''));
        const alive = holder > 0 && processAlive(holder);
        if (st && alive && Date.now() - st.mtimeMs < staleMs) return null;
        await fs.rm(lock, { force: true });
      }
    }
    return null;
  }

  /** Remove markers older than `maxAgeMs` (their WAL files were long since asked for, or never will be). */
  async prune(maxAgeMs: number): Promise<void> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const now = Date.now();
    await Promise.all(
      names.map(async (n) => {
        const st = await fs.stat(join(this.dir, n)).catch(() => null);
        if (st && now - st.mtimeMs > maxAgeMs) await fs.rm(join(this.dir, n), { force: true });
      }),
    );
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RestoreSpool {
  readonly dir: string;
  constructor(spoolDir: string) {
    this.dir = join(spoolDir, 'restore');
  }

  path(walName: string): string {
    return join(this.dir, walName);
  }

  /** A prefetched file younger than `maxAgeMs`, or null. */
  async lookup(walName: string, maxAgeMs: number): Promise<string | null> {
    const p = this.path(walName);
    const st = await fs.stat(p).catch(() => null);
    if (!st || !st.isFile()) return null;
    if (Date.now() - st.mtimeMs > maxAgeMs) {
      await fs.rm(p, { force: true });
      return null;
    }
    return p;
  }

  async has(walName: string): Promise<boolean> {
    return (await fs.stat(this.path(walName)).catch(() => null)) !== null;
  }

  async ensure(): Promise<void> {
    await ensureDir(this.dir);
  }

  async entries(): Promise<string[]> {
    return (await fs.readdir(this.dir).catch(() => [] as string[])).filter((n) => !n.includes('.tmp-'));
  }

  async remove(walName: string): Promise<void> {
    await fs.rm(this.path(walName), { force: true });
  }

  async segmentSize(): Promise<number | undefined> {
    const v = Number(await fs.readFile(join(this.dir, 'segment-size'), 'utf8').catch(() => ''));
    return v > 0 ? v : undefined;
  }

  async setSegmentSize(size: number): Promise<void> {
    await writeAtomic(join(this.dir, 'segment-size'), String(size));
  }

  /** Delete temp files left by a crash and entries older than `maxAgeMs`. */
  async prune(maxAgeMs: number): Promise<void> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const now = Date.now();
    await Promise.all(
      names.map(async (n) => {
        if (n === 'segment-size') return;
        const st = await fs.stat(join(this.dir, n)).catch(() => null);
        if (st && now - st.mtimeMs > maxAgeMs) await fs.rm(join(this.dir, n), { force: true });
      }),
    );
  }
}

// The directory store never follows a symbolic link planted below its root out of it: whoever can
// write in the store must not make our tools delete, write or read files elsewhere with our rights.
// Each case plants a link to a directory outside the store and runs the real executables.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { NotFoundError, StorageError } from '../../src/errors.ts';

const ID = '20260101T000000';
const SEGMENT = '000000010000000000000001';
const SEGMENT_SIZE = 16 << 20;

let work: string;
let root: string;
let outside: string;

/** A 16 MiB segment: its first page header for segment 1 on timeline 1, then zeros. */
function segment(): Buffer {
  const b = Buffer.alloc(SEGMENT_SIZE);
  b.writeUInt16LE(0xd110, 0);
  b.writeUInt16LE(0x0002, 2);
  b.writeUInt32LE(1, 4);
  b.writeBigUInt64LE(BigInt(SEGMENT_SIZE), 8);
  b.writeBigUInt64LE(7_000_000_000_000_000_000n, 24);
  b.writeUInt32LE(SEGMENT_SIZE, 32);
  b.writeUInt32LE(8192, 36);
  return b;
}

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-filelinks-'));
  root = join(work, 'store');
  outside = join(work, 'outside');
  mkdirSync(outside);
  mkdirSync(join(root, 'srv', 'base'), { recursive: true });
  mkdirSync(join(root, 'srv', 'wals'), { recursive: true });
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

const LINK_LINE = /symbolic link in \S+ leads out of it/;

/** wal-archive of a segment fails naming the link that leads out, and writes nothing outside. */
async function expectArchiveRefused(): Promise<void> {
  const src = join(work, 'pg_wal');
  mkdirSync(src);
  writeFileSync(join(src, SEGMENT), segment());
  const r = await runBin('barman-cloud-wal-archive', [`file://${root}`, 'srv', join(src, SEGMENT)], { env: cleanEnv() });
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).toMatch(LINK_LINE);
  expect(readdirSync(outside)).toEqual([]);
}

describe('symbolic links below the directory store root', () => {
  it('backup-delete does not delete through a linked backup directory', async () => {
    const info = newBackupInfo(ID, { status: 'DONE', timeline: 1, begin_wal: SEGMENT, end_wal: SEGMENT });
    writeFileSync(join(outside, 'backup.info'), serializeBackupInfo(info));
    writeFileSync(join(outside, 'data.tar'), 'not ours to delete');
    symlinkSync(outside, join(root, 'srv', 'base', ID));
    const r = await runBin('barman-cloud-backup-delete', [`file://${root}`, 'srv', '-b', ID], { env: cleanEnv() });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(LINK_LINE);
    expect(readdirSync(outside).sort()).toEqual(['backup.info', 'data.tar']);
  });

  it('wal-archive does not write through a linked WAL directory', async () => {
    symlinkSync(outside, join(root, 'srv', 'wals', '0000000100000000'));
    await expectArchiveRefused();
  });

  it('wal-restore does not read through a linked WAL directory', async () => {
    writeFileSync(join(outside, SEGMENT), segment());
    symlinkSync(outside, join(root, 'srv', 'wals', '0000000100000000'));
    const dest = join(work, 'dest');
    mkdirSync(dest);
    const r = await runBin('barman-cloud-wal-restore', [`file://${root}`, 'srv', SEGMENT, join(dest, 'RECOVERYXLOG')], { env: cleanEnv() });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(LINK_LINE);
    expect(readdirSync(dest)).toEqual([]);
  });

  it('a linked object file is no object: wal-restore does not find it, backup-list does not read it', async () => {
    mkdirSync(join(root, 'srv', 'wals', '0000000100000000'));
    writeFileSync(join(outside, SEGMENT), segment());
    symlinkSync(join(outside, SEGMENT), join(root, 'srv', 'wals', '0000000100000000', SEGMENT));
    const dest = join(work, 'dest');
    mkdirSync(dest);
    const r = await runBin('barman-cloud-wal-restore', [`file://${root}`, 'srv', SEGMENT, join(dest, 'RECOVERYXLOG')], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(1);
    expect(readdirSync(dest)).toEqual([]);

    mkdirSync(join(root, 'srv', 'base', ID));
    writeFileSync(join(outside, 'backup.info'), serializeBackupInfo(newBackupInfo(ID, { status: 'DONE', backup_name: 'planted' })));
    symlinkSync(join(outside, 'backup.info'), join(root, 'srv', 'base', ID, 'backup.info'));
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', `file://${root}`, 'srv'], { env: cleanEnv() });
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual({ backups_list: [] });
    // the files outside are untouched
    expect(readFileSync(join(outside, SEGMENT)).equals(segment())).toBe(true);
    expect(existsSync(join(outside, 'backup.info'))).toBe(true);
  });
});

describe('the directory store: links and swaps (docs/format.md#file-store-links)', () => {
  const HASH = SEGMENT.slice(0, 16);
  const KEY = `srv/wals/${HASH}/${SEGMENT}`;
  const open = () => openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });

  it('creates no directory outside the store through a linked level before refusing', async () => {
    rmSync(join(root, 'srv', 'wals'), { recursive: true });
    symlinkSync(outside, join(root, 'srv', 'wals'));
    await expectArchiveRefused();
  });

  it('a tag file that is a link is no tag file, and an oversized one is refused', async () => {
    const store = await open();
    await store.put(KEY, Buffer.from('wal'), { tags: [['k', 'v']] });
    expect(await store.getTags(KEY)).toEqual([['k', 'v']]);
    const tagFile = join(root, 'srv', 'wals', HASH, `.bc-tags-${SEGMENT}.json`);
    expect(existsSync(tagFile)).toBe(true);
    writeFileSync(join(outside, 'secret.json'), JSON.stringify([['not', 'ours']]));
    rmSync(tagFile);
    symlinkSync(join(outside, 'secret.json'), tagFile);
    expect(await store.getTags(KEY)).toEqual([]);
    rmSync(tagFile);
    writeFileSync(tagFile, `[${'["k","v"],'.repeat(8000)}["k","v"]]`);
    await expect(store.getTags(KEY)).rejects.toThrow(/larger than 65536 bytes/);
    // writing and deleting replace or remove the link itself, never what it points to
    rmSync(tagFile);
    symlinkSync(join(outside, 'secret.json'), tagFile);
    await store.put(KEY, Buffer.from('wal'), { tags: [['k', 'w']] });
    await store.delete(KEY);
    expect(readFileSync(join(outside, 'secret.json'), 'utf8')).toBe(JSON.stringify([['not', 'ours']]));
  });

  it('a tag file that is a FIFO or a directory is no tag file (and reading it does not wait for a writer)', async () => {
    const store = await open();
    await store.put(KEY, Buffer.from('wal'), { tags: [['k', 'v']] });
    const tagFile = join(root, 'srv', 'wals', HASH, `.bc-tags-${SEGMENT}.json`);
    rmSync(tagFile);
    execFileSync('mkfifo', [tagFile]);
    expect(await store.getTags(KEY)).toEqual([]);
    rmSync(tagFile);
    mkdirSync(tagFile);
    expect(await store.getTags(KEY)).toEqual([]);
  });

  it('a directory swapped for a link after it was found inside is not read through', async () => {
    const store = await open();
    await store.put(KEY, Buffer.from('ours'));
    // the first read finds the directory inside the root and remembers it for the process
    expect((await store.getBuffer(KEY)).toString()).toBe('ours');
    renameSync(join(root, 'srv', 'wals', HASH), join(work, 'moved'));
    writeFileSync(join(outside, SEGMENT), 'not ours');
    symlinkSync(outside, join(root, 'srv', 'wals', HASH));
    await expect(store.getBuffer(KEY)).rejects.toThrow(LINK_LINE);
    await expect(store.get(KEY)).rejects.toBeInstanceOf(StorageError);
  });

  it('a FIFO under an object name is no object: wal-restore does not hang on it', async () => {
    mkdirSync(join(root, 'srv', 'wals', HASH));
    execFileSync('mkfifo', [join(root, 'srv', 'wals', HASH, SEGMENT)]);
    const store = await open();
    await expect(store.getBuffer(KEY)).rejects.toBeInstanceOf(NotFoundError);
    const dest = join(work, 'dest');
    mkdirSync(dest);
    const r = await runBin('barman-cloud-wal-restore', [`file://${root}`, 'srv', SEGMENT, join(dest, 'RECOVERYXLOG')], { env: cleanEnv(), timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(readdirSync(dest)).toEqual([]);
  });

  /**
   * Resolves once the swapper has switched `link` to `target` at least once: started under load, a
   * swapper not yet running would let the whole loop pass without a race (ci35: 0 refusals).
   */
  async function swapping(link: string, target: string): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        if (readlinkSync(link) === target) return;
      } catch {
        // between the rename's two names: look again
      }
      if (Date.now() > deadline) throw new Error(`the swapper never switched ${link} to ${target}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /**
   * The hash directory made a link, switched atomically (rename over it) between `srv/real` inside
   * the root and `outside`, as fast as a second process can; resolves once it has switched at least
   * once. The caller kills the swapper.
   */
  async function startSwapper(): Promise<{ inside: string; swapper: ChildProcess }> {
    const inside = join(root, 'srv', 'real');
    mkdirSync(inside);
    const link = join(root, 'srv', 'wals', HASH);
    symlinkSync('../real', link);
    const swapper = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      const [link, a, b] = process.argv.slice(1);
      for (let i = 0; ; i++) {
        try { fs.symlinkSync(i % 2 ? a : b, link + '.next'); fs.renameSync(link + '.next', link); } catch {}
      }`, link, '../real', outside], { stdio: 'ignore' });
    try {
      await swapping(link, outside);
    } catch (e) {
      swapper.kill('SIGKILL');
      throw e;
    }
    return { inside, swapper };
  }

  /** 1 when `op` is refused with a StorageError, 0 when it succeeds; any other error fails the test. */
  const refusedBy = (op: Promise<unknown>) => op.then(() => 0, (e: unknown) => {
    if (!(e instanceof StorageError)) throw e;
    return 1;
  });

  it('a write racing a directory link switched between inside and outside never lands outside', async () => {
    const { swapper } = await startSwapper();
    try {
      const store = await open();
      let refused = 0;
      for (let i = 0; i < 400; i++) refused += await refusedBy(store.put(KEY, Buffer.from(`write ${i}`)));
      expect(refused).toBeGreaterThan(0);
    } finally {
      swapper.kill('SIGKILL');
    }
    expect(readdirSync(outside)).toEqual([]);
  }, 60_000);

  it.each(['delete', 'deleteMany'] as const)('a %s racing a directory link switched between inside and outside never removes a file outside', async (method) => {
    writeFileSync(join(outside, SEGMENT), 'not ours to delete');
    const { inside, swapper } = await startSwapper();
    try {
      const store = await open();
      let refused = 0;
      for (let i = 0; i < 400; i++) {
        writeFileSync(join(inside, SEGMENT), 'ours');
        refused += method === 'delete' ? await refusedBy(store.delete(KEY)) : (await store.deleteMany([KEY])).errors.length;
      }
      expect(refused).toBeGreaterThan(0);
    } finally {
      swapper.kill('SIGKILL');
    }
    expect(readdirSync(outside)).toEqual([SEGMENT]);
  }, 60_000);
});

// src/regular-file.ts, the one read of a file at a name someone else may have planted: only a
// regular file, never through a symbolic link, never waiting on a FIFO, at most maxBytes + 1 bytes.
// Its callers' own cases: restore-backup-info.test.ts (backup_label), file-store-links.test.ts (tag
// files), spool-trust.test.ts (the spool); restore's recovery files below.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOT_THERE, openRegularFile, readRegularFile } from '../../src/regular-file.ts';
import { replaceFile } from '../../src/backup/restore-paths.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bc-regular-'));
  writeFileSync(join(dir, 'file'), 'content');
  symlinkSync(join(dir, 'file'), join(dir, 'link'));
  mkdirSync(join(dir, 'dir'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openRegularFile and readRegularFile', () => {
  it('read a regular file whole, with its stats', async () => {
    const f = await readRegularFile(join(dir, 'file'));
    expect(f?.content.toString()).toBe('content');
    expect(f?.stats.size).toBe(7);
  });

  it('say why nothing was opened: missing, a symbolic link (not followed), a directory, a FIFO (without waiting for a writer)', async () => {
    expect(await openRegularFile(join(dir, 'missing'))).toBe(NOT_THERE);
    expect(await openRegularFile(join(dir, 'link'))).toBe('is a symbolic link');
    expect(await openRegularFile(join(dir, 'dir'))).toBe('is not a regular file');
    expect(await openRegularFile(join(dir, 'fifo'))).toBe('is not a regular file');
    for (const name of ['missing', 'link', 'dir', 'fifo']) expect(await readRegularFile(join(dir, name))).toBeUndefined();
  });

  it('read at most maxBytes + 1 bytes: one more than the limit says the file is larger', async () => {
    const big = join(dir, 'big');
    writeFileSync(big, Buffer.alloc(200_000, 'x'));
    expect((await readRegularFile(big, 100_000))?.content.length).toBe(100_001);
    expect((await readRegularFile(big, 200_000))?.content.length).toBe(200_000);
    expect((await readRegularFile(big))?.content.length).toBe(200_000);
  });

  it("add the caller's reason, and pass on its errors", async () => {
    const path = join(dir, 'file');
    expect(await openRegularFile(path, (st) => (st.size > 3 ? 'is too long' : null))).toBe('is too long');
    expect(await readRegularFile(path, Infinity, () => 'refused')).toBeUndefined();
    await expect(readRegularFile(path, Infinity, () => Promise.reject(new Error('outside')))).rejects.toThrow('outside');
  });
});

describe("restore's recovery files (replaceFile in src/backup/restore-paths.ts)", () => {
  it('a FIFO at the name gives neither content nor mode to the new file', async () => {
    const d = mkdtempSync(join(dir, 'restored-'));
    execFileSync('mkfifo', ['-m', '0666', join(d, 'postgresql.auto.conf')]);
    await replaceFile(d, 'postgresql.auto.conf', "restore_command = 'x'\n", true);
    const st = lstatSync(join(d, 'postgresql.auto.conf'));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(readFileSync(join(d, 'postgresql.auto.conf'), 'utf8')).toBe("restore_command = 'x'\n");
  });
});

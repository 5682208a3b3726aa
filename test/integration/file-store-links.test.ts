// The directory store never follows a symbolic link planted below its root out of it: whoever can
// write in the store must not make our tools delete, write or read files elsewhere with our rights.
// Each case plants a link to a directory outside the store and runs the real executables.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';

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
    const src = join(work, 'pg_wal');
    mkdirSync(src);
    writeFileSync(join(src, SEGMENT), segment());
    const r = await runBin('barman-cloud-wal-archive', [`file://${root}`, 'srv', join(src, SEGMENT)], { env: cleanEnv() });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(LINK_LINE);
    expect(readdirSync(outside)).toEqual([]);
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

// Killed runs leave temp files in the local directory store; a later write into the same directory
// removes those of our own making once they are stale, and nothing else.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { STALE_TEMP_MS } from '../../src/storage/file/file.ts';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-tmpsweep-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Plants the cases in `dir`; returns the names that must be gone after a write and those that must stay. */
function plant(dir: string): { gone: string[]; kept: string[]; outside: string } {
  mkdirSync(dir, { recursive: true });
  const old = new Date(Date.now() - STALE_TEMP_MS - 60_000);
  const file = (name: string, mtime?: Date) => {
    writeFileSync(join(dir, name), 'left by a killed run');
    if (mtime) utimesSync(join(dir, name), mtime, mtime);
  };
  file('.bc-tmp-0123456789ab', old); // ours, stale
  file('.bc-tags-000000010000000000000001.json.deadbeef', old); // ours (tags temp), stale
  file('.bc-tmp-aaaaaaaaaaaa'); // ours, fresh: a write in progress
  file('.bc-tmp-notours', old); // not our pattern
  file('.bc-tmp-0123456789ab.keep', old); // not our pattern
  file('bc-tmp-0123456789ab', old); // not ours (no dot), and a listed object
  const outside = join(work, `outside-${Math.random().toString(16).slice(2)}`);
  writeFileSync(outside, 'not yours');
  utimesSync(outside, old, old);
  symlinkSync(outside, join(dir, '.bc-tmp-bbbbbbbbbbbb')); // our name, but a link: never followed nor removed
  mkdirSync(join(dir, '.bc-tmp-cccccccccccc')); // our name, but a directory
  utimesSync(join(dir, '.bc-tmp-cccccccccccc'), old, old);
  return {
    gone: ['.bc-tmp-0123456789ab', '.bc-tags-000000010000000000000001.json.deadbeef'],
    kept: ['.bc-tmp-aaaaaaaaaaaa', '.bc-tmp-notours', '.bc-tmp-0123456789ab.keep', 'bc-tmp-0123456789ab', '.bc-tmp-bbbbbbbbbbbb', '.bc-tmp-cccccccccccc'],
    outside,
  };
}

describe('file store: stale temp files of killed runs', () => {
  it('a put removes our stale temp files in the directory it writes to, and only those', async () => {
    const root = join(work, 'store');
    mkdirSync(root);
    const dir = join(root, 'srv', 'wals', '0000000100000000');
    const other = join(root, 'srv', 'base');
    const here = plant(dir);
    const there = plant(other);
    const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    await store.put('srv/wals/0000000100000000/000000010000000000000001', Buffer.from('segment'), { ifNoneMatch: true });
    await store.close();
    const names = readdirSync(dir);
    for (const n of here.gone) expect(names, n).not.toContain(n);
    for (const n of here.kept) expect(names, n).toContain(n);
    expect(lstatSync(join(dir, '.bc-tmp-bbbbbbbbbbbb')).isSymbolicLink()).toBe(true);
    expect(readFileSync(here.outside, 'utf8')).toBe('not yours');
    expect(names).toContain('000000010000000000000001');
    // Another directory is not touched by a write elsewhere.
    for (const n of [...there.gone, ...there.kept]) expect(readdirSync(other), n).toContain(n);
  });

  it('wal-archive into the file store cleans the WAL directory it archives into', async () => {
    const root = join(work, 'cli-store');
    mkdirSync(root);
    const dir = join(root, 'srv', 'wals', '0000000100000000');
    const planted = plant(dir);
    const pgwal = join(work, 'pgwal');
    mkdirSync(pgwal);
    writeFileSync(join(pgwal, '000000010000000000000002'), Buffer.alloc(64 * 1024, 7));
    const r = await runBin('barman-cloud-wal-archive', [`file://${root}`, 'srv', join(pgwal, '000000010000000000000002')], { env: cleanEnv() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    for (const n of planted.gone) expect(existsSync(join(dir, n)), n).toBe(false);
    for (const n of planted.kept) expect(readdirSync(dir), n).toContain(n);
  });
});

// The directory store is used only when no other user can change it (docs/format.md#file-store-owners):
// whoever may write a level of the store could rename our directories away and put theirs, with a
// forged WAL segment, in their place, and wal-restore would hand it to PostgreSQL with exit 0.
// Each case builds the store with the real executables, then changes owners and modes as another
// user could have set them. Needs root (chown); the non-root cases run as PostgreSQL's user.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanEnv, runBin, runProcess, type BinResult } from '../helpers/run-bin.ts';
import { ROOT } from '../helpers/servers.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const NOBODY = 65534;
const SEGMENT = '000000010000000000000001';
const NEXT = '000000010000000000000002';
const TL_DIR = 'srv/wals/0000000100000000';

function postgresUid(): number | null {
  try {
    return Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  } catch {
    return null;
  }
}
const PG_UID = IS_ROOT ? postgresUid() : null;

let work: string; // 0755, root's: holds the store, the WAL files and the restore targets
let store: string;

/** A 1 MiB segment filled with `fill` behind its long page header (wal-restore checks it). */
const walBytes = (name: string, fill: number): Buffer => withLongPageHeader(Buffer.alloc(1 << 20, fill), name);

/** That segment as a file in pg_wal. */
function walFile(name: string, fill: number): string {
  const p = join(work, 'pg_wal', name);
  writeFileSync(p, walBytes(name, fill));
  return p;
}

const restore = (name: string, dest: string, as?: 'postgres'): Promise<BinResult> =>
  as === 'postgres'
    ? runProcess('runuser', ['-u', 'postgres', '--', process.execPath, join(ROOT, 'bin', 'barman-cloud-wal-restore'), `file://${store}`, 'srv', name, dest], { env: cleanEnv() })
    : runBin('barman-cloud-wal-restore', [`file://${store}`, 'srv', name, dest], { env: cleanEnv() });

/** What another user who may write the store's root can do: swap `srv` for a copy of their own holding a forged NEXT. */
function forgeAsOwnerOfRoot(owner: number): void {
  renameSync(join(store, 'srv'), join(store, 'old'));
  mkdirSync(join(store, TL_DIR), { recursive: true });
  writeFileSync(join(store, TL_DIR, SEGMENT), readFileSync(join(store, 'old', 'wals', '0000000100000000', SEGMENT)));
  writeFileSync(join(store, TL_DIR, NEXT), walBytes(NEXT, 0x41));
  execFileSync('chown', ['-R', `${owner}:${owner}`, join(store, 'srv')]);
}

function expectRefused(r: BinResult, dest: string, why: RegExp): void {
  expect(r.code, r.stderr).toBe(4);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/another user could change the store: /);
  expect(lines[0]).toMatch(why);
  expect(existsSync(dest)).toBe(false);
}

beforeEach(async () => {
  work = mkdtempSync(join(tmpdir(), 'bc-owners-'));
  chmodSync(work, 0o755);
  mkdirSync(join(work, 'pg_wal'));
  store = join(work, 'store');
  mkdirSync(store, { mode: 0o755 });
  const r = await runBin('barman-cloud-wal-archive', [`file://${store}`, 'srv', walFile(SEGMENT, 0x11)], { env: cleanEnv() });
  expect(r.code, r.stderr).toBe(0);
});

afterEach(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!IS_ROOT)('the directory store refuses a store another user could change', () => {
  it('restores from a store only we can write (the control: each case below changes one thing)', async () => {
    const dest = join(work, 'got');
    const r = await restore(SEGMENT, dest);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(walBytes(SEGMENT, 0x11))).toBe(true);
  });

  it('a root writable by others: a segment swapped in by another user is refused, not restored', async () => {
    chownSync(store, NOBODY, NOBODY);
    chmodSync(store, 0o777);
    forgeAsOwnerOfRoot(NOBODY);
    const dest = join(work, 'got');
    expectRefused(await restore(NEXT, dest), dest, /store is writable by group or others \(mode 0777\)/);
  });

  it('a level inside the store writable by others is refused, for wal-restore and for the catalog', async () => {
    chmodSync(join(store, TL_DIR), 0o777);
    const dest = join(work, 'got');
    expectRefused(await restore(SEGMENT, dest), dest, /0000000100000000 is writable by group or others \(mode 0777\)/);
    chmodSync(join(store, TL_DIR), 0o755);
    mkdirSync(join(store, 'srv', 'base'), { mode: 0o775 });
    chmodSync(join(store, 'srv', 'base'), 0o775);
    const list = await runBin('barman-cloud-backup-list', [`file://${store}`, 'srv'], { env: cleanEnv() });
    expect(list.code, list.stderr).toBe(4);
    expect(list.stderr).toMatch(/base is writable by group or others \(mode 0775\)/);
  });

  it('a root whose parent others can write without the sticky bit is refused; with it, used', async () => {
    chmodSync(work, 0o777);
    const dest = join(work, 'got');
    expectRefused(await restore(SEGMENT, dest), dest, /its parent .* is writable by group or others without the sticky bit \(mode 0777\)/);
    chmodSync(work, 0o1777);
    const r = await restore(SEGMENT, dest);
    expect(r.code, r.stderr).toBe(0);
  });

  it('wal-archive writes nothing into a store others can write', async () => {
    chmodSync(store, 0o777);
    const r = await runBin('barman-cloud-wal-archive', [`file://${store}`, 'srv', walFile(NEXT, 0x22)], { env: cleanEnv() });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/another user could change the store: .*store is writable by group or others/);
    expect(existsSync(join(store, TL_DIR, NEXT))).toBe(false);
  });

  it('directories made under a umask of 002 are still writable by nobody else, and used', async () => {
    const r = await runProcess('sh', ['-c', 'umask 002 && exec "$@"', 'sh', process.execPath, join(ROOT, 'bin', 'barman-cloud-wal-archive'),
      `file://${store}`, 'srv2', walFile(NEXT, 0x22)], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    const dest = join(work, 'got');
    const back = await runBin('barman-cloud-wal-restore', [`file://${store}`, 'srv2', NEXT, dest], { env: cleanEnv() });
    expect(back.code, back.stderr).toBe(0);
    expect(readFileSync(dest).equals(walBytes(NEXT, 0x22))).toBe(true);
  });

  describe.skipIf(PG_UID === null)('run as PostgreSQL\'s user', () => {
    it('a store whose parent another user owns is refused (that user could rename the store away); root\'s parent, used', async () => {
      execFileSync('chown', ['-R', `${PG_UID}:${PG_UID}`, store]);
      const out = mkdtempSync(join(tmpdir(), 'bc-owners-out-')); // the restore targets, written as postgres
      chownSync(out, PG_UID!, PG_UID!);
      try {
        let r = await restore(SEGMENT, join(out, 'got-root-parent'), 'postgres');
        expect(r.code, r.stderr).toBe(0);
        chownSync(work, NOBODY, NOBODY); // still 0755: only its owner may rename the store
        const dest = join(out, 'got');
        r = await restore(SEGMENT, dest, 'postgres');
        expectRefused(r, dest, new RegExp(`its parent .* is owned by uid ${NOBODY}, not by us \\(${PG_UID}\\) or root`));
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    it('a store owned by another user (mode 0755) is refused; owned by us or by root, used', async () => {
      chownSync(work, PG_UID!, PG_UID!); // the restore targets are written as postgres
      const dest = join(work, 'got');
      // root's store: used
      let r = await restore(SEGMENT, dest + '-root', 'postgres');
      expect(r.code, r.stderr).toBe(0);
      // postgres's own store: used
      execFileSync('chown', ['-R', `${PG_UID}:${PG_UID}`, store]);
      r = await restore(SEGMENT, dest + '-own', 'postgres');
      expect(r.code, r.stderr).toBe(0);
      // nobody's store: the owner could swap anything in
      execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, store]);
      forgeAsOwnerOfRoot(NOBODY);
      r = await restore(NEXT, dest, 'postgres');
      expectRefused(r, dest, new RegExp(`store is owned by uid ${NOBODY}, not by us \\(${PG_UID}\\) or root`));
    });
  });
});

// The trust rule of the spool as pure verdicts over stat results (src/wal/spool.ts): what makes a
// level or entry unusable, and what makes the directory holding the root unsafe.
import { describe, expect, it } from 'vitest';
import { distrust, distrustParent } from '../../src/wal/spool.ts';

const ME = 1000;
const stat = (kind: 'dir' | 'file' | 'link', uid: number, mode: number) => ({
  uid,
  mode,
  isDirectory: () => kind === 'dir',
  isFile: () => kind === 'file',
  isSymbolicLink: () => kind === 'link',
});

describe('distrust (every level and entry of the spool)', () => {
  const cases: [string, ReturnType<typeof stat>, 'directory' | 'file', RegExp | null][] = [
    ['our private directory', stat('dir', ME, 0o40700), 'directory', null],
    ['our directory readable by others', stat('dir', ME, 0o40755), 'directory', null],
    ['our private file', stat('file', ME, 0o100600), 'file', null],
    ['a symlink', stat('link', ME, 0o120777), 'directory', /symbolic link/],
    ['a symlink where a file is expected', stat('link', ME, 0o120777), 'file', /symbolic link/],
    ['a file where a directory is expected', stat('file', ME, 0o100600), 'directory', /not a directory/],
    ['a directory where a file is expected', stat('dir', ME, 0o40700), 'file', /not a regular file/],
    ['another user\'s directory', stat('dir', 65534, 0o40700), 'directory', /owned by uid 65534/],
    ['root\'s directory (we are not root)', stat('dir', 0, 0o40700), 'directory', /owned by uid 0/],
    ['another user\'s file', stat('file', 65534, 0o100600), 'file', /owned by uid 65534/],
    ['a world-writable directory', stat('dir', ME, 0o40777), 'directory', /mode 0777/],
    ['a group-writable directory', stat('dir', ME, 0o40770), 'directory', /mode 0770/],
    ['a sticky world-writable directory', stat('dir', ME, 0o41777), 'directory', /mode 1777/],
    ['a group-writable file', stat('file', ME, 0o100660), 'file', /mode 0660/],
    ['a world-writable file', stat('file', ME, 0o100602), 'file', /mode 0602/],
  ];
  for (const [name, st, kind, want] of cases) {
    it(`${name}: ${want ? 'refused' : 'trusted'}`, () => {
      const got = distrust(st, kind, ME);
      if (want) expect(got).toMatch(want);
      else expect(got).toBeNull();
    });
  }
});

describe('distrustParent (the directory holding the spool root)', () => {
  const cases: [string, ReturnType<typeof stat>, RegExp | null][] = [
    ['pg_wal: ours, private', stat('dir', ME, 0o40700), null],
    ['/tmp: root, world-writable, sticky', stat('dir', 0, 0o41777), null],
    ['/var/lib: root, 0755', stat('dir', 0, 0o40755), null],
    ['another user\'s directory', stat('dir', 65534, 0o40755), /owned by uid 65534/],
    ['world-writable without the sticky bit', stat('dir', 0, 0o40777), /sticky/],
    ['group-writable without the sticky bit', stat('dir', ME, 0o40775), /sticky/],
    ['not a directory', stat('file', ME, 0o100600), /not a directory/],
  ];
  for (const [name, st, want] of cases) {
    it(`${name}: ${want ? 'refused' : 'trusted'}`, () => {
      const got = distrustParent(st, ME);
      if (want) expect(got).toMatch(want);
      else expect(got).toBeNull();
    });
  }
});

// A member name or link target that is not valid UTF-8 (barman's Python tarfile stores such names as
// raw bytes) must not be restored under another name: tar-stream decodes it with U+FFFD in place of
// the bytes, so restore refuses it (exit 4, one line) instead of writing `stray-\uFFFDA` with exit 0.
import { mkdirSync, readdirSync, rmSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf, type TarMember } from '../helpers/tar.ts';

const BACKUP_ID = '20261129T050418';
const work = mkdtempSync(join(tmpdir(), 'bc-restore-names-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `tar` with every `from` byte sequence replaced by `to` (same length), header checksums recomputed. */
function patched(tar: Buffer, from: Buffer, to: Buffer): Buffer {
  const out = Buffer.from(tar);
  let hits = 0;
  for (let i = out.indexOf(from); i !== -1; i = out.indexOf(from, i + 1)) {
    to.copy(out, i);
    hits++;
  }
  expect(hits).toBeGreaterThan(0);
  for (let off = 0; off + 512 <= out.length; off += 512) {
    if (out.toString('latin1', off + 257, off + 262) !== 'ustar') continue;
    out.fill(0x20, off + 148, off + 156);
    let sum = 0;
    for (let j = off; j < off + 512; j++) sum += out[j]!;
    out.write(`${sum.toString(8).padStart(6, '0')}\0 `, off + 148, 'latin1');
  }
  return out;
}

async function restoreOf(name: string, tar: Buffer) {
  const store = join(work, name, 'store');
  const dir = join(store, 'srv', 'base', BACKUP_ID);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'backup.info'), handMadeDone());
  writeFileSync(join(dir, 'data.tar'), tar);
  const dest = join(work, name, 'dest');
  const r = await runBin('barman-cloud-restore', [`file://${store}`, 'srv', BACKUP_ID, dest], { env: cleanEnv() });
  return { ...r, dest };
}

const base: TarMember[] = [{ name: 'PG_VERSION', data: '15\n' }];

describe('restore of member names that are not UTF-8', () => {
  it.each([
    ['a ustar name', [...base, { name: 'stray-XA', data: 'x' }], Buffer.from('stray-XA'), Buffer.from('stray-\xffA', 'latin1'), /'stray-\uFFFDA': its name is not valid UTF-8/],
    // a non-ASCII name makes tar-stream write a PAX path record, as Python's tarfile does
    ['a PAX path record', [...base, { name: 'stray-\u00e9A', data: 'x' }], Buffer.from('stray-\u00e9A'), Buffer.from('stray-\xff\xfeA', 'latin1'), /its name is not valid UTF-8/],
    ['a symbolic link target', [...base, { name: 'lnk', type: 'symlink', linkname: 'PG_XERSION' }], Buffer.from('PG_XERSION'), Buffer.from('PG_\xffERSION', 'latin1'), /'lnk': its link target is not valid UTF-8/],
  ] as [string, TarMember[], Buffer, Buffer, RegExp][])('%s: exit 4, one line naming it, nothing under another name', async (label, members, from, to, message) => {
    const r = await restoreOf(label.replace(/\W+/g, '-'), patched(await tarOf(members), from, to));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(existsSync(r.dest) ? readdirSync(r.dest).filter((n) => n.startsWith('stray') || n === 'lnk') : []).toEqual([]);
  });

  it('a valid non-ASCII name is restored as it is', async () => {
    const r = await restoreOf('valid', await tarOf([...base, { name: 'caf\u00e9', data: 'x' }]));
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readdirSync(r.dest)).toContain('caf\u00e9');
  });
});

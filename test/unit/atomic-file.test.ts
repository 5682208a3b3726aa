// src/atomic-file.ts, the one atomic write: the target is the old file or the whole new one, the temp
// never outlives the call, create-only keeps an existing target, and a link at the target is
// replaced, not written through.
import { existsSync, fchmodSync, futimesSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/atomic-file.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bc-atomic-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const temp = (name: string) => join(dir, `.${name}.tmp`);
const names = () => readdirSync(dir).sort();

describe('writeFileAtomic', () => {
  it('replaces the target with bytes or with what the writer wrote, and leaves no temp', async () => {
    const target = join(dir, 'a');
    writeFileSync(target, 'old');
    expect(await writeFileAtomic(target, 'new', { temp: temp('a') })).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(await writeFileAtomic(target, (fd) => void writeSync(fd, Buffer.from('written')), { temp: temp('a'), mode: 0o640 })).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('written');
    expect(names()).toEqual(['a']);
  });

  it('keeps the old target and removes the temp when the writer fails or confirm says no', async () => {
    const target = join(dir, 'b');
    writeFileSync(target, 'old');
    await expect(writeFileAtomic(target, () => Promise.reject(new Error('source broke')), { temp: temp('b') })).rejects.toThrow('source broke');
    expect(await writeFileAtomic(target, 'new', { temp: temp('b'), confirm: async () => false })).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('old');
    expect(names()).not.toContain('.b.tmp');
  });

  it('sets the attributes on the new file before it gets the name; a failing setter keeps the old target', async () => {
    const target = join(dir, 'attrs');
    writeFileSync(target, 'old', { mode: 0o600 });
    const when = new Date('2020-01-02T03:04:05Z');
    const attributes = (fd: number) => {
      fchmodSync(fd, 0o640);
      futimesSync(fd, when, when);
    };
    expect(await writeFileAtomic(target, Buffer.from('new'), { temp: temp('attrs'), attributes })).toBe(true);
    const st = lstatSync(target);
    expect([readFileSync(target, 'utf8'), st.mode & 0o777, st.mtime.toISOString()]).toEqual(['new', 0o640, when.toISOString()]);
    const failing = () => {
      throw new Error('chown refused');
    };
    await expect(writeFileAtomic(target, 'newer', { temp: temp('attrs'), attributes: failing })).rejects.toThrow('chown refused');
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(names()).not.toContain('.attrs.tmp');
  });

  it('creates only, when exclusive: an existing target is kept and the call says so', async () => {
    const target = join(dir, 'c');
    expect(await writeFileAtomic(target, 'first', { temp: temp('c'), exclusive: true })).toBe(true);
    expect(await writeFileAtomic(target, 'second', { temp: temp('c'), exclusive: true })).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('first');
    expect(names()).not.toContain('.c.tmp');
  });

  it('copies another file into place, and replaces a symlink at the target instead of following it', async () => {
    const source = join(dir, 'source');
    const victim = join(dir, 'victim');
    writeFileSync(source, 'copied');
    writeFileSync(victim, 'victim');
    const target = join(dir, 'd');
    symlinkSync(victim, target);
    expect(await writeFileAtomic(target, { copyOf: source }, { temp: temp('d') })).toBe(true);
    expect(lstatSync(target).isFile()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('copied');
    expect(readFileSync(victim, 'utf8')).toBe('victim');
    expect(existsSync(temp('d'))).toBe(false);
  });
});

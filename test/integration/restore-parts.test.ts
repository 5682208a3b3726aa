// A backup taken by barman has no parts.json, so the numbering of its parts is the only sign of a
// part gone missing: restore must refuse a gap or a doubled part (exit 4, before anything is
// extracted), and must extract every part, also those numbered past 9999 (`%04d` grows a digit).
// A part cut at a member boundary parses as a shorter tar: its missing end blocks give it away.
// Hand-made tars stored as a barman backup in the directory store; the real executable restores.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';

const ID = '20261129T050418';
let work: string;
let dir: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-restoreparts-'));
  dir = join(work, 'store', 'srv', 'base', ID);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'backup.info'), handMadeDone());
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

/** data.tar plus the given further parts, each holding one file named after its part number. */
async function store(parts: number[], extra: Record<string, number> = {}): Promise<void> {
  writeFileSync(join(dir, 'data.tar'), await tarOf([{ name: '.', type: 'directory' }, { name: 'PG_VERSION', data: '15\n' }]));
  for (const n of parts) writeFileSync(join(dir, `data_${String(n).padStart(4, '0')}.tar`), await tarOf([{ name: `part${n}`, data: `${n}` }]));
  for (const [name, n] of Object.entries(extra)) writeFileSync(join(dir, name), await tarOf([{ name: `part${n}`, data: `${n}` }]));
}

function restore() {
  return runBin('barman-cloud-restore', [`file://${join(work, 'store')}`, 'srv', ID, join(work, 'dest')], { env: cleanEnv() });
}

describe('restore and the numbering of parts', () => {
  it('refuses a backup with a part missing in the middle, before extracting anything', async () => {
    await store([1, 3]);
    const r = await restore();
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: Barman cloud restore exception: Missing file data_0002\.\* before data_0003\.tar: the backup is incomplete\n$/);
    expect(existsSync(join(work, 'dest'))).toBe(false);
  });

  it('refuses two objects for the same part', async () => {
    await store([1], { 'data_0001.tar.gz': 1 });
    const r = await restore();
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: Barman cloud restore exception: Two objects hold part 1 of data: data_0001\.tar and data_0001\.tar\.gz\n$/);
  });

  it('refuses two objects for the first part', async () => {
    await store([1], { 'data.tar.gz': 0 });
    const r = await restore();
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: Barman cloud restore exception: Two objects hold the first part of data: data\.tar and data\.tar\.gz\n$/);
  });

  it('refuses a part cut at a member boundary (no end-of-archive blocks), naming it', async () => {
    await store([]);
    const members = [{ name: '.', type: 'directory' as const }, { name: 'PG_VERSION', data: '15\n' }];
    const whole = await tarOf([...members, { name: 'global/pg_control', data: 'control' }]);
    // the same first members, so the same first bytes: cut where the shorter tar's end blocks begin
    const cut = whole.subarray(0, (await tarOf(members)).length - 1024);
    writeFileSync(join(dir, 'data.tar'), cut);
    const r = await restore();
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: [^\n]*part data\.tar cannot be read \(the tar has no end-of-archive marker \(truncated\?\)\)[^\n]*\n$/);
  });

  it('extracts and verifies parts numbered past 9999', async () => {
    const parts = [...Array(10001).keys()].map((i) => i + 1);
    // 10,001 one-file tars: written directly, the same tar for each part but its file name
    await store([]);
    const tarFor = await tarOf([{ name: 'partN', data: 'x' }]);
    for (const n of parts) {
      // same length for every name: patch the member name in the header (bytes 0..99) and its checksum
      const t = Buffer.from(tarFor);
      const name = Buffer.from(`p${String(n).padStart(5, '0')}`);
      t.fill(0, 0, 100);
      name.copy(t, 0);
      t.fill(0x20, 148, 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += t[i]!;
      t.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
      writeFileSync(join(dir, `data_${String(n).padStart(4, '0')}.tar`), t);
    }
    const r = await restore();
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const names = readdirSync(join(work, 'dest')).filter((n) => n.startsWith('p0') || n.startsWith('p1'));
    expect(names.length).toBe(10001);
    expect(readFileSync(join(work, 'dest', 'p10001'), 'utf8')).toBe('x');
    // verify reads them all too (the WAL this fixture lacks is its own problem, reported apart)
    const v = await runBin('barman-cloud', ['verify', `file://${join(work, 'store')}`, 'srv', ID], { env: cleanEnv(), timeoutMs: 240_000 });
    expect(v.stdout).toMatch(new RegExp(`^backup ${ID} \\(firsthead\\): [^:\\n]+: 10002 parts, `, 'm'));
  }, 300_000);
});

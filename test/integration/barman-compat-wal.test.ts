// Cross-compatibility with Debian's barman-cli-cloud 3.4 on the same bucket (moto): WAL archived by
// ours is restored byte-identical by barman's wal-restore and the other way round (none, gzip,
// bzip2: the codecs 3.4 knows; snappy is skipped because Debian's python3-snappy is broken).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBarman, runBin, cleanEnv } from '../helpers/run-bin.ts';
import { requireTool } from '../helpers/postgres.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const BARMAN = '/usr/bin/barman-cloud-wal-archive';
const skip = requireTool('barman-cli-cloud 3.4 (apt-get install barman-cli-cloud)', existsSync(BARMAN));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const runPython = (tool: string, args: string[]) => runBarman(tool, args, cleanEnv(MOTO_ENV));

/** `size` WAL-like bytes behind segment `name`'s long page header (wal-restore checks it). */
function walLike(name: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off < size; off += 8192) {
    b.write(`page ${off} of a WAL-like test segment `, off);
    randomBytes(128).copy(b, off + 512);
  }
  return withLongPageHeader(b, name);
}

describe.skipIf(skip)('WAL cross-compatibility with barman-cli-cloud 3.4', () => {
  let moto: ServerHandle;
  let work: string;
  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, 'compat');
    work = mkdtempSync(join(tmpdir(), 'bc-compat-'));
  });
  afterAll(async () => {
    await moto?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const codecs: [string, string[]][] = [['none', []], ['gzip', ['-z']], ['bzip2', ['-j']]];

  it.each(codecs)('ours archives (%s) → barman 3.4 restores byte-identical', async (codec, flags) => {
    const name = `0000000100000000000000${codec === 'none' ? '11' : codec === 'gzip' ? '12' : '13'}`;
    const data = walLike(name, 16 * 1024 * 1024);
    const path = join(work, name);
    writeFileSync(path, data);
    const url = ['--endpoint-url', moto.url, 's3://compat/ours', 'srv'];
    const a = await runBin('barman-cloud-wal-archive', [...flags, ...url, path], { env: cleanEnv(MOTO_ENV) });
    expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: '' });
    const dest = join(work, `${name}.by-barman`);
    const r = await runPython('barman-cloud-wal-restore', [...url, name, dest]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(sha(readFileSync(dest))).toBe(sha(data));
  });

  it.each(codecs)('barman 3.4 archives (%s) → ours restores byte-identical', async (codec, flags) => {
    const name = `0000000100000000000000${codec === 'none' ? '21' : codec === 'gzip' ? '22' : '23'}`;
    const data = walLike(name, 16 * 1024 * 1024);
    const path = join(work, name);
    writeFileSync(path, data);
    const url = ['--endpoint-url', moto.url, 's3://compat/theirs', 'srv'];
    const a = await runPython('barman-cloud-wal-archive', [...flags, ...url, path]);
    expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    const dest = join(work, `${name}.by-ours`);
    const r = await runBin('barman-cloud-wal-restore', [...url, name, dest], { env: cleanEnv(MOTO_ENV) });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(readFileSync(dest))).toBe(sha(data));
    // And barman's own copy is recognised as identical: archiving the same file again is a no-op.
    const again = await runBin('barman-cloud-wal-archive', ['--lz4', ...url, path], { env: cleanEnv(MOTO_ENV) });
    expect(again.code).toBe(0);
  });

  it('history files and not-found exit codes agree with barman 3.4', async () => {
    const url = ['--endpoint-url', moto.url, 's3://compat/hist', 'srv'];
    const path = join(work, '00000002.history');
    writeFileSync(path, '1\t0/3000000\tno recovery target specified\n');
    expect((await runBin('barman-cloud-wal-archive', [...url, path], { env: cleanEnv(MOTO_ENV) })).code).toBe(0);
    const dest = join(work, 'hist.by-barman');
    expect((await runPython('barman-cloud-wal-restore', [...url, '00000002.history', dest])).code).toBe(0);
    expect(readFileSync(dest, 'utf8')).toBe(readFileSync(path, 'utf8'));
    const theirs = await runPython('barman-cloud-wal-restore', [...url, '000000010000000000000042', join(work, 'x')]);
    const ours = await runBin('barman-cloud-wal-restore', [...url, '000000010000000000000042', join(work, 'y')], { env: cleanEnv(MOTO_ENV) });
    expect(ours.code).toBe(theirs.code);
    expect(ours.code).toBe(1);
  });
});

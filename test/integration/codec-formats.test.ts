// Format proofs against INDEPENDENT implementations, both directions, on a 16 MiB WAL-like
// buffer: Debian's gzip/bzip2/xz/zstd/lz4 programs and Python's gzip/bz2/lzma (stdlib),
// zstandard and lz4.frame (Debian python3-*; the modules barman itself reads WALs with), and for
// snappy python-snappy's own StreamCompressor/StreamDecompressor (the exact framing code barman
// uses) on top of Google's libsnappy. Debian's python3-snappy 0.5.3 has a broken C CRC-32C on
// Python 3.11 (SystemError PY_SSIZE_T_CLEAN), so the script swaps in python3-crc32c (or a
// stdlib-only table implementation). No standalone snappy-framing CLI (snzip) is packaged in Debian.
//
// A test whose tool is missing is skipped locally but FAILS when CI=true.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCodec, type Codec } from '../../src/compression/index.js';
import { walLike } from '../fixtures/wal-like.ts';

const PY = '/usr/bin/python3';
const CI = process.env.CI === 'true';
const SIZE = 16 << 20;

const hasProgram = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
const hasPython = (module: string) => spawnSync(PY, ['-c', `import ${module}`]).status === 0;

/** it() when `available`; otherwise skipped locally and failing in CI. */
function needs(what: string, available: boolean) {
  return (name: string, fn: () => Promise<void>, timeout = 120_000) => {
    if (available) it(name, fn, timeout);
    else if (CI) it(name, () => expect.fail(`${what} is required in CI but missing`));
    else it.skip(`${name} (needs ${what})`, fn);
  };
}

let dir: string;
let data: Buffer;
let plainPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'codec-formats-'));
  data = walLike(SIZE);
  plainPath = join(dir, 'wal');
  writeFileSync(plainPath, data);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(bytes: Buffer): string {
  const p = join(dir, `f${n++}`);
  writeFileSync(p, bytes);
  return p;
}

/** Runs a program, feeding `input` (a path) on stdin; returns stdout. */
function run(cmd: string, args: string[], input?: string): Buffer {
  const r = spawnSync('sh', ['-c', `"$0" "$@"${input ? ' < "$IN"' : ''}`, cmd, ...args], {
    env: { ...process.env, IN: input ?? '', LC_ALL: 'C' },
    maxBuffer: 256 << 20,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  return r.stdout;
}

/** Runs a Python snippet with IN/OUT paths in sys.argv[1:3]; returns what it wrote to OUT. */
function python(script: string, input: string): Buffer {
  const out = join(dir, `py${n++}`);
  const r = spawnSync(PY, ['-c', script, input, out], { maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr.toString()}`);
  return readFileSync(out);
}

async function viaStream(input: Buffer, transform: Transform): Promise<Buffer> {
  const parts: Buffer[] = [];
  const chunks = function* () {
    for (let i = 0; i < input.length; i += 100_000) yield input.subarray(i, i + 100_000);
  };
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      parts.push(chunk);
      cb();
    },
  });
  await pipeline(Readable.from(chunks()), transform, sink);
  return Buffer.concat(parts);
}

function same(actual: Buffer, expected: Buffer = data): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected)).toBe(true);
}

/** Our buffer and stream decoders both give back the original. */
async function weDecode(codec: Codec, packed: Buffer, expected: Buffer = data): Promise<void> {
  same(await codec.decompress(packed), expected);
  same(await viaStream(packed, codec.decompressStream()), expected);
}

const PY_READ = (body: string) => `import sys\nsrc=open(sys.argv[1],'rb')\n${body}\nopen(sys.argv[2],'wb').write(out)\n`;
const PY_WRITE = (body: string) => `import sys\ndata=open(sys.argv[1],'rb').read()\n${body}\nopen(sys.argv[2],'wb').write(out)\n`;

describe('gzip', () => {
  const cli = needs('gzip', hasProgram('gzip'));
  const py = needs('python3 gzip', hasPython('gzip'));
  cli('ours → gzip -d, gzip -6 → ours', async () => {
    const codec = await loadCodec('gzip');
    same(run('gzip', ['-d', '-c'], file(await codec.compress(data))));
    same(run('gzip', ['-d', '-c'], file(await viaStream(data, codec.compressStream(9)))));
    await weDecode(codec, run('gzip', ['-c', '-6'], plainPath));
  });
  py('ours → python gzip, python gzip → ours', async () => {
    const codec = await loadCodec('gzip');
    same(python(PY_READ('import gzip\nout=gzip.GzipFile(fileobj=src).read()'), file(await codec.compress(data))));
    await weDecode(codec, python(PY_WRITE('import gzip\nout=gzip.compress(data, compresslevel=6)'), plainPath));
  });
});

// One bzip2 *stream* is what Python's tarfile 'r|bz2' (barman-cloud-restore) needs.
const PY_BZ2_SINGLE = PY_READ(
  'import bz2\nd=bz2.BZ2Decompressor()\nout=d.decompress(src.read())\nassert d.eof and d.unused_data==b"", "not exactly one bzip2 stream"',
);

describe('bzip2', () => {
  const cli = needs('bzip2', hasProgram('bzip2'));
  const py = needs('python3 bz2', hasPython('bz2'));
  cli('ours (bzip2 program backend) → bzip2 -d and python BZ2Decompressor; bzip2 -5 → ours', async () => {
    const codec = await loadCodec('bzip2', { bzip2: 'cli' });
    const packed = await codec.compress(data);
    same(run('bzip2', ['-d', '-c'], file(packed)));
    if (hasPython('bz2')) same(python(PY_BZ2_SINGLE, file(packed)));
    await weDecode(codec, run('bzip2', ['-c', '-5'], plainPath));
  });
  cli('ours (JavaScript backend, spliced blocks) → bzip2 -d and python BZ2Decompressor (one stream)', async () => {
    const codec = await loadCodec('bzip2', { bzip2: 'js' });
    const part = data.subarray(0, 2 << 20); // the JS encoder is slow: 2 MiB = 3 blocks at level 9
    const packed = await viaStream(part, codec.compressStream(9));
    same(run('bzip2', ['-d', '-c'], file(packed)), part);
    run('bzip2', ['-t'], file(packed));
    if (hasPython('bz2')) same(python(PY_BZ2_SINGLE, file(packed)), part);
  });
  cli('bzip2 -9 → ours (JavaScript decoder)', async () => {
    const codec = await loadCodec('bzip2', { bzip2: 'js' });
    await weDecode(codec, run('bzip2', ['-c', '-9'], plainPath));
  });
  py('python bz2 → ours (both backends)', async () => {
    const packed = python(PY_WRITE('import bz2\nout=bz2.compress(data, compresslevel=5)'), plainPath);
    await weDecode(await loadCodec('bzip2', { bzip2: 'js' }), packed);
    if (hasProgram('bzip2')) await weDecode(await loadCodec('bzip2', { bzip2: 'cli' }), packed);
  });
});

describe('xz', () => {
  const cli = needs('xz', hasProgram('xz'));
  const py = needs('python3 lzma', hasPython('lzma'));
  cli('ours → xz -d, xz -3 → ours', async () => {
    const codec = await loadCodec('xz');
    const packed = await codec.compress(data);
    expect(run('xz', ['--robot', '--list', file(packed)]).toString()).toMatch(/CRC64/);
    same(run('xz', ['-d', '-c'], file(packed)));
    same(run('xz', ['-d', '-c'], file(await viaStream(data, codec.compressStream(1)))));
    await weDecode(codec, run('xz', ['-c', '-3'], plainPath));
    await weDecode(codec, run('xz', ['-c', '-1', '-T2'], plainPath)); // multi-block stream
  });
  py('ours → python lzma, python lzma → ours', async () => {
    const codec = await loadCodec('xz');
    same(python(PY_READ('import lzma\nout=lzma.decompress(src.read(), format=lzma.FORMAT_XZ)'), file(await codec.compress(data))));
    await weDecode(codec, python(PY_WRITE('import lzma\nout=lzma.compress(data, preset=3)'), plainPath));
  });
});

describe('zstd', () => {
  const cli = needs('zstd', hasProgram('zstd'));
  const py = needs('python3-zstandard', hasPython('zstandard'));
  cli('ours → zstd -d, zstd -4 → ours', async () => {
    const codec = await loadCodec('zstd');
    same(run('zstd', ['-d', '-c', '-q'], file(await codec.compress(data))));
    same(run('zstd', ['-d', '-c', '-q'], file(await viaStream(data, codec.compressStream(-5)))));
    // zstd(1) sees the content checksum we add to libzstd's frame, and checks it (-d above, -t here)
    const ours = file(await viaStream(data, codec.compressStream()));
    expect(run('zstd', ['-lv', ours]).toString()).toMatch(/Check: XXH64/);
    const flipped = readFileSync(ours);
    flipped[flipped.length - 2]! ^= 0x10;
    expect(spawnSync('zstd', ['-t', '-q', file(flipped)]).status).not.toBe(0);
    // and the checksum is the very one zstd(1) writes for the same content
    expect(readFileSync(ours).subarray(-4)).toEqual(run('zstd', ['-c', '-q', '-4', '--check'], plainPath).subarray(-4));
    await weDecode(codec, run('zstd', ['-c', '-q', '-4'], plainPath));
    await weDecode(codec, run('zstd', ['-c', '-q', '-19', '--no-check'], plainPath));
  });
  py('ours → python zstandard stream_reader (barman’s reader), python copy_stream (barman’s writer) → ours', async () => {
    const codec = await loadCodec('zstd');
    const read = PY_READ('import zstandard\nout=zstandard.ZstdDecompressor().stream_reader(src).read()');
    same(python(read, file(await codec.compress(data))));
    same(python(read, file(await viaStream(data, codec.compressStream()))));
    const write = PY_WRITE('import io, zstandard\nb=io.BytesIO()\nzstandard.ZstdCompressor(level=4).copy_stream(io.BytesIO(data), b)\nout=b.getvalue()');
    await weDecode(codec, python(write, plainPath));
  });
});

describe('lz4', () => {
  const cli = needs('lz4', hasProgram('lz4'));
  const py = needs('python3-lz4', hasPython('lz4.frame'));
  cli('ours → lz4 -d (checks our content checksum)', async () => {
    const codec = await loadCodec('lz4');
    same(run('lz4', ['-d', '-c'], file(await codec.compress(data))));
    same(run('lz4', ['-d', '-c'], file(await viaStream(data, codec.compressStream()))));
  });
  cli('lz4 frames in every layout → ours', async () => {
    const codec = await loadCodec('lz4');
    for (const args of [
      ['-1'], // defaults: 4 MiB independent blocks, content checksum
      ['-9'], // HC
      ['-BD', '-B4'], // linked 64 KiB blocks
      ['-BD', '-B5', '-BX', '--content-size'], // linked 256 KiB blocks, block checksums, content size
      ['-B6', '--no-frame-crc'],
    ]) {
      await weDecode(codec, run('lz4', ['-c', '-q', ...args], plainPath));
    }
    // lz4(1) writes concatenated frames for concatenated inputs
    const two = Buffer.concat([run('lz4', ['-c', '-q'], plainPath), run('lz4', ['-c', '-q', '-BD'], plainPath)]);
    await weDecode(codec, two, Buffer.concat([data, data]));
  });
  py('ours → python lz4.frame (decompress, open — barman’s reader — and one-frame decompressor)', async () => {
    const codec = await loadCodec('lz4');
    const ours = [file(await codec.compress(data)), file(await viaStream(data, codec.compressStream()))];
    for (const p of ours) {
      same(python(PY_READ('import lz4.frame\nout=lz4.frame.decompress(src.read())'), p));
      same(python(PY_READ('import lz4.frame\nout=lz4.frame.open(src, mode="rb").read()'), p));
      const single = 'import lz4.frame\nd=lz4.frame.LZ4FrameDecompressor()\nout=d.decompress(src.read())\nassert d.eof and not d.unused_data';
      same(python(PY_READ(single), p));
    }
  });
  py('python lz4.frame → ours (barman’s writer, linked/independent, checksums, streaming compressor)', async () => {
    const codec = await loadCodec('lz4');
    for (const body of [
      'import lz4.frame\nout=lz4.frame.compress(data, compression_level=6)', // barman WAL: 64 KiB linked blocks
      'import lz4.frame\nout=lz4.frame.compress(data, compression_level=0, block_size=lz4.frame.BLOCKSIZE_MAX4MB, block_linked=False, content_checksum=True, block_checksum=True, store_size=True)',
      'import lz4.frame\nout=lz4.frame.compress(data, compression_level=10, block_size=lz4.frame.BLOCKSIZE_MAX1MB, content_checksum=True)',
      'import lz4.frame\nc=lz4.frame.LZ4FrameCompressor(compression_level=6)\nparts=[c.begin()]\nfor i in range(0, len(data), 65536): parts.append(c.compress(data[i:i+65536]))\nparts.append(c.flush())\nout=b"".join(parts)',
    ]) {
      await weDecode(codec, python(PY_WRITE(body), plainPath));
    }
  });
});

// python-snappy 0.5.3 (Debian) with a working CRC-32C: python3-crc32c when present, else a table.
const PY_SNAPPY = `import sys, snappy, snappy.snappy as impl
try:
    import crc32c as _c
    impl._crc32c = _c.crc32c
except ImportError:
    T = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        T.append(c)
    def _crc(data):
        c = 0xFFFFFFFF
        for b in data:
            c = T[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF
    impl._crc32c = _crc
assert impl._masked_crc32c(b"123456789") == ((((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8) & 0xFFFFFFFF)
`;

describe('snappy (framing format)', () => {
  const py = needs('python3-snappy', hasPython('snappy'));
  py('ours → python-snappy StreamDecompressor / stream_decompress (barman’s reader)', async () => {
    const codec = await loadCodec('snappy');
    const read = `${PY_SNAPPY}import io\nsrc=open(sys.argv[1],'rb')\nb=io.BytesIO()\nsnappy.stream_decompress(src, b)\nopen(sys.argv[2],'wb').write(b.getvalue())\n`;
    same(python(read, file(await codec.compress(data))));
    same(python(read, file(await viaStream(data, codec.compressStream()))));
    // barman's backup reader feeds 64 KiB pieces to StreamDecompressor.decompress
    const pieces = `${PY_SNAPPY}src=open(sys.argv[1],'rb').read()\nd=snappy.StreamDecompressor()\nout=b"".join(d.decompress(src[i:i+65536]) for i in range(0, len(src), 65536))\nd.flush()\nopen(sys.argv[2],'wb').write(out)\n`;
    same(python(pieces, file(await viaStream(data, codec.compressStream()))));
  });
  py('python-snappy stream_compress / StreamCompressor (barman’s writers) → ours', async () => {
    const codec = await loadCodec('snappy');
    const whole = `${PY_SNAPPY}import io\nb=io.BytesIO()\nsnappy.stream_compress(open(sys.argv[1],'rb'), b)\nopen(sys.argv[2],'wb').write(b.getvalue())\n`;
    await weDecode(codec, python(whole, plainPath));
    // the tar uploader calls add_chunk() with 64 KiB tar writes (and smaller ones)
    const chunked = `${PY_SNAPPY}data=open(sys.argv[1],'rb').read()\nc=snappy.StreamCompressor()\nout=b"".join(c.add_chunk(data[i:i+50000]) for i in range(0, len(data), 50000))\nopen(sys.argv[2],'wb').write(out)\n`;
    await weDecode(codec, python(chunked, plainPath));
    // empty input: python writes nothing at all; we write only the stream identifier. A
    // zero-length object is refused all the same: no WAL file or tar is ever empty, so it is damage.
    await expect(codec.decompress(Buffer.alloc(0))).rejects.toThrow(/no compressed data/);
    same(python(`${PY_SNAPPY}d=snappy.StreamDecompressor()\nout=d.decompress(open(sys.argv[1],'rb').read())\nd.flush()\nopen(sys.argv[2],'wb').write(out)\n`, file(await codec.compress(Buffer.alloc(0)))), Buffer.alloc(0));
  });
});

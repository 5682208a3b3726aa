// zstd frames (magic 28 b5 2f fd) through zstd-napi, a binding of the reference libzstd (built from
// its bundled source when no prebuilt binary can be fetched). One frame per object/stream: barman
// reads WALs with ZstdDecompressor().stream_reader(), which stops at the end of the first frame.
// Frames carry the optional content checksum (XXH64, 4 bytes): without it most single-byte flips
// decode to wrong bytes silently. Every reader (python-zstandard, zstd(1)) verifies it.
import type { Transform } from 'node:stream';
import * as zstd from 'zstd-napi';
import { compressThrough } from './block-stream.js';
import { CheckedDecompressStream, checkedDecompress, type Classifier } from './checked-stream.js';
import type { Codec } from './types.js';

const DEFAULT_LEVEL = 4; // barman "medium"
const params = (level: number) => ({ compressionLevel: level, checksumFlag: true });

const classify: Classifier = (m) =>
  /ended in middle|truncated|src size is incorrect|could not parse zstandard header/i.test(m)
    ? 'truncated'
    : /checksum/i.test(m)
      ? 'checksum'
      : 'corrupt';

export function createZstdCodec(): Codec {
  return {
    name: 'zstd',
    compress: async (buf, level = DEFAULT_LEVEL) => zstd.compress(buf, params(level)),
    // The stream compresses each chunk synchronously in its write callback, and libzstd copies the
    // input into its window, so a borrowed chunk may be refilled once its write has returned.
    compressChunks: (chunks, level = DEFAULT_LEVEL) => compressThrough(new zstd.CompressStream(params(level)), chunks),
    // A context of its own per call: zstd-napi's shared one stays unusable after a failed call.
    decompress: (buf) => checkedDecompress('zstd', buf, classify, (b) => new zstd.Decompressor().decompress(b)),
    compressStream: (level = DEFAULT_LEVEL): Transform => new zstd.CompressStream(params(level)),
    decompressStream: (): Transform => new CheckedDecompressStream('zstd', new zstd.DecompressStream(), classify),
  };
}

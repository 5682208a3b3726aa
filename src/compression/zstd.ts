// zstd frames (magic 28 b5 2f fd) through zstd-napi, a binding of the reference libzstd (built from
// its bundled source when no prebuilt binary can be fetched). One frame per object/stream: barman
// reads WALs with ZstdDecompressor().stream_reader(), which stops at the end of the first frame.
import type { Transform } from 'node:stream';
import * as zstd from 'zstd-napi';
import { compressThrough } from './block-stream.js';
import type { Codec } from './types.js';

const DEFAULT_LEVEL = 4; // barman "medium"

export function createZstdCodec(): Codec {
  return {
    name: 'zstd',
    compress: async (buf, level = DEFAULT_LEVEL) => zstd.compress(buf, { compressionLevel: level }),
    // The stream compresses each chunk synchronously in its write callback, and libzstd copies the
    // input into its window, so a borrowed chunk may be refilled once its write has returned.
    compressChunks: (chunks, level = DEFAULT_LEVEL) => compressThrough(new zstd.CompressStream({ compressionLevel: level }), chunks),
    decompress: async (buf) => (buf.length === 0 ? Buffer.alloc(0) : zstd.decompress(buf)),
    compressStream: (level = DEFAULT_LEVEL): Transform => new zstd.CompressStream({ compressionLevel: level }),
    decompressStream: (): Transform => new zstd.DecompressStream(),
  };
}

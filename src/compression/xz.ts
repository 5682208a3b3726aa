// xz container (spec §13: Python `lzma.compress(preset=…)`, CRC64 check) through lzma-native, an
// N-API binding of liblzma that ships prebuilt binaries (nothing to compile at install) and
// streams on worker threads. node-liblzma 4.x was rejected: it returns truncated data as a
// success. The decoder accepts concatenated streams and the legacy .lzma format like
// Python's lzma.open().
import type { Transform } from 'node:stream';
import lzma from 'lzma-native';
import type { Codec } from './types.js';

const DEFAULT_PRESET = 3; // barman "medium"
const encoder = (preset: number) => ({ preset, check: lzma.CHECK_CRC64 });
const decoder = () => ({ flags: lzma.CONCATENATED });

export function createXzCodec(): Codec {
  return {
    name: 'xz',
    compress: (buf, level = DEFAULT_PRESET) => lzma.compress(buf, encoder(level)),
    decompress: (buf) => (buf.length === 0 ? Promise.resolve(Buffer.alloc(0)) : lzma.decompress(buf, decoder())),
    compressStream: (level = DEFAULT_PRESET): Transform => lzma.createCompressor(encoder(level)),
    decompressStream: (): Transform => lzma.createDecompressor(decoder()),
  };
}

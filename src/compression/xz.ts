// xz container (docs/format.md#compression: Python `lzma.compress(preset=…)`, CRC64 check) through lzma-native, an
// N-API binding of liblzma that ships prebuilt binaries (nothing to compile at install) and
// streams on worker threads. node-liblzma 4.x was rejected: it returns truncated data as a
// success. The decoder accepts concatenated streams and the legacy .lzma format like
// Python's lzma.open(). liblzma checks the index, the footer and the CRC64 itself; a stream cut
// anywhere ends in LZMA_BUF_ERROR ("No progress is possible").
import type { Transform } from 'node:stream';
import lzma from 'lzma-native';
import { CheckedDecompressStream, checkedDecompress, type Classifier } from './checked-stream.js';
import { LEVELS, type Codec } from './types.js';

const DEFAULT_PRESET = LEVELS.xz.medium;
const encoder = (preset: number) => ({ preset, check: lzma.CHECK_CRC64 });
const decoder = () => ({ flags: lzma.CONCATENATED });

// liblzma reports a failed integrity check as LZMA_DATA_ERROR, like any other damage.
const classify: Classifier = (m) => (/no progress|unexpected end|truncat/i.test(m) ? 'truncated' : 'corrupt');

export function createXzCodec(): Codec {
  return {
    name: 'xz',
    compress: (buf, level = DEFAULT_PRESET) => lzma.compress(buf, encoder(level)),
    decompress: (buf) => checkedDecompress('xz', buf, classify, (b) => lzma.decompress(b, decoder())),
    compressStream: (level = DEFAULT_PRESET): Transform => lzma.createCompressor(encoder(level)),
    decompressStream: (): Transform => new CheckedDecompressStream('xz', lzma.createDecompressor(decoder()), classify),
  };
}

// gzip (RFC 1952) through Node's zlib: no file name in the header; gunzip accepts concatenated
// members like Python's gzip module does.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Codec } from './types.js';

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
const DEFAULT_LEVEL = 6; // barman "medium"
const STREAM_OPTIONS = { chunkSize: 256 << 10, writableHighWaterMark: 1 << 20, readableHighWaterMark: 1 << 20 };

export const gzipCodec: Codec = {
  name: 'gzip',
  compress: (buf, level = DEFAULT_LEVEL) => gzip(buf, { level }),
  decompress: (buf) => gunzip(buf),
  // Large output chunks and buffers: fewer thread-pool round trips per byte (zlib's default is 16 KiB).
  compressStream: (level = DEFAULT_LEVEL) => zlib.createGzip({ level, ...STREAM_OPTIONS }),
  decompressStream: () => zlib.createGunzip(STREAM_OPTIONS),
};

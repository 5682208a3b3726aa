// gzip (RFC 1952) through Node's zlib: no file name in the header; gunzip accepts concatenated
// members like Python's gzip module does.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Codec } from './types.js';

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
const DEFAULT_LEVEL = 6; // barman "medium"

export const gzipCodec: Codec = {
  name: 'gzip',
  compress: (buf, level = DEFAULT_LEVEL) => gzip(buf, { level }),
  decompress: (buf) => gunzip(buf),
  compressStream: (level = DEFAULT_LEVEL) => zlib.createGzip({ level }),
  decompressStream: () => zlib.createGunzip(),
};

// bzip2 (magic "BZh"). Node has no bzip2 and no maintained native binding works cleanly on Node 20
// (see docs/architecture.md), so the fast path pipes through the system `bzip2` program (libbz2,
// native speed, streamed with back-pressure); without it, a pure-JavaScript fallback (compressjs
// + unbzip2-stream) produces and reads the same single-stream format, about 10-30x slower.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Bzip2JsCompressStream, Bzip2JsDecompressStream, bzip2JsCompressSync } from './bzip2-js.js';
import { ChildTransform } from './child-transform.js';
import { compressThrough } from './block-stream.js';
import { CheckedDecompressStream, checkedDecompress, type Classifier } from './checked-stream.js';
import { CompressionFormatError, LEVELS, type Codec } from './types.js';

const DEFAULT_LEVEL = LEVELS.bzip2.medium;

const found = new Map<string, string | null>();

/** Absolute path of `bzip2` in the directories of `searchPath` (a PATH value), or null. Looked up once per value. */
export function findBzip2Program(searchPath: string): string | null {
  let program = found.get(searchPath);
  if (program !== undefined) return program;
  program = null;
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'bzip2');
    try {
      accessSync(candidate, constants.X_OK);
      program = candidate;
      break;
    } catch {
      // not here
    }
  }
  found.set(searchPath, program);
  return program;
}

/**
 * The program's whole environment: it needs none, and bzip2 would take default options from
 * $BZIP2/$BZIP, so nothing of ours is passed on.
 */
const CHILD_ENV: NodeJS.ProcessEnv = { LC_ALL: 'C' };

/** An empty input compresses to this 14-byte stream (what `bzip2 </dev/null` writes). */
function emptyStream(level: number): Buffer {
  return Buffer.concat([Buffer.from(`BZh${level}`, 'latin1'), Buffer.from('177245385090' + '00000000', 'hex')]);
}

async function collect(input: Buffer, transform: Transform): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from([input]),
    transform,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        parts.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

// bzip2(1) and unbzip2-stream: a stream without its end-of-stream marker "ends unexpectedly"; a
// block or combined CRC that does not match is a "data integrity error". Bytes after the last
// stream are damage as with every codec (docs/format.md#codec-ends): unbzip2-stream fails on them
// ("No magic number found"), bzip2(1) only warns and exits 0, so its decoder is run silentOnSuccess.
const classify: Classifier = (m) =>
  /ends unexpectedly|unexpected end|truncat|premature/i.test(m) ? 'truncated' : /integrity|crc/i.test(m) ? 'checksum' : 'corrupt';

/** bzip2(1) explains a failure in a dozen lines; its first sentence is the one that matters. */
function firstSentence(detail: string): string {
  if (/trailing garbage after EOF/i.test(detail)) return 'data after the end of the compressed stream';
  const m = /bzip2: ([^;.]*(?:ends unexpectedly|integrity error[^;.]*|is not a bzip2 file))/i.exec(detail);
  return m ? m[1]! : detail;
}

function* copies(chunks: Iterable<Buffer>): Generator<Buffer> {
  for (const chunk of chunks) yield Buffer.from(chunk);
}

export function createBzip2Codec(backend: 'auto' | 'cli' | 'js', searchPath: string): Codec {
  const program = backend === 'js' ? null : findBzip2Program(searchPath);
  if (backend === 'cli' && !program) throw new Error('bzip2: no bzip2 program on PATH');
  const describe = (detail: string) => new CompressionFormatError('bzip2', detail);
  const describeDecode = (detail: string) => {
    const short = firstSentence(detail);
    return new CompressionFormatError('bzip2', short, classify(short));
  };

  const compressStream = (level = DEFAULT_LEVEL): Transform =>
    program
      ? new ChildTransform({ command: program, args: ['-z', '-c', `-${level}`], env: CHILD_ENV, emptyOutput: emptyStream(level), describe })
      : new Bzip2JsCompressStream(level);
  const decompressStream = (): Transform =>
    new CheckedDecompressStream(
      'bzip2',
      program
        ? new ChildTransform({ command: program, args: ['-d', '-c'], env: CHILD_ENV, describe: describeDecode, silentOnSuccess: true })
        : new Bzip2JsDecompressStream(classify),
      classify,
    );

  return {
    name: 'bzip2',
    compress: async (buf, level = DEFAULT_LEVEL) =>
      program ? collect(buf, compressStream(level)) : bzip2JsCompressSync(buf, level),
    // The program's stdin queues what it is given, so the borrowed chunks are copied; the JavaScript
    // fallback compresses one whole block buffer and keeps compress().
    ...(program ? { compressChunks: (chunks: Iterable<Buffer>, level = DEFAULT_LEVEL) => compressThrough(compressStream(level), copies(chunks)) } : {}),
    decompress: (buf) => checkedDecompress('bzip2', buf, classify, (b) => collect(b, decompressStream())),
    compressStream,
    decompressStream,
  };
}

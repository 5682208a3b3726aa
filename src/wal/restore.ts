// Fetching WAL files (spec §2.2, §7): barman's candidate rules, decompression by suffix, and an
// atomic write (temp file beside the target, fsync, rename) so that a crash never leaves a
// truncated segment where PostgreSQL would read it.
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { log } from '../log.js';
import type { ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { codecFromSuffix, loadCodec, WAL_SUFFIX, type CodecName } from '../compression/index.js';
import { isWalName } from './names.js';

export interface WalCandidate {
  key: string;
  codec?: CodecName;
}

/**
 * barman's choice among the objects whose key starts with the WAL file's key (spec §7), in key
 * order: the exact uncompressed key is remembered and the search goes on; the first other valid
 * name (one compression suffix stripped; .backup files skipped; .partial skipped with
 * --no-partial) wins at once. barman's stale-suffix quirk is not reproduced.
 */
export async function findWal(
  store: ObjectStore,
  layout: ServerLayout,
  walName: string,
  options: { noPartial?: boolean } = {},
): Promise<WalCandidate | null> {
  const key = layout.walKey(walName);
  let candidate: WalCandidate | null = null;
  for await (const entry of store.list(key, { delimiter: '/' })) {
    if (entry.kind !== 'object') continue;
    if (entry.key === key) {
      candidate = { key };
      continue;
    }
    const codec = codecFromSuffix(entry.key);
    const plain = codec ? entry.key.slice(0, -WAL_SUFFIX[codec].length) : entry.key;
    const name = basename(plain);
    if (!isWalName(name)) {
      log.warning(`Unknown WAL file: ${entry.key}`);
      continue;
    }
    if (name.endsWith('.backup')) continue;
    if (name.endsWith('.partial') && options.noPartial) continue;
    return { key: entry.key, codec };
  }
  return candidate;
}

/** Stream an object into `target` through its codec; returns the number of plain bytes written. */
export async function downloadTo(store: ObjectStore, candidate: WalCandidate, target: string): Promise<number> {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let bytes = 0;
  try {
    const source = await store.get(candidate.key);
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
    const count = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback(null, chunk);
      },
    });
    if (candidate.codec) await pipeline(source, (await loadCodec(candidate.codec)).decompressStream(), count, out);
    else await pipeline(source, count, out);
    const fh = await fs.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
    return bytes;
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

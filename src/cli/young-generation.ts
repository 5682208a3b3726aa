// V8's young generation starts at 1 MiB per semi-space and doubles whenever much of it survives a
// scavenge, up to 16 MiB. A backup or restore allocates a stream of short-lived Buffers (file reads,
// socket chunks, compressed blocks): their memory sits outside the JavaScript heap and is freed only
// when a scavenge finds their small wrapper objects dead, which a grown young generation does
// rarely. Kept at its starting size, it scavenges every MiB of wrappers: a backup to moto at pgbench
// scale 10 peaked at 119 instead of 158 MB (measured on Node 20). Set at run time, before the
// first large allocation; the flag is read whenever the young generation would grow.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setYoungCollector } from '../reclaim.js';

/** Versions of V8 known to have the flag (an unknown flag would be an error line on stderr). */
const KNOWN_V8 = new Set(['11', '12']);

export function keepYoungGenerationSmall(): void {
  if (KNOWN_V8.has(process.versions.v8.split('.')[0]!)) setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * The WAL commands move one segment with few JavaScript objects: their dead Buffers are freed by
 * scavenges asked for every few MiB moved (src/reclaim.ts). A backup is the same on a larger scale:
 * file reads and compressed blocks die right after they are copied into a part, yet left alone they
 * piled up to 20-40 MB before V8 collected them. V8 hands out its collection function only to
 * contexts created after --expose-gc is set, hence the new context.
 */
export function collectYoungGarbageOften(everyBytes?: number): void {
  let gc: ((options: { type: 'minor' }) => void) | undefined;
  // The context is made on the first collection: a WAL call that moves little (a missing WAL, a
  // history file) never needs it, and making one costs ~1.5 ms of CPU.
  setYoungCollector(() => (gc ??= exposedGc())({ type: 'minor' }), everyBytes);
}

function exposedGc(): (options: { type: 'minor' }) => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as (options: { type: 'minor' }) => void;
}

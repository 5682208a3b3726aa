// V8's young generation starts at 1 MiB per semi-space and doubles whenever much of it survives a
// scavenge, up to 16 MiB. A backup or restore allocates a stream of short-lived Buffers (file reads,
// socket chunks, compressed blocks): their memory sits outside the JavaScript heap and is freed only
// when a scavenge finds their small wrapper objects dead, which a grown young generation does
// rarely. Kept at its starting size, it scavenges every MiB of wrappers: a backup to moto at pgbench
// scale 10 peaked at 119 instead of 158 MB (measured on Node 20). Set at run time, before the
// first large allocation; the flag is read whenever the young generation would grow.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
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
 * piled up to 20-40 MB before V8 collected them. With `majorStep`, a full collection also runs
 * whenever Buffer memory has grown by that much past what the last one left. V8 hands out its
 * collection function only to contexts created after --expose-gc is set, hence the new context.
 */
export function collectYoungGarbageOften(everyBytes?: number, majorStep?: number): void {
  let gc: Collect | undefined;
  /** Buffer memory left after the last full collection (or lower since): the step counts from here. */
  let floor = 0;
  // The context is made on the first collection: a WAL call that moves little (a missing WAL, a
  // history file) never needs it, and making one costs ~1.5 ms of CPU.
  setYoungCollector(() => {
    gc ??= exposedGc();
    gc({ type: 'minor' });
    if (majorStep === undefined) return;
    // What a scavenge leaves of Buffer memory is live, or dead behind wrappers that were promoted
    // while in use: a restore of 100,000 small files, each read a piece of a 1 MiB read, piled up
    // ~65 MB of them until V8 collected them itself (peak ~160 instead of ~105 MB, in one run of
    // two or three). Neither V8's own incremental collections nor gc({ type: 'major' }) freed them
    // (measured on Node 20); a forced full collection, gc() without options, did: ~10 ms with a
    // 30 MB heap, run once that memory has grown by `majorStep` since the last one.
    const external = getHeapStatistics().external_memory;
    if (external < floor) floor = external;
    if (external < floor + majorStep) return;
    gc();
    floor = getHeapStatistics().external_memory;
  }, everyBytes);
}

/**
 * Restore and verify read tars the same way: a scavenge per 4 MiB of tar read (headers included:
 * TarEndTap counts them), and a full collection per 16 MiB of Buffer memory that outlives those
 * (a restore of 100,000 small files otherwise peaked at ~160 instead of ~105 MB).
 */
export function collectWhileReadingTars(): void {
  keepYoungGenerationSmall();
  collectYoungGarbageOften(4 << 20, 16 << 20);
}

type Collect = (options?: { type: 'minor' }) => void;

function exposedGc(): Collect {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as Collect;
}

// Memory that Buffers hold lives outside V8's heap and is freed only when a collection finds their
// small wrapper objects dead. V8 starts one for that memory alone only after ~64 MB of it, and a
// WAL call allocates too few JavaScript objects to fill even a 1 MiB young generation: moving one
// 16 MiB segment left ~16-25 MB of dead socket and file chunks behind (measured on Node 20). Code
// that moves bulk data reports the bytes here; every RECLAIM_BYTES a young-generation collection
// (a scavenge, ~0.1-0.4 ms on a WAL call's small heap) frees what died since. The command line
// decides whether that happens (src/cli/young-generation.ts): without a collector this does nothing.

/** Bytes moved between two scavenges by default: what may lie dead before it is freed. */
const RECLAIM_BYTES = 1 << 20;

let collector: (() => void) | undefined;
let every = RECLAIM_BYTES;
let moved = 0;

/** `everyBytes`: bytes moved between two collections (a larger step costs fewer scavenges). */
export function setYoungCollector(collect: () => void, everyBytes = RECLAIM_BYTES): void {
  collector = collect;
  every = everyBytes;
  moved = 0;
}

/** `bytes` were read, written or produced in short-lived Buffers. */
export function bytesMoved(bytes: number): void {
  if (!collector) return;
  moved += bytes;
  if (moved >= every) {
    moved = 0;
    collector();
  }
}

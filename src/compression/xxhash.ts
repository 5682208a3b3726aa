// XXH32 (seed 0 by default), needed by the LZ4 frame format for its header checksum byte and for
// the optional block/content checksums, and XXH64, whose low 32 bits are the zstd frame's content
// checksum. Incremental: update() any number of times, then digest().
//
// Computed by xxhash-wasm (the reference algorithm compiled to WebAssembly): 3 ms for a 16 MiB
// segment against 23 ms for the fastest JavaScript loop we had (measured), and a segment is hashed
// once when archived and once when restored. Instantiation takes ~3 ms, paid only by the processes
// that load the lz4 or zstd codec.
//
// No top-level await: the WAL commands' CommonJS bundle (scripts/build.mjs) cannot hold one, so
// the instance is awaited through xxhashReady by whoever loads a codec that hashes.
import xxhash from 'xxhash-wasm';

type XxhashApi = Awaited<ReturnType<typeof xxhash>>;
let instance: XxhashApi | undefined;

/** Settles once the WebAssembly module is instantiated; Xxh32/Xxh64 need it. */
export const xxhashReady: Promise<void> = xxhash().then((api) => {
  instance = api;
});

function wasm(): XxhashApi {
  if (!instance) throw new Error('xxhash used before xxhashReady settled');
  return instance;
}

/**
 * Input is handed to the WebAssembly side in slices: it copies each update into its own memory,
 * which grows to the largest update and never shrinks.
 */
const SLICE = 1 << 20;

export class Xxh32 {
  private readonly state: ReturnType<XxhashApi['create32']>;

  constructor(seed = 0) {
    this.state = wasm().create32(seed);
  }

  update(data: Uint8Array): this {
    for (let off = 0; off < data.length; off += SLICE) this.state.update(data.subarray(off, off + SLICE));
    return this;
  }

  digest(): number {
    return this.state.digest() >>> 0;
  }
}

export function xxh32(data: Uint8Array, seed = 0): number {
  return new Xxh32(seed).update(data).digest();
}

/** XXH64 with seed 0 (what the zstd frame format uses); digest() gives the full 64 bits. */
export class Xxh64 {
  private readonly state = wasm().create64();

  update(data: Uint8Array): this {
    for (let off = 0; off < data.length; off += SLICE) this.state.update(data.subarray(off, off + SLICE));
    return this;
  }

  digest(): bigint {
    return BigInt.asUintN(64, this.state.digest());
  }
}

// XXH32 (seed 0 by default), needed by the LZ4 frame format for its header checksum byte and for
// the optional block/content checksums, and XXH64, whose low 32 bits are the zstd frame's content
// checksum. Incremental: update() any number of times, then digest().
//
// Computed by @node-rs/xxhash (native, prebuilt per platform like lz4-napi): a one-shot WAL call
// runs WebAssembly in Liftoff only (src/cli/launch.ts), where xxhash-wasm took ~29 ms of CPU per
// 16 MiB segment against ~3 ms natively, on both the archive and the restore of an lz4 or zstd
// segment (docs/benchmarks-history.md, "One-shot WAL profile").
import { napiBinding } from './native.js';

type Native = typeof import('@node-rs/xxhash');
let loaded: Native | undefined;

/**
 * Loaded on first use, not with this module: a zstd restore reaches this file (zstd-frame.ts) but
 * hashes nothing (libzstd checks the frame's checksum itself), and loading the addon, with its own
 * allocator, cost ~1 MB of that call's peak RSS. CommonJS, loaded with require: an import would
 * have Node lex its source for export names (see lz4.ts).
 */
function native(): Native {
  return (loaded ??= napiBinding<Native>('@node-rs/xxhash', (arch) => `@node-rs/xxhash-linux-${arch}-gnu`));
}

export class Xxh32 {
  private readonly state: InstanceType<Native['Xxh32']>;

  constructor(seed = 0) {
    this.state = new (native().Xxh32)(seed);
  }

  update(data: Uint8Array): this {
    this.state.update(data);
    return this;
  }

  digest(): number {
    return this.state.digest() >>> 0;
  }
}

export function xxh32(data: Uint8Array, seed = 0): number {
  return native().xxh32(data, seed) >>> 0;
}

/** XXH64 with seed 0 (what the zstd frame format uses); digest() gives the full 64 bits. */
export class Xxh64 {
  private readonly state = new (native().Xxh64)();

  update(data: Uint8Array): this {
    this.state.update(data);
    return this;
  }

  digest(): bigint {
    return BigInt.asUintN(64, this.state.digest());
  }
}

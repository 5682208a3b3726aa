// Minimal declarations for the two pure-JavaScript bzip2 packages (they ship no types).
declare module 'compressjs/lib/Bzip2.js' {
  const Bzip2: {
    /** Whole-input compression; `blockSizeMultiplier` 1-9 (×100 kB blocks). Returns the .bz2 bytes. */
    compressFile(input: Uint8Array, output?: undefined, blockSizeMultiplier?: number): Uint8Array;
  };
  export = Bzip2;
}

declare module 'unbzip2-stream' {
  import type { Stream } from 'node:stream';
  interface ThroughStream extends Stream {
    write(data: Buffer): boolean;
    end(): void;
  }
  function unbzip2Stream(): ThroughStream;
  export = unbzip2Stream;
}

declare module 'lzma-native' {
  import type { Transform } from 'node:stream';
  interface LzmaOptions {
    preset?: number;
    check?: number;
    threads?: number;
    memlimit?: number;
    flags?: number;
    synchronous?: boolean;
  }
  /** A readable-stream v3 Transform (duck-type compatible with node:stream). */
  export function createCompressor(options?: LzmaOptions): Transform;
  export function createDecompressor(options?: LzmaOptions): Transform;
  export function compress(input: Buffer, options?: LzmaOptions): Promise<Buffer>;
  export function decompress(input: Buffer, options?: LzmaOptions): Promise<Buffer>;
  export function versionString(): string;
  export const CHECK_CRC64: number;
  export const CONCATENATED: number;
}

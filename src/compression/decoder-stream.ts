// A Transform around an incremental frame decoder (snappy framing, LZ4 frames): each input chunk
// yields the complete blocks it finishes; end() rejects a truncated stream, and an empty input is
// refused (a zero-length object is damage, not a compressed empty file).
import { Transform, type TransformCallback } from 'node:stream';
import { emptyInput } from './checked-stream.js';
import type { CodecName } from './types.js';

export interface IncrementalDecoder {
  write(input: Buffer): Buffer[];
  end(): void;
}

export class DecoderTransform extends Transform {
  private seen = 0;

  constructor(
    private readonly codec: CodecName,
    private readonly decoder: IncrementalDecoder,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    try {
      // Pushed one by one: joining them would copy every decoded byte once more.
      for (const piece of this.decoder.write(chunk)) this.push(piece);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.seen === 0) return done(emptyInput(this.codec));
    try {
      this.decoder.end();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

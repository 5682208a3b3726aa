// A Transform around an incremental frame decoder (snappy framing, LZ4 frames): each input chunk
// yields the complete blocks it finishes; end() rejects a truncated stream.
import { Transform, type TransformCallback } from 'node:stream';

export interface IncrementalDecoder {
  write(input: Buffer): Buffer[];
  end(): void;
}

export class DecoderTransform extends Transform {
  constructor(private readonly decoder: IncrementalDecoder) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      const out = this.decoder.write(chunk);
      if (out.length > 0) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.decoder.end();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

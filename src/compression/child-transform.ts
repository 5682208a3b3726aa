// A Transform that pipes through an external filter program (stdin → stdout) with back-pressure
// both ways: input waits for the child's stdin to drain, the child's stdout is paused while our
// readable side is full. The child is spawned on the first byte, killed on destroy; a non-zero
// exit fails the stream with the program's stderr.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

export interface ChildTransformOptions {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** What to emit when the input was empty (the child is then never started). */
  emptyOutput?: Buffer;
  /** Turns a failure into the error to report. */
  describe: (detail: string) => Error;
  /**
   * The program says nothing on stderr when all went well: a warning with exit status 0 is a
   * failure too (`bzip2 -d` warns of bytes after its stream and exits 0).
   */
  silentOnSuccess?: boolean;
}

export class ChildTransform extends Transform {
  private child: Child | null = null;
  private stderr = '';
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  private flushing = false;

  constructor(private readonly opts: ChildTransformOptions) {
    super();
  }

  private start(): Child {
    const child = spawn(this.opts.command, this.opts.args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: this.opts.env,
    });
    this.child = child;
    this.exit = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    child.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) child.stdout.pause();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += d.toString('utf8');
    });
    child.on('error', (err) => this.destroy(this.opts.describe(err.message)));
    // EPIPE when the child dies early: the exit status below carries the real reason.
    child.stdin.on('error', () => {});
    void this.exit.then(({ code, signal }) => {
      if (!this.flushing && !this.destroyed) this.destroy(this.failure(code, signal, 'exited before the end of input'));
    });
    return child;
  }

  private failure(code: number | null, signal: NodeJS.Signals | null, why: string): Error {
    const status = signal ? `signal ${signal}` : `exit status ${code}`;
    const detail = this.stderr.trim().replace(/\s+/g, ' ');
    return this.opts.describe(`${this.opts.command} ${why} (${status})${detail ? `: ${detail}` : ''}`);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length === 0) return done();
    const child = this.child ?? this.start();
    if (child.stdin.write(chunk)) done();
    else child.stdin.once('drain', () => done());
  }

  override _read(size: number): void {
    this.child?.stdout.resume();
    super._read(size);
  }

  override _flush(done: TransformCallback): void {
    this.flushing = true;
    if (!this.child || !this.exit) {
      if (this.opts.emptyOutput) this.push(this.opts.emptyOutput);
      return done();
    }
    this.child.stdin.end();
    this.exit.then(({ code, signal }) => {
      if (code !== 0) done(this.failure(code, signal, 'failed'));
      else if (this.opts.silentOnSuccess && this.stderr.trim() !== '') done(this.failure(code, signal, 'warned'));
      else done();
    }, done);
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    done(err);
  }
}

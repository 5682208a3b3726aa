// One HTTP/1.1 exchange over a kept-alive socket, for the lean S3 client. Not node:http: loading it
// and moving a 16 MiB answer through its parser and streams cost a fresh process ~35 ms more CPU
// than a socket reading straight into one buffer (measured, docs/benchmarks-history.md "One-shot WAL
// profile"), which is most of what a one-shot wal-restore spends above its floor. It does only what
// S3 needs: a request with a Content-Length (never a chunked request body), an answer framed by
// Content-Length, chunked encoding or the connection's end, strict limits on what it parses, and
// any answer that is not complete and well framed is an error — short data is never a success.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Readable } from 'node:stream';
import { exactChunks, isChunkedBody, type ChunkedBody } from './body.js';

/** Where requests go: one pool per origin. */
export interface Http1Origin {
  https: boolean;
  /** Host name or address to connect to (IPv6 without brackets); also the TLS server name. */
  hostname: string;
  port: number;
  /** Certificate authorities for TLS (verification is always on); Node's default when absent. */
  ca?: Array<string | Buffer>;
}

export interface Http1Limits {
  maxSockets: number;
  connectTimeoutMs: number;
  /** Longest time without a byte moving on the socket while an exchange is under way. */
  readTimeoutMs: number;
}

export interface Http1Request {
  method: string;
  path: string;
  /** Sent as given (Host included); Content-Length is set from the body. */
  headers: Record<string, string>;
  body?: Buffer | ChunkedBody;
  /** For a chunked body: its last byte is sent only once this resolves (PutOptions.commitGate). */
  gate?: Promise<void>;
  signal?: AbortSignal;
  /** Hand a 2xx answer's body over as a stream instead of one Buffer. */
  stream?: boolean;
  /** What a streamed body's reader gets for a failure after the answer was handed over. */
  streamError?: (e: Error) => Error;
  /** Size of a streamed body's pieces; STREAM_PIECE when absent. */
  pieceSize?: number;
}

export interface Http1Response {
  status: number;
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Record<string, string | undefined>;
  /** The whole body, unless it is streamed. */
  body: Buffer;
  stream?: Readable;
}

/** The most a status line and its header fields (or a chunked body's trailers) may take. */
const HEAD_LIMIT = 64 * 1024;
/**
 * A streamed body is handed on in pieces of this size (the last one shorter), each read in place.
 * Small, for memory: with 1 MiB pieces a 16 MiB wal-restore peaked at 66-67 MB RSS against 54-55
 * MB with 512 KiB (why, not found); with 128 KiB its compressed restores peak lowest (lz4 58, zstd
 * 60 MB against 60-66 with 256-512 KiB), at the same CPU (moto, docs/benchmarks-history.md).
 */
export const STREAM_PIECE = 128 * 1024;
const EMPTY = Buffer.alloc(0);

const coded = (message: string, code: string): Error => Object.assign(new Error(message), { code });
/** The answer cannot be read as HTTP/1.1: not retried, as node:http's parse errors were not. */
const malformed = (what: string): Error => coded(`malformed HTTP answer: ${what}`, 'ERR_HTTP1_MALFORMED');
/** The connection ended before a complete answer: retried as a reset connection. */
const cutShort = (what: string): Error => coded(`the connection closed ${what}`, 'ECONNRESET');

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Field values: visible characters, spaces and tabs, and obs-text; never CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/** Parses `Transfer-Encoding: chunked` data, handing on the payload; strict about every size line. */
class ChunkDecoder {
  /** Bytes left in the current chunk's data, or -1 while a size line (or the CRLF after data) is read. */
  private left = -1;
  private afterData = false;
  private line = '';
  private inTrailers = false;
  private trailerBytes = 0;
  done = false;

  /** Feeds bytes; returns how many were used (fewer than given only once the body is complete). */
  feed(buf: Buffer, emit: (data: Buffer) => void): number {
    let at = 0;
    while (at < buf.length && !this.done) {
      if (this.left > 0) {
        const n = Math.min(this.left, buf.length - at);
        emit(buf.subarray(at, at + n));
        at += n;
        this.left -= n;
        if (this.left === 0) {
          this.left = -1;
          this.afterData = true;
        }
        continue;
      }
      const lf = buf.indexOf(10, at);
      const end = lf < 0 ? buf.length : lf + 1;
      this.line += buf.toString('latin1', at, end);
      at = end;
      if (this.line.length > (this.inTrailers ? HEAD_LIMIT : 4096)) throw malformed(this.inTrailers ? 'trailers over 64 KiB' : 'chunk size line too long');
      if (lf < 0) break;
      if (!this.line.endsWith('\r\n')) throw malformed('bare LF in chunked body');
      const line = this.line.slice(0, -2);
      this.line = '';
      if (this.afterData) {
        if (line !== '') throw malformed('chunk data longer than its size');
        this.afterData = false;
      } else if (this.inTrailers) {
        this.trailerBytes += line.length + 2;
        if (this.trailerBytes > HEAD_LIMIT) throw malformed('trailers over 64 KiB');
        if (line === '') this.done = true;
        else if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$/.test(line)) throw malformed('bad trailer field');
      } else {
        const m = /^([0-9A-Fa-f]{1,12})[\t ]*(;.*)?$/.exec(line);
        if (!m || (m[2] !== undefined && !FIELD_VALUE.test(m[2]))) throw malformed(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
        const size = parseInt(m[1]!, 16);
        if (size === 0) this.inTrailers = true;
        else this.left = size;
      }
    }
    return at;
  }
}

/** The status line and header fields of an answer (the block without its final CRLF CRLF). */
function parseHead(block: string): { status: number; headers: Record<string, string | undefined>; version: string } {
  const lines = block.split('\r\n');
  const m = /^HTTP\/(1\.[01]) ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(lines[0]!);
  if (!m) throw malformed(`bad status line ${JSON.stringify(lines[0]!.slice(0, 60))}`);
  const headers: Record<string, string | undefined> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw malformed(`bad header field ${JSON.stringify(line.slice(0, 60))}`);
    const key = name.toLowerCase();
    const had = headers[key];
    headers[key] = had === undefined ? value : `${had}, ${value}`;
  }
  return { status: Number(m[2]), headers, version: m[1]! };
}

/** How the answer's body ends (RFC 9112 section 6.3), or a malformed-answer error. */
function framing(method: string, status: number, headers: Record<string, string | undefined>): Framing {
  if (method === 'HEAD' || status === 204 || status === 304) return { kind: 'none' };
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    if (headers['content-length'] !== undefined) throw malformed('both Transfer-Encoding and Content-Length');
    if (!/^chunked$/i.test(te.trim())) throw malformed(`unsupported Transfer-Encoding ${JSON.stringify(te)}`);
    return { kind: 'chunked' };
  }
  const cl = headers['content-length'];
  if (cl === undefined) return { kind: 'close' };
  const values = new Set(cl.split(',').map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || !/^\d{1,15}$/.test(only!)) throw malformed(`bad Content-Length ${JSON.stringify(cl.slice(0, 40))}`);
  const left = Number(only);
  return left === 0 ? { kind: 'none' } : { kind: 'length', left };
}

interface Connection {
  socket: Socket;
  /** The exchange the connection serves, if any. */
  exchange?: Exchange;
  /** Where the status line and headers are read (and chunked bodies, a piece at a time). */
  head: Buffer;
}

/** One request and its answer on one connection. */
class Exchange {
  private headLength = 0;
  private phase: 'head' | 'body' | 'done' = 'head';
  private frame: Framing = { kind: 'none' };
  private status = 0;
  private version = '';
  private headers: Record<string, string | undefined> = {};
  /** Buffered body: one Buffer of the announced length, or pieces when the length is not known. */
  private whole?: Buffer;
  private filled = 0;
  private pieces: Buffer[] = [];
  private decoder?: ChunkDecoder;
  private stream?: Readable;
  /** The piece being filled for a streamed body. */
  private piece?: Buffer;
  /** Every byte of the request was handed to the socket. */
  private written = false;
  private reusable = true;
  private settled = false;
  failed = false;

  constructor(
    private readonly pool: Http1Pool,
    private readonly conn: Connection,
    private readonly req: Http1Request,
    private readonly resolve: (r: Http1Response) => void,
    private readonly reject: (e: Error) => void,
    /** Called once, when the exchange is over (answered whole, failed or abandoned). */
    private readonly onOver: () => void,
  ) {}

  /** Where the next read lands: straight into the body's buffer when its length is known. */
  target(): Buffer {
    if (this.phase === 'head') return this.conn.head.subarray(this.headLength);
    if (this.frame.kind === 'length' || this.frame.kind === 'close') {
      if (this.whole) return this.whole.subarray(this.filled);
      if (this.stream) {
        if (!this.piece || this.filled === this.piece.length) {
          const size = this.req.pieceSize ?? STREAM_PIECE;
          const left = this.frame.kind === 'length' ? this.frame.left : size;
          this.piece = Buffer.allocUnsafeSlow(Math.min(left, size));
          this.filled = 0;
        }
        return this.piece.subarray(this.filled);
      }
    }
    return this.conn.head;
  }

  /** `n` bytes were read into the buffer target() gave. */
  received(buf: Buffer, n: number): void {
    try {
      if (this.phase === 'head') {
        const from = Math.max(0, this.headLength - 3);
        this.headLength += n;
        const end = this.conn.head.indexOf('\r\n\r\n', from, 'latin1');
        if (end < 0 || end + 4 > this.headLength) {
          if (this.headLength >= HEAD_LIMIT) throw malformed('header block over 64 KiB');
          return;
        }
        this.answerHead(end);
        return;
      }
      this.bodyBytes(buf.subarray(0, n), true);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private answerHead(end: number): void {
    const head = this.conn.head;
    const { status, headers, version } = parseHead(head.toString('latin1', 0, end));
    const rest = head.subarray(end + 4, this.headLength);
    if (status < 200) {
      // An interim answer (100 Continue): the real one follows.
      if (status === 101) throw malformed('unexpected 101 Switching Protocols');
      rest.copy(head);
      this.headLength = rest.length;
      const next = head.indexOf('\r\n\r\n', 0, 'latin1');
      if (next >= 0 && next + 4 <= this.headLength) this.answerHead(next);
      return;
    }
    this.status = status;
    this.headers = headers;
    this.version = version;
    this.frame = framing(this.req.method, status, headers);
    const connection = (headers.connection ?? '').toLowerCase();
    if (version === '1.0' ? !/\bkeep-alive\b/.test(connection) : /\bclose\b/.test(connection)) this.reusable = false;
    this.phase = 'body';
    // An empty 2xx body (Content-Length: 0) is streamed too: the reader gets a stream that ends at once.
    const streamed = this.req.stream === true && status < 300;
    if (streamed) {
      this.stream = new Readable({
        highWaterMark: this.req.pieceSize ?? STREAM_PIECE,
        read: () => {
          if (this.phase !== 'done') this.conn.socket.resume();
        },
        destroy: (err, cb) => {
          if (this.phase !== 'done') this.abandon();
          cb(err);
        },
      });
    } else if (this.frame.kind === 'length') {
      this.whole = this.frame.left <= 4096 ? Buffer.allocUnsafe(this.frame.left) : Buffer.allocUnsafeSlow(this.frame.left);
    }
    if (this.frame.kind === 'chunked') this.decoder = new ChunkDecoder();
    if (streamed) {
      this.settled = true;
      this.resolve({ status, headers, body: EMPTY, stream: this.stream });
    }
    if (this.frame.kind === 'none') {
      if (rest.length > 0) this.reusable = false;
      this.complete();
      return;
    }
    if (rest.length > 0) this.bodyBytes(rest, false);
  }

  /**
   * Body bytes: read in place (`inPlace`, into target()) or left over from the header block.
   * Never more than the framing allows is taken; anything after it means the connection is not reused.
   */
  private bodyBytes(data: Buffer, inPlace: boolean): void {
    const frame = this.frame;
    if (frame.kind === 'chunked') {
      const used = this.decoder!.feed(data, (d) => this.deliver(d, false));
      if (this.decoder!.done) {
        if (used < data.length) this.reusable = false;
        this.complete();
      }
      return;
    }
    let take = data;
    if (frame.kind === 'length') {
      if (data.length > frame.left) {
        this.reusable = false;
        take = data.subarray(0, frame.left);
      }
    }
    // Delivered before the count drops: a piece for left-over bytes is sized from what is left.
    this.deliver(take, inPlace);
    if (frame.kind === 'length') {
      frame.left -= take.length;
      if (frame.left === 0) this.complete();
    }
  }

  /** Payload bytes, in order: into the whole buffer, the stream's current piece, or the piece list. */
  private deliver(data: Buffer, inPlace: boolean): void {
    if (this.whole) {
      if (!inPlace) data.copy(this.whole, this.filled);
      this.filled += data.length;
    } else if (this.stream) {
      if (this.frame.kind === 'chunked') {
        // Chunked data was read into the shared head buffer: copied out, as the stream keeps it.
        if (data.length > 0 && !this.stream.push(Buffer.from(data))) this.conn.socket.pause();
        return;
      }
      if (!inPlace) {
        // Left over from the header block: into the first piece.
        let at = 0;
        while (at < data.length) {
          const room = this.target();
          const n = data.copy(room, 0, at);
          at += n;
          this.filled += n;
          this.flushPiece(false);
        }
        return;
      }
      this.filled += data.length;
      this.flushPiece(false);
    } else {
      // Read into the connection's head buffer, which the next read reuses: kept as a copy.
      this.pieces.push(Buffer.from(data));
    }
  }

  /** Hands the stream its piece once full (or, at the end, what there is of it). */
  private flushPiece(atEnd: boolean): void {
    const piece = this.piece;
    if (!piece || !this.stream || this.filled === 0) return;
    if (this.filled < piece.length && !atEnd) return;
    this.piece = undefined;
    const out = this.filled === piece.length ? piece : piece.subarray(0, this.filled);
    this.filled = 0;
    if (!this.stream.push(out)) this.conn.socket.pause();
  }

  /** The connection ended (FIN): the end of a body framed by it, else an answer cut short. */
  ended(): void {
    if (this.phase === 'body' && this.frame.kind === 'close') {
      this.reusable = false;
      this.complete();
      return;
    }
    this.fail(cutShort(this.phase === 'head' ? 'before an answer (socket hang up)' : 'before the answer was complete'));
  }

  /** Every byte of the request has been passed to socket.write(). */
  requestWritten(): void {
    this.written = true;
  }

  private complete(): void {
    this.phase = 'done';
    if (this.stream) {
      this.flushPiece(true);
      this.stream.push(null);
    } else if (!this.settled) {
      this.settled = true;
      const body = this.whole ?? (this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces));
      this.resolve({ status: this.status, headers: this.headers, body });
    }
    this.onOver();
    // An answer before the whole request was sent (an early 403): the request is cut off.
    const sent = this.written && this.conn.socket.writableLength === 0;
    this.pool.release(this.conn, this.reusable && sent && this.version === '1.1');
  }

  /** Failure: the caller (or the stream's reader) gets the error; the connection is dropped. */
  fail(e: Error): void {
    if (this.failed || this.phase === 'done') return;
    this.failed = true;
    this.phase = 'done';
    if (!this.settled) {
      this.settled = true;
      this.reject(e);
    } else if (this.stream && !this.stream.destroyed) {
      this.stream.destroy(this.req.streamError ? this.req.streamError(e) : e);
    }
    this.onOver();
    this.pool.release(this.conn, false);
  }

  /** The reader gave up on a streamed body: the rest is not read. */
  private abandon(): void {
    this.failed = true;
    this.phase = 'done';
    this.onOver();
    this.pool.release(this.conn, false);
  }

  get over(): boolean {
    return this.phase === 'done';
  }
}

/** Sockets kept alive to one origin, at most `maxSockets` at a time; callers beyond wait for one. */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly waiting: Array<() => void> = [];
  private readonly all = new Set<Connection>();
  private closed = false;

  constructor(
    private readonly origin: Http1Origin,
    private readonly limits: Http1Limits,
  ) {}

  /** One exchange. Rejects with an Error carrying a Node-style `code` on any transport failure. */
  request(req: Http1Request): Promise<Http1Response> {
    return new Promise<Http1Response>((resolve, reject) => {
      const { signal } = req;
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      let exchange: Exchange | undefined;
      let waiter: (() => void) | undefined;
      // Until connected, as node:http's timeout around its agent was: waiting for a socket counts.
      const connectTimer = setTimeout(() => {
        const e = coded(`no connection within ${this.limits.connectTimeoutMs} ms`, 'ERR_SOCKET_CONNECTION_TIMEOUT');
        if (exchange) exchange.fail(e);
        else {
          this.unwait(waiter);
          reject(e);
        }
      }, this.limits.connectTimeoutMs);
      const onAbort = () => {
        clearTimeout(connectTimer);
        if (exchange) exchange.fail(abortError(signal!));
        else {
          this.unwait(waiter);
          reject(abortError(signal!));
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(connectTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      // A streamed body is still read after the promise settles: the signal and timers stay until it ends.
      const start = () => {
        waiter = undefined;
        if (this.closed) {
          done();
          reject(coded('the connection pool is closed', 'ECONNABORTED'));
          return;
        }
        const conn = this.idle.pop() ?? this.connect(() => clearTimeout(connectTimer));
        if (!conn.socket.connecting) clearTimeout(connectTimer);
        exchange = new Exchange(this, conn, req, resolve, reject, done);
        conn.exchange = exchange;
        conn.socket.ref();
        conn.socket.setTimeout(this.limits.readTimeoutMs);
        this.write(conn, exchange, req);
      };
      if (this.idle.length > 0 || this.all.size < this.limits.maxSockets) start();
      else this.waiting.push((waiter = start));
    });
  }

  private unwait(waiter?: () => void): void {
    const at = waiter ? this.waiting.indexOf(waiter) : -1;
    if (at >= 0) this.waiting.splice(at, 1);
  }

  private connect(connected: () => void): Connection {
    const { https, hostname, port, ca } = this.origin;
    const conn: Connection = { socket: undefined as unknown as Socket, head: Buffer.allocUnsafeSlow(HEAD_LIMIT) };
    const onread = {
      // Called after every read for where the next one lands.
      buffer: () => conn.exchange?.target() ?? conn.head,
      callback: (n: number, buf: Buffer) => {
        if (conn.exchange && !conn.exchange.over) conn.exchange.received(buf, n);
        else this.drop(conn); // bytes nobody asked for: the connection cannot be trusted
        return true;
      },
    };
    conn.socket = https
      ? tlsConnect({ host: hostname, port, servername: isIP(hostname) ? undefined : hostname, ca, onread, noDelay: true } as ConnectionOptions)
      : netConnect({ host: hostname, port, onread, noDelay: true });
    const socket = conn.socket;
    socket.once('connect', connected);
    socket.on('timeout', () => conn.exchange?.fail(coded(`no data for ${this.limits.readTimeoutMs} ms`, 'ETIMEDOUT')));
    socket.on('end', () => {
      if (conn.exchange && !conn.exchange.over) conn.exchange.ended();
      this.drop(conn);
    });
    socket.on('error', (e) => {
      conn.exchange?.fail(e);
      this.drop(conn);
    });
    socket.on('close', () => {
      conn.exchange?.fail(cutShort('before the answer was complete'));
      this.drop(conn);
    });
    this.all.add(conn);
    return conn;
  }

  /** Sends the request: head and a Buffer body in one go, a chunked body a chunk at a time. */
  private write(conn: Connection, exchange: Exchange, req: Http1Request): void {
    const { socket } = conn;
    const body = req.body;
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(req.headers)) {
      if (name.toLowerCase() === 'content-length') continue;
      if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) {
        exchange.fail(coded(`header ${JSON.stringify(name)} cannot be sent`, 'ERR_INVALID_CHAR'));
        return;
      }
      head += `${name}: ${value}\r\n`;
    }
    if (body || req.method === 'PUT' || req.method === 'POST') head += `Content-Length: ${body?.length ?? 0}\r\n`;
    head += '\r\n';
    const fail = (e: Error | null | undefined) => {
      if (e) exchange.fail(e);
    };
    if (!isChunkedBody(body)) {
      if (body && body.length > 0 && body.length <= 64 * 1024) {
        socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]), fail);
      } else {
        socket.cork();
        socket.write(head, 'latin1', fail);
        if (body && body.length > 0) socket.write(body, fail);
        socket.uncork();
      }
      exchange.requestWritten();
      return;
    }
    socket.write(head, 'latin1', fail);
    sendChunks(socket, exchange, body, req.gate).then(
      () => exchange.requestWritten(),
      (e: unknown) => exchange.fail(e as Error),
    );
  }

  /** After an exchange: back to the idle list, or destroyed; then the next waiter goes. */
  release(conn: Connection, reuse: boolean): void {
    if (!this.all.has(conn)) return;
    conn.exchange = undefined;
    if (reuse && !this.closed && !conn.socket.destroyed) {
      conn.socket.setTimeout(0);
      conn.socket.resume();
      // An idle socket does not keep the process alive (node:http's agent does the same).
      conn.socket.unref();
      this.idle.push(conn);
    } else {
      this.drop(conn);
      return;
    }
    this.waiting.shift()?.();
  }

  private drop(conn: Connection): void {
    if (!this.all.delete(conn)) return;
    const at = this.idle.indexOf(conn);
    if (at >= 0) this.idle.splice(at, 1);
    conn.socket.destroy();
    this.waiting.shift()?.();
  }

  destroy(): void {
    this.closed = true;
    for (const conn of [...this.all]) {
      conn.exchange?.fail(coded('the connection pool was closed', 'ECONNABORTED'));
      this.drop(conn);
    }
    for (const w of this.waiting.splice(0)) w();
  }
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR', cause: signal.reason as unknown });
}

/**
 * Writes a chunked body. A chunk is valid only until the next is read, so each write must have
 * reached the socket (its callback) before the next chunk is asked for. With a gate, the bytes from
 * the body's `gateAt` (its last byte by default) wait for it (PutOptions.commitGate): the server
 * has no complete body before.
 */
async function sendChunks(socket: Socket, exchange: Exchange, body: ChunkedBody, gate?: Promise<void>): Promise<void> {
  const write = (chunk: Buffer) => new Promise<void>((resolve, reject) => socket.write(chunk, (e) => (e ? reject(e) : resolve())));
  const gateAt = body.gateAt ?? body.length - 1;
  let waiting = gate;
  let sent = 0;
  for (const chunk of exactChunks(body)) {
    if (exchange.over) return;
    if (waiting && sent + chunk.length > gateAt) {
      const before = Math.max(0, gateAt - sent);
      if (before > 0) await write(chunk.subarray(0, before));
      await waiting;
      waiting = undefined;
      if (exchange.over) return;
      await write(chunk.subarray(before));
    } else {
      await write(chunk);
    }
    sent += chunk.length;
  }
  if (waiting) await waiting;
}

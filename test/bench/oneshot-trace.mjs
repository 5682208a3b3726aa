// Preload (node --import) for test/bench/oneshot-profile.mjs: a timeline of one WAL command's
// process, written as one JSON line to the file named by BC_ONESHOT_TRACE. It patches Node's own
// modules before the program loads, so nothing in src/ knows about it:
//   boot      Node's own start, up to this preload
//   requests  each HTTP request: when it was issued, when its body was handed to the socket
//             ('finish'), when the answer's headers came (the server's time: it has the whole body
//             by then) and when the answer ended
//   hash      CPU time inside createHash().update/digest, by algorithm
//   read      time inside fs.readSync / fs.read (the WAL file's bytes)
//   lz4       time from lz4-napi block calls to their results (thread pool), when it is loaded
//   exit      the 'exit' event
// All times are ms since the process started (performance.now()).
import { createRequire, syncBuiltinESMExports } from 'node:module';

const out = process.env.BC_ONESHOT_TRACE;
if (out) {
  const require = createRequire(import.meta.url);
  const fs = require('node:fs');
  const crypto = require('node:crypto');
  const http = require('node:http');
  const now = () => performance.now();
  const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const trace = { boot: now(), requests: [], hash: {}, read: 0, lz4: { calls: 0, busy: 0, first: null, last: null } };

  const createHash = crypto.createHash;
  crypto.createHash = function (alg, ...rest) {
    const h = createHash.call(this, alg, ...rest);
    const update = h.update;
    const digest = h.digest;
    const add = (t) => (trace.hash[alg] = (trace.hash[alg] ?? 0) + t);
    h.update = function (...a) {
      const t = now();
      const r = update.apply(this, a);
      add(now() - t);
      return r;
    };
    h.digest = function (...a) {
      const t = now();
      const r = digest.apply(this, a);
      add(now() - t);
      return r;
    };
    return h;
  };
  for (const name of ['readSync']) {
    const orig = fs[name];
    fs[name] = function (...a) {
      const t = now();
      try {
        return orig.apply(this, a);
      } finally {
        trace.read += now() - t;
      }
    };
  }
  syncBuiltinESMExports();

  // lz4-napi is CommonJS: an ESM import of it takes module.exports from the same cache, so
  // wrapping it here is what the program gets. Only when asked (it costs its load time).
  if (process.env.BC_ONESHOT_TRACE_LZ4) {
    try {
      const lz4 = require(require.resolve('lz4-napi', { paths: [process.cwd(), new URL('../..', import.meta.url).pathname] }));
      const compress = lz4.compress;
      lz4.compress = function (...a) {
        const t = now();
        trace.lz4.calls++;
        trace.lz4.first ??= t;
        return compress.apply(this, a).then((r) => {
          trace.lz4.busy += now() - t;
          trace.lz4.last = now();
          return r;
        });
      };
    } catch {}
  }

  // Every client request (https.request goes through http.ClientRequest too).
  const onRequest = (req, start) => {
    const r = { method: req.method, path: String(req.path).replace(/\?.*$/, (q) => (q.includes('list-type') ? '?list' : '?…')), start };
    trace.requests.push(r);
    req.once('finish', () => (r.sent = now()));
    req.once('response', (res) => {
      r.headers = now();
      r.status = res.statusCode;
      res.once('end', () => (r.end = now()));
    });
  };
  // Wrapped at the call, not through the 'http.client.request.start' channel: that one fires
  // only once the body has been written.
  for (const mod of [http, require('node:https')]) {
    const request = mod.request;
    mod.request = function (...a) {
      const t = now();
      const req = request.apply(this, a);
      onRequest(req, t);
      return req;
    };
  }
  // The lean S3 client speaks HTTP/1.1 on net sockets itself (src/storage/http1.ts): a request is
  // a write starting with a method; 'sent' is the callback of its last write before the answer's
  // first byte (headers), 'end' the last byte read before the socket's next request.
  const net = require('node:net');
  const connect = net.connect;
  net.connect = function (options, ...rest) {
    let current;
    const onread = options?.onread;
    if (onread?.callback) {
      const callback = onread.callback;
      onread.callback = function (n, buf) {
        const t = now();
        if (current) {
          current.headers ??= t;
          current.end = t;
          current.status ??= Number(/^HTTP\/1\.\d (\d{3})/.exec(buf.toString('latin1', 0, Math.min(n, 16)))?.[1]) || undefined;
        }
        return callback.call(this, n, buf);
      };
    }
    const socket = connect.call(this, options, ...rest);
    const write = socket.write;
    socket.write = function (chunk, ...a) {
      const head = typeof chunk === 'string' ? chunk.slice(0, 200) : Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, 200)).toString('latin1');
      const m = /^(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP\/1\.1\r\n/.exec(head);
      if (m) {
        current = { method: m[1], path: m[2].replace(/\?.*$/, (q) => (q.includes('list-type') ? '?list' : '?…')), start: now() };
        if (trace.requests.length === 0) trace.cpuAtFirst = cpuMs();
        trace.requests.push(current);
      }
      const r = current;
      const cb = a.findIndex((x) => typeof x === 'function');
      const done = () => { if (r && r.headers === undefined) r.sent = now(); };
      if (cb >= 0) {
        const f = a[cb];
        a[cb] = function (...e) { done(); return f.apply(this, e); };
      } else a.push(done);
      return write.call(this, chunk, ...a);
    };
    return socket;
  };
  trace.cpu = { boot: cpuMs() };
  syncBuiltinESMExports();

  process.on('exit', () => {
    trace.exit = now();
    trace.cpu.exit = cpuMs();
    trace.cpu.first = trace.requests.length ? trace.cpuAtFirst : undefined;
    fs.appendFileSync(out, `${JSON.stringify(trace)}\n`);
  });
}

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
  syncBuiltinESMExports();

  process.on('exit', () => {
    trace.exit = now();
    fs.appendFileSync(out, `${JSON.stringify(trace)}\n`);
  });
}

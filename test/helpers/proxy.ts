// Loopback proxies put between our executables and a real server, to make the server misbehave in
// one precise way: an HTTP proxy that refuses chosen S3 requests as S3 does (403 AccessDenied) and
// forwards the rest, a TCP proxy that stalls or resets connections, and an HTTPS proxy that plays
// Azure's customer-provided-key rules in front of azurite (which does not implement them).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';

export interface Proxy {
  url: string;
  close: () => Promise<void>;
}

/** A request as the S3 proxy's `refuse` sees it: the body is read whole before deciding. */
export interface ProxiedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An S3 error answer other than the default 403 AccessDenied; or, with `page`, that page (text/html, or `type`) in its place. */
export interface S3Refusal {
  status: number;
  code: string;
  message: string;
  page?: string;
  type?: string;
}

/** Whether a request is S3's bulk delete (DeleteObjects: POST ?delete). */
export function isBulkDelete(r: ProxiedRequest): boolean {
  return r.method === 'POST' && /[?&]delete(=|&|$)/.test(r.url);
}

/** The keys a bulk delete's body names, in its order. */
export function deletedKeys(r: ProxiedRequest): string[] {
  return [...r.body.toString('utf8').matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!);
}

/** Whether a request deletes WAL objects: a DELETE under wals/, or a bulk delete naming one. */
export function isWalDelete(r: ProxiedRequest): boolean {
  return (r.method === 'DELETE' && r.url.includes('/wals/')) || (r.method === 'POST' && /[?&]delete/.test(r.url) && r.body.includes('/wals/'));
}

/**
 * Orders requests between processes (two commands racing on one store): a request is refused or
 * forwarded once `hold`'s promise settles, and `answered` hears of each forwarded answer's status
 * as it is passed on.
 */
export interface S3ProxyHooks {
  hold?: (r: ProxiedRequest) => Promise<void> | undefined;
  answered?: (r: ProxiedRequest, status: number) => void;
}

/**
 * An HTTP proxy to the S3 server on `targetPort`: a request for which `refuse` returns true gets
 * S3's 403 AccessDenied (no body for HEAD), or the S3Refusal it returns; any other is forwarded with
 * the body `alter` returns (unchanged by default; same headers, so a changed body should keep its length).
 */
export async function startS3Proxy(
  targetPort: number,
  refuse: (r: ProxiedRequest) => boolean | S3Refusal,
  alter: (r: ProxiedRequest) => Buffer = (r) => r.body,
  hooks: S3ProxyHooks = {},
): Promise<Proxy> {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method ?? 'GET', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      const answer = () => {
        const refusal = refuse(r);
        if (refusal) {
          const { status, code, message, page, type } = refusal === true ? { status: 403, code: 'AccessDenied', message: 'Access Denied', page: undefined, type: undefined } : refusal;
          res.writeHead(status, { 'content-type': page === undefined ? 'application/xml' : type ?? 'text/html' });
          res.end(r.method === 'HEAD' ? undefined : page ?? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
          return;
        }
        const up = httpRequest({ host: '127.0.0.1', port: targetPort, method: r.method, path: r.url, headers: req.headers }, (response) => {
          res.writeHead(response.statusCode ?? 502, response.headers);
          response.pipe(res);
          response.on('end', () => hooks.answered?.(r, response.statusCode ?? 502));
        });
        up.on('error', () => res.destroy());
        up.end(alter(r));
      };
      const held = hooks.hold?.(r);
      if (held) void held.then(answer, () => res.destroy());
      else answer();
    });
  });
  return listening(server);
}

/** `server` listening on a loopback port, as a Proxy whose close() also ends its open connections. */
async function listening(server: Server): Promise<Proxy> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export type TcpProxyMode = 'stall-upload' | 'stall-download' | 'reset-first' | 'slow-download';

/**
 * A TCP proxy to `targetUrl`'s host and port: `stall-upload` stops reading from the client after
 * `stallAfter` bytes, `stall-download` stops passing the server's bytes on after as many, and
 * `reset-first` resets the first connection on its first bytes. `slow-download` passes the
 * server's bytes on at `stallAfter` bytes per second, a piece every 100 ms: slow enough to never
 * finish, never silent long enough for a read timeout.
 */
export async function startTcpProxy(targetUrl: string, mode: TcpProxyMode, stallAfter = 0): Promise<Proxy & { connections: () => number }> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createTcpServer((client) => {
    const n = ++count;
    sockets.add(client);
    client.on('error', () => {});
    if (mode === 'reset-first' && n === 1) {
      client.once('data', () => client.resetAndDestroy());
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    // A slow download still has bytes to pass on when the server is done.
    if (mode !== 'slow-download') upstream.on('close', () => client.destroy());
    let up = 0;
    let down = 0;
    client.on('data', (chunk: Buffer) => {
      up += chunk.length;
      if (mode === 'stall-upload' && up > stallAfter) {
        client.pause(); // stop reading: the client's writes back up, nothing moves
        return;
      }
      upstream.write(chunk);
    });
    if (mode === 'slow-download') {
      const queue: Buffer[] = [];
      const piece = Math.max(1, Math.floor(stallAfter / 10));
      let upstreamClosed = false;
      const timer = setInterval(() => {
        if (upstreamClosed && queue.length === 0) {
          client.end();
          clearInterval(timer);
          return;
        }
        let budget = piece;
        while (budget > 0 && queue.length > 0) {
          const head = queue[0]!;
          const part = head.subarray(0, budget);
          client.write(part);
          budget -= part.length;
          if (part.length === head.length) queue.shift();
          else queue[0] = head.subarray(part.length);
        }
      }, 100);
      upstream.on('data', (chunk: Buffer) => queue.push(chunk));
      upstream.on('close', () => (upstreamClosed = true));
      client.on('close', () => clearInterval(timer));
      return;
    }
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length;
      if (mode === 'stall-download' && down > stallAfter) {
        upstream.pause(); // stop sending: the client waits for bytes that never come
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** One request the Azure CPK proxy saw, with what it carried of a customer-provided key. */
export interface CpkRequest {
  method: string;
  /** The path (container/blob), without the query. */
  path: string;
  /** The `comp` query parameter (`block`, `blocklist`, `list`, …), '' for plain blob requests. */
  comp: string;
  /** x-ms-encryption-key-sha256 as sent, or undefined. */
  keySha256?: string;
  /** x-ms-encryption-algorithm as sent, or undefined. */
  algorithm?: string;
}

/**
 * An HTTPS proxy (certificate from `tls`) to azurite on `targetPort` that enforces Azure's
 * customer-provided key (CPK) rules, which azurite ignores (in its default strict mode it refuses
 * the headers): a write that carries a key must carry all three x-ms-encryption-* headers, AES256
 * and a SHA-256 that matches the key (else 400); a blob written with a key remembers its SHA-256;
 * a GET or HEAD of it without the key is refused with 409 BlobUsesCustomerSpecifiedEncryption, as
 * Azure documents, and with another key with 409 too (Azure's error code for a mismatch is not in
 * the documented table: the proxy's code `TestProxyCustomerKeyMismatch` is ours). Everything else
 * is forwarded unchanged (azurite runs with --loose, so it accepts and ignores the headers; they
 * are part of the Shared Key signature, so they must not be stripped). `requests` records each one.
 */
export async function startAzureCpkProxy(targetPort: number, tls: { certFile: string; keyFile: string }): Promise<Proxy & { requests: CpkRequest[] }> {
  const requests: CpkRequest[] = [];
  const blobKeys = new Map<string, string | null>();
  const refuse = (res: ServerResponse, method: string, status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/xml', 'x-ms-error-code': code });
    res.end(method === 'HEAD' ? undefined : `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
  };
  const header = (req: IncomingMessage, name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const server = createHttpsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'https://x');
      const comp = url.searchParams.get('comp') ?? '';
      const isBlob = !url.searchParams.has('restype');
      const key = header(req, 'x-ms-encryption-key');
      const sha = header(req, 'x-ms-encryption-key-sha256');
      const algorithm = header(req, 'x-ms-encryption-algorithm');
      requests.push({ method, path: url.pathname, comp, ...(sha !== undefined ? { keySha256: sha } : {}), ...(algorithm !== undefined ? { algorithm } : {}) });
      const writing = method === 'PUT' && isBlob && (comp === '' || comp === 'block' || comp === 'blocklist');
      if (key !== undefined || sha !== undefined || algorithm !== undefined) {
        const raw = Buffer.from(key ?? '', 'base64');
        if (raw.length !== 32 || sha !== createHash('sha256').update(raw).digest('base64') || (writing && algorithm !== 'AES256')) {
          refuse(res, method, 400, 'InvalidHeaderValue', 'The value for one of the HTTP headers is not in the correct format.');
          return;
        }
      }
      const reading = (method === 'GET' || method === 'HEAD') && isBlob && (comp === '' || comp === 'metadata');
      const stored = blobKeys.get(url.pathname);
      if (reading && stored) {
        if (sha === undefined) {
          refuse(res, method, 409, 'BlobUsesCustomerSpecifiedEncryption', 'The blob is encrypted with customer specified encryption, but it was not provided in the request.');
          return;
        }
        if (sha !== stored) {
          refuse(res, method, 409, 'TestProxyCustomerKeyMismatch', 'The customer-provided key does not match the one the blob was written with.');
          return;
        }
      }
      const up = httpRequest({ host: '127.0.0.1', port: targetPort, method, path: req.url, headers: req.headers }, (answer) => {
        const ok = (answer.statusCode ?? 500) < 300;
        if (ok && method === 'PUT' && isBlob && (comp === '' || comp === 'blocklist')) blobKeys.set(url.pathname, sha ?? null);
        if (ok && method === 'DELETE' && isBlob && comp === '') blobKeys.delete(url.pathname);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * A forward proxy as users run one (squid, a corporate egress proxy): requests in absolute form are
 * forwarded, CONNECT opens a tunnel. Each is recorded as `GET http://host:port/...` or
 * `CONNECT host:port` with its Proxy-Authorization; with `credentials`, anything else gets 407.
 */
export async function startForwardProxy(credentials?: string): Promise<Proxy & { seen: { line: string; auth?: string }[] }> {
  const seen: { line: string; auth?: string }[] = [];
  const expected = credentials ? `Basic ${Buffer.from(credentials).toString('base64')}` : undefined;
  const server = createHttpServer((req, res) => {
    const auth = req.headers['proxy-authorization'];
    seen.push({ line: `${req.method} ${req.url}`, auth });
    if (expected && auth !== expected) {
      req.resume();
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' });
      res.end();
      return;
    }
    const target = new URL(req.url ?? '/');
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers.expect; // answered here (Node's server sends 100 Continue), as squid does
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: `${target.pathname}${target.search}`, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  // Tunnels leave the server's keeping once opened: closed by hand in close().
  const tunnels = new Set<Socket>();
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    tunnels.add(client);
    client.on('close', () => tunnels.delete(client));
    const auth = req.headers['proxy-authorization'];
    seen.push({ line: `CONNECT ${req.url}`, auth });
    if (expected && auth !== expected) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    const up = connect(Number(port), host!, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    close: async () => {
      for (const t of tunnels) t.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A server's answer as the answer proxy's `rewrite` sees it and returns it: the body read whole. */
export interface ProxiedAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * An HTTP proxy to the server on `targetPort` that forwards every request unchanged and hands the
 * server's whole answer to `rewrite` before passing it on: a server, or something in front of it,
 * that lies in its answers. Takes requests in origin form (the proxy as the endpoint) and in
 * absolute form (the proxy as HTTP_PROXY). Content-Length is set to the body returned. `forward`
 * may change the path and query sent on (a token the server would refuse, taken out).
 */
export async function startAnswerProxy(
  targetPort: number,
  rewrite: (request: { method: string; url: string; headers: IncomingHttpHeaders }, answer: ProxiedAnswer) => ProxiedAnswer,
  forward: (url: string) => string = (url) => url,
): Promise<Proxy> {
  const server = createHttpServer((req, res) => {
    const asked = (req.url ?? '/').startsWith('/') ? req.url ?? '/' : (() => { const u = new URL(req.url!); return `${u.pathname}${u.search}`; })();
    const path = forward(asked);
    const headers = { ...req.headers };
    delete headers.expect; // answered here (Node's server sends 100 Continue)
    const up = httpRequest({ host: '127.0.0.1', port: targetPort, method: req.method, path, headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const out = rewrite({ method: req.method ?? 'GET', url: path, headers: req.headers }, { status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) });
        const outHeaders = { ...out.headers };
        delete outHeaders['transfer-encoding'];
        if (req.method !== 'HEAD') outHeaders['content-length'] = String(out.body.length);
        res.writeHead(out.status, outHeaders);
        res.end(req.method === 'HEAD' ? undefined : out.body);
      });
      answer.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return listening(server);
}

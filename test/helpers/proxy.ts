// Loopback proxies put between our executables and a real server, to make the server misbehave in
// one precise way: an HTTP proxy that refuses chosen S3 requests as S3 does (403 AccessDenied) and
// forwards the rest, and a TCP proxy that stalls or resets connections.
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';

export interface Proxy {
  url: string;
  close: () => Promise<void>;
}

/** A request as the S3 proxy's `refuse` sees it: the body is read whole before deciding. */
export interface ProxiedRequest {
  method: string;
  url: string;
  body: Buffer;
}

/** Whether a request deletes WAL objects: a DELETE under wals/, or a bulk delete naming one. */
export function isWalDelete(r: ProxiedRequest): boolean {
  return (r.method === 'DELETE' && r.url.includes('/wals/')) || (r.method === 'POST' && /[?&]delete/.test(r.url) && r.body.includes('/wals/'));
}

/**
 * An HTTP proxy to the S3 server on `targetPort`: a request for which `refuse` returns true gets
 * S3's 403 AccessDenied (no body for HEAD), any other is forwarded unchanged.
 */
export async function startS3Proxy(targetPort: number, refuse: (r: ProxiedRequest) => boolean): Promise<Proxy> {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method ?? 'GET', url: req.url ?? '', body: Buffer.concat(chunks) };
      if (refuse(r)) {
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end(r.method === 'HEAD' ? undefined : '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
        return;
      }
      const up = httpRequest({ host: '127.0.0.1', port: targetPort, method: r.method, path: r.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(r.body);
    });
  });
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

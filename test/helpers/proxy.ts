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
 * S3's 403 AccessDenied (no body for HEAD), any other is forwarded with the body `alter` returns
 * (unchanged by default; same headers, so a changed body should keep its length).
 */
export async function startS3Proxy(
  targetPort: number,
  refuse: (r: ProxiedRequest) => boolean,
  alter: (r: ProxiedRequest) => Buffer = (r) => r.body,
): Promise<Proxy> {
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
      up.end(alter(r));
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

export type TcpProxyMode = 'stall-upload' | 'stall-download' | 'reset-first';

/**
 * A TCP proxy to `targetUrl`'s host and port: `stall-upload` stops reading from the client after
 * `stallAfter` bytes, `stall-download` stops passing the server's bytes on after as many, and
 * `reset-first` resets the first connection on its first bytes.
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
    upstream.on('close', () => client.destroy());
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

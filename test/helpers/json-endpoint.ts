// The loopback token and credential endpoints the credential tests talk to (EKS Pod Identity,
// Azure managed identity, an Entra authority for Workload Identity): each answers JSON computed
// from the request, over HTTP or, with a certificate, HTTPS.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

export interface JsonRequest {
  method: string;
  /** The request URL, resolved against this endpoint's own origin. */
  url: URL;
  headers: IncomingMessage['headers'];
  body: string;
  /** `http(s)://127.0.0.1:<port>` of this endpoint, for answers that point back at it. */
  origin: string;
}

export interface JsonAnswer {
  status: number;
  doc: unknown;
}

export interface JsonEndpoint {
  origin: string;
  port: number;
  stop: () => Promise<void>;
}

export async function startJsonEndpoint(
  answer: (req: JsonRequest) => JsonAnswer,
  tls?: { cert: Buffer; key: Buffer },
): Promise<JsonEndpoint> {
  let origin = '';
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const { status, doc } = answer({ method: req.method ?? 'GET', url: new URL(req.url ?? '/', origin), headers: req.headers, body, origin });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
    });
  };
  const server = tls ? createHttpsServer(tls, handle) : createHttpServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  origin = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    origin,
    port,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// The agents requests go through when a proxy applies (src/storage/proxy.ts chooses it): http
// endpoints are forwarded by the proxy, https ones tunnelled through it (CONNECT). Loaded only by
// the SDK-based drivers, and by them only when a proxy is set (docs/configuration.md#proxies).
import type { Agent as HttpAgent } from 'node:http';
import type { Duplex } from 'node:stream';
import { HttpProxyAgent, type HttpProxyAgentOptions } from 'http-proxy-agent';
import { HttpsProxyAgent, type HttpsProxyAgentOptions } from 'https-proxy-agent';

export interface ProxyAgentOptions {
  keepAlive?: boolean;
  maxSockets?: number;
  maxFreeSockets?: number;
  /** CAs that check the endpoint's certificate at the end of the tunnel (the proxy's own TLS keeps Node's). */
  ca?: Array<string | Buffer>;
  /** Called with each socket once it reaches the endpoint (tunnel opened, TLS done), e.g. to arm timeouts. */
  onConnected?: (socket: Duplex) => void;
}

type ConnectArgs<A extends { connect: (...a: never[]) => unknown }> = Parameters<A['connect']>;

/** Forwarding through the proxy (plain HTTP endpoints). */
class ForwardAgent extends HttpProxyAgent<string> {
  constructor(proxy: string, options: HttpProxyAgentOptions<string>, private readonly onConnected?: (socket: Duplex) => void) {
    super(proxy, options);
  }

  override async connect(...args: ConnectArgs<HttpProxyAgent<string>>) {
    const socket = await super.connect(...args);
    this.onConnected?.(socket);
    return socket;
  }
}

/**
 * https-proxy-agent's tunnel with our CA at its end: the agent gives its own options to the
 * connection to the proxy only, and the endpoint's TLS gets the request's.
 */
class TunnelAgent extends HttpsProxyAgent<string> {
  constructor(
    proxy: string,
    options: HttpsProxyAgentOptions<string>,
    private readonly ca?: Array<string | Buffer>,
    private readonly onConnected?: (socket: Duplex) => void,
  ) {
    super(proxy, options);
  }

  override async connect(req: ConnectArgs<HttpsProxyAgent<string>>[0], opts: ConnectArgs<HttpsProxyAgent<string>>[1]) {
    const socket = await super.connect(req, (this.ca ? { ...opts, ca: this.ca } : opts) as typeof opts);
    this.onConnected?.(socket);
    return socket;
  }
}

/** An agent for requests to an `https:` (secure) or `http:` endpoint through the proxy at `proxyUrl`. */
export function proxyAgent(secure: boolean, proxyUrl: string, options: ProxyAgentOptions = {}): HttpAgent {
  const { ca, onConnected, ...pool } = options;
  return secure ? new TunnelAgent(proxyUrl, pool, ca, onConnected) : new ForwardAgent(proxyUrl, pool, onConnected);
}

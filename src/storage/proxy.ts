// The HTTP(S) proxy an endpoint is reached through, from the environment, as barman-cloud's boto3
// finds it (botocore follows Python's urllib): `https_proxy` / `HTTPS_PROXY` for https endpoints,
// `http_proxy` / `HTTP_PROXY` for http ones, the lower-case name first, and `no_proxy` /
// `NO_PROXY` to reach some hosts directly (docs/configuration.md#proxies). The caller passes the
// environment in.
import { GeneralError } from '../errors.js';
import { registerSecret } from '../log.js';
import { nonEmpty, type Env } from './provider.js';

export interface ProxySetting {
  /** The proxy's URL, credentials included (a secret: never printed, see `shown`). */
  url: string;
  /** The proxy as messages may name it: scheme, host and port only. */
  shown: string;
}

/** The proxy for requests to `endpoint` (an http or https URL), or undefined to connect directly. */
export function proxyFor(endpoint: string, env: Env): ProxySetting | undefined {
  const target = new URL(endpoint);
  const scheme = target.protocol === 'http:' ? 'http' : 'https';
  const value = nonEmpty(env[`${scheme}_proxy`]) ?? nonEmpty(env[`${scheme.toUpperCase()}_PROXY`]);
  if (value === undefined || bypassed(target, nonEmpty(env.no_proxy) ?? nonEmpty(env.NO_PROXY))) return undefined;
  // As urllib: a proxy given as host:port is an http:// proxy.
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw new GeneralError(`${scheme}_proxy is not a URL`);
  }
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
    throw new GeneralError(`${scheme}_proxy: only http:// and https:// proxies are supported, not ${proxy.protocol}//`);
  }
  return { url: proxy.href, shown: `${proxy.protocol}//${proxy.host}` };
}

/** The proxy's user name and password, kept out of every message (src/log.ts). */
export function registerProxySecrets(proxy: ProxySetting): void {
  const { username, password } = new URL(proxy.url);
  for (const secret of [username, password]) {
    registerSecret(secret);
    registerSecret(decodeURIComponent(secret));
  }
}

/** Only the variables `proxyFor` reads, for a driver that learns its endpoint later. */
export function proxyVariables(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([k]) => /^(https?|no)_proxy$/i.test(k)));
}

/**
 * Whether `no_proxy` names the endpoint's host: `*` names every host; an entry names a host and
 * every host under it (`example.com` and `.example.com` both match `s3.example.com`), and with a
 * port only that port. Case does not matter.
 */
function bypassed(target: URL, noProxy: string | undefined): boolean {
  if (noProxy === undefined) return false;
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const port = target.port || (target.protocol === 'http:' ? '80' : '443');
  for (const raw of noProxy.split(',')) {
    const entry = raw.trim().toLowerCase().replace(/^\.+/, '');
    if (entry === '') continue;
    if (entry === '*') return true;
    const at = entry.lastIndexOf(':');
    const [name, onlyPort] = at > 0 && /^\d+$/.test(entry.slice(at + 1)) && !entry.slice(0, at).includes(':')
      ? [entry.slice(0, at), entry.slice(at + 1)]
      : [entry.replace(/^\[(.*)\]$/, '$1'), undefined];
    if (onlyPort !== undefined && onlyPort !== port) continue;
    if (host === name || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

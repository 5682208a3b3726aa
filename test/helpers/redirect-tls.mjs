// Preload for tests (node --import): TLS connections to the host names listed in BC_TEST_REDIRECT
// ("name=port,name=port") go to 127.0.0.1:<port> instead, still verified against the original name
// (SNI and certificate check). This lets a tool run against production-shaped URLs
// (https://<account>.blob.core.windows.net, https://login.microsoftonline.com) served by loopback
// test servers, without touching DNS or /etc/hosts, and guarantees nothing leaves the machine.
import tls from 'node:tls';

const table = new Map(
  (process.env.BC_TEST_REDIRECT ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => {
      const [name, port] = pair.split('=');
      return [name.toLowerCase(), Number(port)];
    }),
);
const connect = tls.connect;
tls.connect = function redirected(...args) {
  const options = args[0] !== null && typeof args[0] === 'object' ? args[0] : undefined;
  const host = (options?.host ?? '').toLowerCase();
  const port = table.get(host);
  if (options && port !== undefined) {
    args[0] = { ...options, host: '127.0.0.1', port, servername: options.servername || host };
  }
  return connect.apply(this, args);
};

// A TLS terminator on loopback in front of a plain HTTP port, in its own process (the benchmark
// driver blocks in execFileSync while pgBackRest talks through it):
//   node tls-front.mjs TARGET_PORT CERT KEY   → prints the port it listens on
import { connect } from 'node:net';
import { createServer } from 'node:tls';
import { readFileSync } from 'node:fs';

const [target, cert, key] = process.argv.slice(2);
const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (sock) => {
  const up = connect(Number(target), '127.0.0.1');
  up.setNoDelay(true);
  sock.setNoDelay(true);
  sock.pipe(up).pipe(sock);
  const end = () => (sock.destroy(), up.destroy());
  sock.on('error', end);
  up.on('error', end);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));

// A one-host Ceph cluster serving S3 through the RADOS Gateway, for tests: one monitor (auth none),
// one OSD on memstore (data in RAM), no manager, radosgw's beast frontend on loopback.
//
//   node test/servers/rgw.mjs --dir SCRATCH --port HTTP_PORT --access-key ID --secret-key SECRET
//                             [--ssl-port HTTPS_PORT --ssl-cert CERT.pem --ssl-key KEY.pem]
//
// Everything (config, monitor store, sockets, logs) lives in SCRATCH. When radosgw accepts requests
// and the admin user exists, one JSON line {"ready":true,...} is written on stdout. SIGTERM/SIGINT
// stop the three daemons (radosgw first) and exit; the caller removes SCRATCH.
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    port: { type: 'string' },
    'access-key': { type: 'string' },
    'secret-key': { type: 'string' },
    'memstore-mib': { type: 'string', default: '1024' },
    // Optional HTTPS endpoint beside the plain one (pgBackRest's S3 repository needs TLS).
    'ssl-port': { type: 'string' },
    'ssl-cert': { type: 'string' },
    'ssl-key': { type: 'string' },
    // SSE-C on the plain endpoint too (RGW refuses customer keys over HTTP by default).
    'sse-c-over-http': { type: 'boolean', default: false },
  },
});
const dir = values.dir;
const port = Number(values.port);
if (!dir || !port || !values['access-key'] || !values['secret-key']) {
  process.stderr.write('usage: rgw.mjs --dir DIR --port PORT --access-key ID --secret-key SECRET\n');
  process.exit(2);
}

// Ports for the monitor and the OSD's messengers: a random window, so that two clusters started by
// parallel test files rarely meet (a busy port is skipped by Ceph). The window stays below the
// kernel's ephemeral range, where the tests pick the HTTP ports (freePort): a messenger that took
// radosgw's port there answered the first request with its banner ("Expected HTTP/", a CI run).
const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
const base = 20000 + Math.floor(Math.random() * Math.max(1, Math.floor((ephemeralLow - 20050) / 50))) * 50;
const monPort = base;
const conf = join(dir, 'ceph.conf');
const sslPort = Number(values['ssl-port'] ?? 0);
const tls = sslPort ? ` ssl_endpoint=127.0.0.1:${sslPort} ssl_certificate=${values['ssl-cert']} ssl_private_key=${values['ssl-key']}` : '';
const fsid = randomUUID();
const osdUuid = randomUUID();
for (const d of ['mon', 'osd', 'run', 'log', 'crash', 'rgw']) mkdirSync(join(dir, d), { recursive: true });

writeFileSync(
  conf,
  `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = ${base + 1}
ms bind port max = ${base + 49}
# Under auth none, radosgw loops on get_initial_auth_request returned -13 without this.
ms mon client mode = crc secure
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# Each pool creation is a paxos round: keep them short.
paxos propose interval = 0.01
mon tick interval = 1
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
crash dir = ${dir}/crash
mon data = ${dir}/mon/$name
osd data = ${dir}/osd/$name
rgw data = ${dir}/rgw/$name
log to stderr = false
err to stderr = true
mon cluster log file = ${dir}/log/cluster.log
mon cluster log to file = false

[osd]
osd objectstore = memstore
memstore device bytes = ${Number(values['memstore-mib']) * 1024 * 1024}
osd max object name len = 256
osd max object namespace len = 64

[client.rgw]
# Without tcp_nodelay two thirds of small responses wait an extra 40 ms (delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:${port}${tls} tcp_nodelay=1
# The lifecycle threads make SIGTERM take ~5 s; the tests use no lifecycle rules.
rgw enable lc threads = false
rgw gc obj min wait = 10
rgw gc processor period = 10
rgw dns name = 127.0.0.1
${values['sse-c-over-http'] ? 'rgw crypt require ssl = false\n' : ''}`,
);

const children = new Set();
let stopping = false;

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code ?? err.signal}): ${String(stderr).slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

function daemon(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  child.once('exit', (code, signal) => {
    children.delete(child);
    if (!stopping) {
      process.stderr.write(`${cmd} exited (${code ?? signal}): ${err}\n`);
      shutdown(1);
    }
  });
  return child;
}

async function waitFor(what, probe, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const listening = (p) =>
  new Promise((res) => {
    const s = connect(p, '127.0.0.1');
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  // radosgw first (it talks to the OSD on its way out), then the OSD, then the monitor.
  for (const name of ['radosgw', 'ceph-osd', 'ceph-mon']) {
    const list = [...children].filter((c) => c.spawnfile === name);
    await Promise.all(
      list.map(
        (c) =>
          new Promise((res) => {
            const t = setTimeout(() => c.kill('SIGKILL'), 3000);
            c.once('exit', () => (clearTimeout(t), res()));
            c.kill('SIGTERM');
          }),
      ),
    );
  }
  process.exit(code);
}
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => shutdown(0));

const started = Date.now();
try {
  const ceph = (...args) => run('ceph', ['-c', conf, '--connect-timeout', '20', ...args]);
  await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, join(dir, 'monmap')]);
  await run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap')]);
  daemon('ceph-mon', ['-c', conf, '-f', '-i', 'a']);
  await waitFor('ceph-mon', () => listening(monPort));
  await ceph('osd', 'new', osdUuid, '0');
  mkdirSync(join(dir, 'osd', 'osd.0'));
  await run('ceph-osd', ['-c', conf, '--mkfs', '-i', '0', '--osd-uuid', osdUuid]);
  daemon('ceph-osd', ['-c', conf, '-f', '-i', '0']);
  // Pools created before the OSD is up get their placement groups seconds late: wait for it.
  await waitFor('ceph-osd', async () => JSON.parse(await ceph('osd', 'stat', '-f', 'json')).num_up_osds === 1);
  daemon('radosgw', ['-c', conf, '-f', '-n', 'client.rgw']);
  await run('radosgw-admin', [
    '-c', conf, '-n', 'client.rgw', 'user', 'create', '--uid', 'admin', '--display-name', 'admin',
    '--access-key', values['access-key'], '--secret', values['secret-key'],
  ]);
  await waitFor('radosgw', () => listening(port));
  if (sslPort) await waitFor('radosgw (TLS)', () => listening(sslPort));
  process.stdout.write(`${JSON.stringify({ ready: true, conf, port, startMs: Date.now() - started })}\n`);
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  await shutdown(1);
}

// Servers for the benchmarks (plain JS: benchmarks run without a TS loader): moto, Ceph RGW (plain
// HTTP and HTTPS with a test CA), a TLS front for moto (pgBackRest's S3 repository needs TLS), and a
// description of each store that every scenario uses the same way.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');

export async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function waitForPort(port, child) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} not listening`);
}

function killGroup(child) {
  return () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
}

export async function startMoto() {
  const port = await freePort();
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore', detached: true });
  const stop = killGroup(child);
  process.once('exit', stop);
  await waitForPort(port, child);
  return { url: `http://127.0.0.1:${port}`, port, stop, pgid: child.pid };
}

/**
 * A test CA and a certificate for `localhost` / 127.0.0.1 signed by it (openssl). pgBackRest checks
 * the host name against DNS names, so its endpoint is `localhost`.
 */
export function makeTestCa(dir) {
  mkdirSync(dir, { recursive: true });
  const o = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=barman-cloud-ts bench CA',
    '-keyout', 'ca.key', '-out', 'ca.pem');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n');
  o('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  o('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'san.ext', '-out', 'server.pem');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/**
 * A TLS terminator (tls-front.mjs, its own process) in front of a plain HTTP port, for moto, which
 * serves either HTTP or HTTPS, not both: each TLS connection is piped to one plain connection.
 */
export async function tlsFront(targetPort, tls) {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'tls-front.mjs'), String(targetPort), tls.cert, tls.key],
    { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const stop = killGroup(child);
  process.once('exit', stop);
  const port = await new Promise((res, rej) => {
    child.stdout.once('data', (d) => res(Number(String(d).trim())));
    child.once('exit', (c) => rej(new Error(`tls-front exited ${c}`)));
  });
  return { port, stop };
}

/**
 * CPU seconds (user + sys) used so far by every process of a server's process group (moto's Python;
 * RGW's monitor, OSD and gateway): sampled before and after a scenario, the server's own cost.
 */
export function groupCpuSecs(pgid) {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      // Fields after the command name (which may hold spaces): state is [0], pgrp [2], utime [11], stime [12].
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** USER_HZ in ms: the unit of the CPU times in /proc/PID/stat. */
export const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** `pid` and all its descendants, from /proc (a server's processes). */
export function descendants(pid) {
  const parent = new Map();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parent.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [c, pp] of parent) if (pp === out[i]) out.push(c);
  return out;
}

/** CPU (user + sys, ms, exited threads included) used so far by the processes `pids`. */
export function processCpuMs(pids) {
  let ticks = 0;
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks * TICK_MS;
}

/** The process listening on `url`'s port (moto_server answers from a process of its own). */
export function listenerPid(url) {
  return Number(execFileSync('sh', ['-c', `ss -ltnpH 'sport = :${new URL(url).port}' | sed -n 's/.*pid=\\([0-9]*\\).*/\\1/p' | head -1`]).toString().trim());
}

export const RGW_KEYS = { accessKeyId: 'BCTSRGWBENCH00000001', secretAccessKey: 'bc-ts-rgw-bench-key' };

/** A one-host Ceph cluster from test/servers/rgw.mjs with an HTTP and an HTTPS endpoint. */
export async function startRgw({ tls, memstoreMib = 4096 } = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRgwOnce({ tls, memstoreMib });
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

async function startRgwOnce({ tls, memstoreMib }) {
  const port = await freePort();
  const sslPort = tls ? await freePort() : 0;
  const dir = mkdtempSync(join(tmpdir(), 'bc-bench-rgw-'));
  const args = [join(root, 'test', 'servers', 'rgw.mjs'), '--dir', dir, '--port', String(port),
    '--access-key', RGW_KEYS.accessKeyId, '--secret-key', RGW_KEYS.secretAccessKey, '--memstore-mib', String(memstoreMib)];
  if (tls) args.push('--ssl-port', String(sslPort), '--ssl-cert', tls.cert, '--ssl-key', tls.key);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  const stop = () => {
    // SIGTERM lets rgw.mjs stop its daemons in order; the group kill is the fallback.
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {}
    const t = setTimeout(killGroup(child), 8000);
    return new Promise((r) => child.once('exit', () => (clearTimeout(t), rmSync(dir, { recursive: true, force: true }), r())));
  };
  process.once('exit', killGroup(child));
  const conf = await new Promise((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`RGW did not start within 90 s: ${err}`)), 90_000);
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) (clearTimeout(timer), res(JSON.parse(line).conf));
    });
    child.once('exit', (code) => (clearTimeout(timer), rej(new Error(`rgw.mjs exited ${code}: ${err}`))));
  });
  return { url: `http://127.0.0.1:${port}`, port, sslPort, conf, pid: child.pid, pgid: child.pid, stop };
}

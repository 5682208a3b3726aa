// Shared benchmark helpers: spawn a command many times, interleaving the contenders so that a
// noisy, shared machine affects them alike; report medians and ratios.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function runOnce(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0 && !opts.allowFailure) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`));
      else resolve(ms);
    });
  });
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/**
 * contenders: [{ label, cmd, args, env?, before?() }]; each round runs every contender once, in
 * rotating order. Returns [{ label, samples, median }]. With `serverCpu` (a reader of the server's
 * CPU seconds), each call's server CPU is also read: from before the call to `settleMs` after it
 * (work the server finishes after its answer), and its median returned as `serverMs`.
 */
export async function compare(contenders, { rounds = 20, warmup = 2, serverCpu, settleMs = 100 } = {}) {
  const samples = contenders.map(() => []);
  const server = contenders.map(() => []);
  for (let r = -warmup; r < rounds; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (k + Math.max(r, 0)) % contenders.length;
      const c = contenders[i];
      if (c.before) await c.before(r);
      const cpu0 = serverCpu?.();
      const ms = await runOnce(c.cmd, c.args, c);
      if (serverCpu) await new Promise((res) => setTimeout(res, settleMs));
      if (r >= 0) {
        samples[i].push(ms);
        if (serverCpu) server[i].push((serverCpu() - cpu0) * 1000);
      }
    }
  }
  return contenders.map((c, i) => ({
    label: c.label, samples: samples[i], median: median(samples[i]), p90: percentile(samples[i], 90),
    serverMs: serverCpu ? median(server[i]) : NaN,
  }));
}

export const fmt = (ms) => `${ms.toFixed(1)} ms`;

/** Run a program as the `postgres` OS user (runuser when we are root) and return its stdout. */
export function asPostgres(bin, args, opts = {}) {
  const [cmd, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Bytes in a WAL segment (PostgreSQL's default). */
export const SEG = 16 * 1024 * 1024;

/**
 * Writes over the first 40 bytes of `buf` the long page header (XLogLongPageHeaderData, as
 * PostgreSQL 15 writes it) that WAL segment `name` starts with, for segments of `buf.length` bytes:
 * wal-restore refuses a segment without it (docs/format.md#segment-header). Returns `buf`.
 */
export function withLongPageHeader(buf, name) {
  buf.fill(0, 0, 40);
  buf.writeUInt16LE(0xd110, 0); // xlp_magic
  buf.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  buf.writeUInt32LE(Number.parseInt(name.slice(0, 8), 16), 4); // xlp_tli
  buf.writeBigUInt64LE((BigInt(`0x${name.slice(8, 16)}`) << 32n) + BigInt(`0x${name.slice(16, 24)}`) * BigInt(buf.length), 8); // xlp_pageaddr
  buf.writeUInt32LE(buf.length, 32); // xlp_seg_size
  buf.writeUInt32LE(8192, 36); // xlp_xlog_blcksz
  return buf;
}

/**
 * A full segment that compresses like OLTP WAL (~2-3x): tuple-like records with random runs; with
 * `name`, that segment's long page header over its first 40 bytes (the rest is the same mix).
 */
export function walSegment(name) {
  const buf = Buffer.alloc(SEG);
  let off = 0;
  let n = 0;
  while (off < SEG) {
    const rec = Buffer.from(`|${(n++).toString(16).padStart(8, '0')}|aid=${Math.floor(Math.random() * 1e7)}|bid=${n % 50}|` +
      `abalance=${Math.floor(Math.random() * 1e5) - 5e4}|filler=${' '.repeat(20)}`);
    rec.copy(buf, off);
    off += rec.length;
    if (n % 16 === 0 && off + 32 < SEG) {
      randomBytes(32).copy(buf, off);
      off += 32;
    }
  }
  return name ? withLongPageHeader(buf, name) : buf;
}

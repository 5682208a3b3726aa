// One-shot wal-archive and wal-restore of two builds into the local directory store, interleaved:
// per round the plain call of the first build, then the encrypted (age) call of each build, the
// order rotating by round, for each codec; then the same for restores of that segment, each
// restored file compared with the segment. Per call the client's CPU (user + sys of the process
// tree, encryption.mjs's commandCpu: getrusage through Python, read before and after the call). Prints
// medians, each build's paired encrypted/plain ratio with its interquartile range, and the paired
// difference of the second build's encrypted call from the first's.
//
//   BUILDS='{"before":"/tmp/before/bin","after":"bin"}' ROUNDS=31 CODECS=none,lz4 \
//     node test/bench/encryption-builds.mjs
//
// A build's bin/ must sit beside its dist/ and reach a node_modules (a copy of bin/, dist/ and
// package.json with a node_modules symlink will do).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walSegment, withLongPageHeader } from './lib.mjs';
import { commandCpu } from './encryption.mjs';

const ENV = { PATH: process.env.PATH, HOME: process.env.HOME };
const cpuMs = (cmd, args) => commandCpu(cmd, args, ENV) * 1000;
const builds = Object.entries(JSON.parse(process.env.BUILDS ?? '{}'));
if (builds.length !== 2) throw new Error('BUILDS names two builds\' bin directories, e.g. {"before":"/tmp/before/bin","after":"bin"}');
const rounds = Math.min(Number(process.env.ROUNDS ?? 11), 240);
const codecs = (process.env.CODECS ?? 'none').split(',');
const work = mkdtempSync(join(tmpdir(), 'bc-bench-enc-builds-'));
execFileSync('age-keygen', ['-o', join(work, 'id')], { stdio: 'ignore' });
writeFileSync(join(work, 'rcpt'), execFileSync('age-keygen', ['-y', join(work, 'id')]));
const segment = walSegment();
const t = {};
const push = (k, v) => (t[k] ??= []).push(v);
const sides = ['plain', ...builds.map(([b]) => b)];
for (const c of codecs) for (const s of sides) mkdirSync(join(work, c, s), { recursive: true });
const [firstBin] = builds[0].slice(1);
const binOf = (side) => (side === 'plain' ? firstBin : Object.fromEntries(builds)[side]);
try {
  for (let i = 0; i < rounds; i++) {
    // Segment numbers 0x10-0xFF of one log file
    const name = `0000000100000000000000${(0x10 + i).toString(16).toUpperCase().padStart(2, '0')}`;
    const src = join(work, `pg_wal-${i}`);
    mkdirSync(src);
    writeFileSync(join(src, name), withLongPageHeader(segment, name)); // restore refuses a segment without its own header
    const rotated = sides.map((_, k) => sides[(k + i) % sides.length]);
    for (const c of codecs) {
      const store = (s) => `file://${join(work, c, s)}`;
      for (const s of rotated) {
        const key = s === 'plain' ? [] : ['--encryption-recipient-file', join(work, 'rcpt')];
        push(`${c}:archive:${s}`, cpuMs(join(binOf(s), 'barman-cloud-wal-archive'), [...(c === 'lz4' ? ['--lz4'] : []), ...key, store(s), 'srv', join(src, name)]));
      }
      for (const s of rotated) {
        const key = s === 'plain' ? [] : ['--encryption-identity-file', join(work, 'id')];
        const out = join(work, `out-${s}`);
        push(`${c}:restore:${s}`, cpuMs(join(binOf(s), 'barman-cloud-wal-restore'), [...key, store(s), 'srv', name, out]));
        execFileSync('cmp', ['-s', out, join(src, name)]);
        rmSync(out);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); const at = (s.length - 1) * p; const lo = Math.floor(at); return s[lo] + (s[Math.ceil(at)] - s[lo]) * (at - lo); };
const iqr = (a, d) => `${q(a, 0.5).toFixed(d)} (IQR ${q(a, 0.25).toFixed(d)} to ${q(a, 0.75).toFixed(d)})`;
const [a, b] = builds.map(([name]) => name);
console.log(`${rounds} rounds; CPU per call in ms (medians), paired encrypted/plain ratios, and ${b} − ${a} (encrypted calls, paired)`);
for (const c of codecs) for (const op of ['archive', 'restore']) {
  const p = t[`${c}:${op}:plain`];
  const ratio = (side) => iqr(t[`${c}:${op}:${side}`].map((v, i) => v / p[i]), 3);
  const diff = t[`${c}:${op}:${b}`].map((v, i) => v - t[`${c}:${op}:${a}`][i]);
  console.log(`${c} ${op}: plain ${q(p, 0.5).toFixed(1)}, ${a} ${q(t[`${c}:${op}:${a}`], 0.5).toFixed(1)}, ${b} ${q(t[`${c}:${op}:${b}`], 0.5).toFixed(1)} | ${a} ${ratio(a)} | ${b} ${ratio(b)} | ${b} − ${a} ${iqr(diff, 1)} ms`);
}

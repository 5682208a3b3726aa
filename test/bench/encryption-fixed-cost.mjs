// What age adds to a one-shot WAL call whatever the size (issue 16): wal-archive and wal-restore of a
// 64-byte .history file, plain and encrypted, and wal-archive of an uncompressed 16 MiB segment,
// into the directory store; CPU (user + system) per call, the pairs back to back with their order
// alternating, paired medians. Not part of `npm run bench`; figures in docs/benchmarks-history.md.
//   node test/bench/encryption-fixed-cost.mjs [rounds] [bin dir]
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { commandCpu } from './encryption.mjs';
import { median, walSegment, withLongPageHeader } from './lib.mjs';

const rounds = Number(process.argv[2] ?? 21);
const binDir = process.argv[3] ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin');
const bin = (b) => join(binDir, b);
const work = mkdtempSync(join(tmpdir(), 'bc-bench-encfixed-'));
const env = { PATH: process.env.PATH, HOME: process.env.HOME };
const identity = join(work, 'identity.txt');
const recipient = join(work, 'recipient.txt');
execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
writeFileSync(recipient, execFileSync('age-keygen', ['-y', identity]));
for (const d of ['plain', 'enc']) mkdirSync(join(work, d));
const segment = walSegment();
const t = { historyArchive: [[], []], historyRestore: [[], []], segmentArchive: [[], []] };
try {
  for (let i = 0; i < rounds; i++) {
    const src = join(work, `pg_wal-${i}`);
    mkdirSync(src);
    const history = `${(2 + i).toString(16).toUpperCase().padStart(8, '0')}.history`;
    writeFileSync(join(src, history), '1\t0/3000000\tno recovery target specified\n');
    const name = `0000000100000000000000${(0x10 + i).toString(16).toUpperCase().padStart(2, '0')}`;
    writeFileSync(join(src, name), withLongPageHeader(segment, name));
    const plain = [`file://${join(work, 'plain')}`, 'srv'];
    const enc = [`file://${join(work, 'enc')}`, 'srv'];
    const pair = (k, plainArgs, ageArgs, cmd) => {
      const calls = [() => t[k][0].push(commandCpu(bin(cmd), plainArgs, env)), () => t[k][1].push(commandCpu(bin(cmd), ageArgs, env))];
      for (const c of i % 2 ? calls.reverse() : calls) c();
    };
    pair('historyArchive', [...plain, join(src, history)], ['--encryption-recipient-file', recipient, ...enc, join(src, history)], 'barman-cloud-wal-archive');
    pair('historyRestore', [...plain, history, join(work, `out-p-${i}`)], ['--encryption-identity-file', identity, ...enc, history, join(work, `out-e-${i}`)], 'barman-cloud-wal-restore');
    pair('segmentArchive', [...plain, join(src, name)], ['--encryption-recipient-file', recipient, ...enc, join(src, name)], 'barman-cloud-wal-archive');
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const ms = (x) => +(x * 1000).toFixed(1);
const out = { rounds, load: readFileSync('/proc/loadavg', 'utf8').split(' ')[0] };
for (const [k, [p, a]] of Object.entries(t)) out[k] = { plainMs: ms(median(p)), ageMs: ms(median(a)), addedPairedMs: ms(median(a.map((x, i) => x - p[i]))) };
console.log(JSON.stringify(out, null, 1));

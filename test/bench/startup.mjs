// Start-up cost: `--version` of the hot-path executable, ours against barman's and bare Node.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compare, fmt } from './lib.mjs';

export const title = 'Start-up: `barman-cloud-wal-archive --version`';

export async function run({ root, rounds }) {
  const contenders = [
    { label: 'ours: bin/barman-cloud-wal-archive --version', cmd: process.execPath, args: [join(root, 'bin', 'barman-cloud-wal-archive'), '--version'] },
    { label: 'node -e 0 (floor)', cmd: process.execPath, args: ['-e', '0'] },
  ];
  if (existsSync('/usr/bin/barman-cloud-wal-archive')) {
    contenders.push({ label: 'barman-cloud-wal-archive 3.4 (Python)', cmd: '/usr/bin/barman-cloud-wal-archive', args: ['--version'] });
  }
  const results = await compare(contenders, { rounds });
  const ours = results[0].median;
  const rows = results.map((r) => [r.label, fmt(r.median), fmt(r.p90), (r.median / ours).toFixed(2)]);
  return {
    headers: ['command', 'median', 'p90', 'ratio to ours'],
    rows,
    notes: [`Target: median ≤ 80 ms. Ours: ${fmt(ours)} (${ours <= 80 ? 'met' : 'NOT met'}).`],
  };
}

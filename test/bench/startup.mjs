// Start-up cost: `--version` of the hot-path executable, ours against barman's and bare Node.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compare, fmt } from './lib.mjs';

export const title = 'Start-up: `barman-cloud-wal-archive --version`';

export async function run({ root, rounds }) {
  // NODE_EXTRA_CA_CERTS (set on these machines) costs Node ~50 ms per start; PostgreSQL's
  // environment does not have it. Measured without it, and once with it for the record.
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const contenders = [
    { label: 'ours: bin/barman-cloud-wal-archive --version', cmd: process.execPath, args: [join(root, 'bin', 'barman-cloud-wal-archive'), '--version'], env },
    { label: 'node -e 0 (floor)', cmd: process.execPath, args: ['-e', '0'], env },
    { label: 'ours, with NODE_EXTRA_CA_CERTS set (this machine\'s default)', cmd: process.execPath, args: [join(root, 'bin', 'barman-cloud-wal-archive'), '--version'] },
  ];
  if (existsSync('/usr/bin/barman-cloud-wal-archive')) {
    contenders.push({ label: 'barman-cloud-wal-archive 3.4 (Python)', cmd: '/usr/bin/barman-cloud-wal-archive', args: ['--version'], env });
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

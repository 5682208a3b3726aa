// `npm run bench [name…]`: runs the benchmarks side by side with the Python tools where installed
// and rewrites docs/benchmarks.md with medians, ratios and the command that reproduces them.
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';

const root = resolve(import.meta.dirname, '..', '..');
const ALL = ['startup', 'wal', 'backup', 'retention', 'verify'];
// Issue 14's table, by the first words of each target key the sections report.
const TARGETS = {
  'one-shot wal-archive (none)': '≤ floor + 30 ms and ≥ 4× barman 3.4',
  'one-shot wal-archive (lz4)': '≤ floor + 30 ms and ≥ 4× barman 3.4',
  'one-shot wal-restore (none)': '≤ floor + 30 ms and ≥ 4× barman 3.4',
  'one-shot wal-restore (lz4)': '≤ floor + 30 ms and ≥ 4× barman 3.4',
  'sustained archive': 'file store ≥ 50 seg/s; moto/RGW ≥ 80% of a bare parallel uploader and ahead of pgBackRest async',
  'sustained restore': 'file store ≥ 80 seg/s; moto/RGW ≥ 80% of a bare parallel downloader',
  'client CPU per archived segment': '≤ 1/5 of barman 3.4 -z',
  'peak RSS wal-archive / wal-restore (all codecs but xz)': '≤ 64 MB',
};
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const rounds = Number(process.env.BENCH_ROUNDS ?? 21);
const names = wanted.length ? wanted : ALL;
const runStarted = Date.now();
// Ctrl-C or a kill still stops the servers and PostgreSQL (their stoppers run on 'exit').
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(130));
const envUsed = ['BENCH_ROUNDS', 'BENCH_SEGMENTS', 'BENCH_STORES', 'BENCH_SCALE', 'BENCH_LARGE_SCALE', 'BENCH_RETENTION_BACKUPS', 'BENCH_RETENTION_WALS', 'BENCH_LIST_BACKUPS', 'BENCH_BACKUP_STORES', 'BENCH_BACKUP_CODECS', 'BENCH_RETENTION_STORES', 'BENCH_BIN_DIR', 'BENCH_WAL_PARTS', 'BENCH_RESTORE_ROUNDS']
  .filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`).join(' ');

execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });

const docPath = join(root, 'docs', 'benchmarks.md');
const previous = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '';
const sections = new Map();
for (const m of previous.matchAll(/<!-- bench:(\w+) -->\n([\s\S]*?)<!-- \/bench:\1 -->/g)) sections.set(m[1], m[2]);
// Sections measured by hand (after the last generated one) are kept as they are.
const lastEnd = previous.lastIndexOf('<!-- /bench:');
const handWritten = lastEnd < 0 ? '' : previous.slice(previous.indexOf('\n', lastEnd) + 1).replace(/^\n+/, '');
// So are the hand-written sections between the introduction (written below) and the first generated
// one: "Where each target stands" summarises every run, and its newest figures may be hand-run ones.
const beforeFirst = previous.slice(0, Math.max(0, previous.search(/^<!-- bench:\w+ -->$/m)));
const preface = beforeFirst.search(/^## /m) < 0 ? '' : beforeFirst.slice(beforeFirst.search(/^## /m)).replace(/\n+$/, '\n');

for (const name of names) {
  const bench = await import(`./${name}.mjs`);
  process.stderr.write(`running ${name} …\n`);
  const t0 = Date.now();
  const result = await bench.run({ root, rounds });
  const wallMin = ((Date.now() - t0) / 60000).toFixed(1);
  const table = [
    `| ${result.headers.join(' | ')} |`,
    `|${result.headers.map(() => '---').join('|')}|`,
    // A '|' inside a cell (shell pipelines in labels) would split the Markdown column.
    ...result.rows.map((r) => `| ${r.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`),
  ].join('\n');
  const text = [
    `### ${bench.title}`,
    '',
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${rounds} interleaved rounds,`,
    `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${wallMin} min. Reproduce: \`${envUsed ? `${envUsed} ` : ''}npm run bench ${name}\`.`,
    '',
    table,
    '',
    ...(result.notes ?? []).map((n) => `${n}`),
    '',
    ...targetTable(result.targets, name === 'encryption' ? 16 : 14),
  ].join('\n');
  sections.set(name, text);
  process.stdout.write(`${text}\n`);
}

process.stderr.write(`npm run bench ${names.join(' ')}: ${((Date.now() - runStarted) / 60000).toFixed(1)} min\n`);
// A run of every section records its command and wall time once, under the introduction.
if (ALL.every((n) => names.includes(n))) {
  sections.set('run', `Last full run: \`${envUsed ? `${envUsed} ` : ''}npm run bench\`, all sections in ${((Date.now() - runStarted) / 60000).toFixed(1)} min wall time, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.\n`);
}

/** The targets this section measures (issue 14's speed targets; encryption's cost is issue 16), each met or not. */
function targetTable(targets, issue) {
  if (!targets || !Object.keys(targets).length) return [];
  return [
    `| target (issue ${issue}) | measured | |`,
    '|---|---|---|',
    ...Object.entries(targets).map(([k, t]) => `| ${k}: ${t.target ?? TARGETS[k.split(',')[0]] ?? ''} | ${t.value} | ${t.met ? 'met' : '**not met**'} |`),
    '',
  ];
}

const order = [...new Set(['run', ...ALL, ...sections.keys()])].filter((n) => sections.has(n));
const doc = [
  '# Benchmarks',
  '',
  'Written by `npm run bench` (see `test/bench/`). The machines are shared and noisy: every figure is a',
  'median of interleaved runs of all contenders in the same session, and comparisons are ratios.',
  '',
  'Reading these numbers:',
  '',
  '- Stores: the local directory store, moto 5.2.1 and Ceph RGW 16.2 (memstore, started from',
  '  `test/servers/rgw.mjs` with an HTTPS endpoint signed by a CA made for the run). pgBackRest 2.45 runs',
  '  beside barman 3.4 wherever it does the same job; its S3 repository needs TLS, so it talks to RGW\'s',
  '  HTTPS endpoint and to moto through a small TLS terminator (`test/bench/tls-front.mjs`).',
  '- Every row has a floor measured in the same run: `node -e 0` plus a bare client moving the same bytes',
  '  to the same server (`curl --aws-sigv4` with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, an `xargs -P`',
  '  loop of them for sustained rows, `cp` + `sync` for the directory store). "ours − floor" is our own',
  '  overhead, whatever the server costs.',
  '- On an idle machine `node -e 0` is ~25–60 ms; when other jobs share the two cores it rises to',
  '  100–200 ms and every absolute figure rises with it — compare ratios and floors from the same run.',
  '- `NODE_EXTRA_CA_CERTS` (set on these machines to the system bundle) costs Node ~50 ms per start;',
  '  PostgreSQL\'s environment does not have it, Python ignores it, so the benchmarks unset it.',
  '- PostgreSQL calls `archive_command`/`restore_command` once per segment, sequentially: the sustained',
  '  rows call the executables that way, with `.ready` files in place, and count only finished calls.',
  '- Knobs: `npm run bench [startup|wal|backup|retention|verify …]`; `BENCH_ROUNDS` (one-shot rounds,',
  '  default 21), `BENCH_SEGMENTS` (segments per sustained run, 96), `BENCH_STORES` (file,moto,rgw),',
  '  `BENCH_SCALE` (pgbench scale, 100), `BENCH_BACKUP_STORES` (rgw), `BENCH_RETENTION_BACKUPS` /',
  '  `BENCH_RETENTION_WALS` (1000 / 200000), `BENCH_RETENTION_STORES` (file,rgw; add moto for the',
  '  slow moto rows beside barman 3.4), `BENCH_LIST_BACKUPS` (5000), `BENCH_RGW_MEMSTORE_MIB` (8192),',
  '  `BENCH_BIN_DIR` (whose `bin/` counts as "ours", e.g. another worktree\'s), `BENCH_WAL_PARTS`',
  '  (oneshot,archive,restore,cpu,rss: which WAL scenarios run; restore needs archive), `BENCH_RESTORE_ROUNDS`',
  '  (3: rounds of the base backup\'s restore rows, each from a synced page cache, the order rotating).',
  '',
  ...(preface ? [preface] : []),
  ...order.map((n) => `<!-- bench:${n} -->\n${sections.get(n)}<!-- /bench:${n} -->\n`),
  ...(handWritten ? [handWritten] : []),
].join('\n');
writeFileSync(docPath, doc);

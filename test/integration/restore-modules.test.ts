// barman-cloud-restore never talks to PostgreSQL: it reads LSNs with src/xlog.ts, so node-postgres
// (the pg, pg-protocol and pg-pool packages) stays unloaded. A traced run on the directory store,
// with a recovery target so that the LSN comparison of the backup choice runs too.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HEAD_DONE, handMadeDone } from '../fixtures/backup-info.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';
import { ROOT } from '../helpers/servers.ts';

const BACKUP_ID = '20261129T050418';
let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'bc-restore-modules-'));
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

it('barman-cloud-restore loads no PostgreSQL client module', async () => {
  const dir = join(scratch, 'store', 'srv', 'base', BACKUP_ID);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'backup.info'), handMadeDone());
  writeFileSync(join(dir, 'data.tar'), await tarOf([{ name: 'PG_VERSION', data: '15\n' }, { name: 'global/pg_control', data: 'control' }]));
  const trace = join(scratch, 'trace.txt');
  writeFileSync(trace, '');
  const dest = join(scratch, 'restored');
  const end = /^end_xlog=(.*)$/m.exec(HEAD_DONE)![1]!;
  const r = await runBin('barman-cloud-restore', ['--target-lsn', end, `file://${join(scratch, 'store')}`, 'srv', 'auto', dest], {
    env: cleanEnv({ BC_TRACE_MODULES: trace }),
    nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')],
  });
  expect(r.code, r.stderr).toBe(0);
  expect(readFileSync(join(dest, 'PG_VERSION'), 'utf8')).toBe('15\n');
  const loaded = readFileSync(trace, 'utf8');
  expect(loaded).toMatch(/dist\/cli\/.*restore/); // the trace saw the command's own chunk
  expect(loaded).not.toMatch(/node_modules\/(pg|pg-protocol|pg-pool|pg-connection-string)\//);
});

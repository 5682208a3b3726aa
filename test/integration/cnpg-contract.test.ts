// The CloudNativePG contract (#13): the exact argv and environment shapes that the Barman Cloud
// plugin and the barman-cloud Go library build, one row each with the Go file it comes from (read at
// cloudnative-pg/barman-cloud 950b0f5 and cloudnative-pg/plugin-barman-cloud 9967e2c; see
// docs/compatibility.md#cloudnativepg-plugin-or-in-tree and docs/format.md#commands), run through our bin/ in order against moto and, where the
// shape allows, against the file store. Exit codes are barman 3.17's; where Debian's barman 3.4 can
// run the same shape it runs side by side on its own prefix of the same bucket, and its exit code
// is compared (3.4 differs from 3.17 in places; each such row says how). The Azure shapes
// (--credential default / managed-identity, workload identity) are in azure-workload-identity.test.ts.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBarman, runBin, cleanEnv, type BinResult } from '../helpers/run-bin.ts';
import { isWalDelete, startS3Proxy, type Proxy } from '../helpers/proxy.ts';
import { requireTool, postgresAvailable, startCluster, type PgCluster } from '../helpers/postgres.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import { HEAD_DONE } from '../fixtures/backup-info.ts';
import { walLike } from '../fixtures/wal-like.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BARMAN34 = existsSync('/usr/bin/barman-cloud-wal-archive');
const BUCKET = 'cnpg';
const SRV = 'cluster-example';
const SEG = '000000010000000000000003';
const SEG2 = '000000010000000000000004';
const MISSING = '0000000100000000000000F0';
const BACKUP_NAME = 'backup-20261203064500'; // the plugin's name: "backup-" + local time, 14 digits
/** The Go struct catalog.BarmanBackup: the only keys CloudNativePG reads (pkg/catalog/catalog.go). */
const GO_FIELDS = [
  'backup_id', 'backup_name', 'backup_label', 'begin_time', 'end_time', 'begin_time_iso', 'end_time_iso',
  'begin_wal', 'end_wal', 'begin_xlog', 'end_xlog', 'systemid', 'timeline', 'error',
];

type Variant = 's3' | 'file' | 'barman34';
interface Ctx {
  variant: Variant;
  /** destinationPath: s3://bucket/<prefix>/ (ours or barman's) or file://<dir>/ */
  dest: string;
  /** --endpoint-url value (moto, or the rule-keeping proxy in front of it) */
  ep: string;
  pgdata: string;
  restoreDir: (shape: string) => string;
  backupId: () => string;
}
interface Shape {
  id: string;
  /** The Go file that builds this command line (repository:path). */
  source: string;
  tool: string;
  argv: (c: Ctx) => string[];
  env?: (c: Ctx) => Record<string, string | undefined>;
  /** barman 3.17's exit code, which ours must match. */
  code: number;
  /** Variants this shape runs on; the file store only where no S3-specific rule is the point. */
  on: Variant[];
  /** barman 3.4's observed exit code when it differs from `code`, and why. */
  barman34?: { code: number; why: string };
  check?: (r: BinResult, c: Ctx) => void | Promise<void>;
}

const LIB = 'cloudnative-pg/barman-cloud:';
const PLUGIN = 'cloudnative-pg/plugin-barman-cloud:';
const CP = ['--cloud-provider', 'aws-s3'];

/** stdout holds one JSON document and nothing else; the keys the Go struct reads have its types. */
function checkBackupJson(b: Record<string, unknown>): void {
  for (const k of GO_FIELDS) expect(b, k).toHaveProperty(k);
  expect(b.backup_id).toMatch(/^\d{8}T\d{6}$/);
  expect(b.backup_name).toBe(BACKUP_NAME);
  expect(typeof b.systemid).toBe('string'); // a number breaks the Go unmarshalling
  expect(typeof b.timeline).toBe('number');
  // RFC 3339 with an offset (a naive time aborts the whole catalog parse), ctime as Python prints it.
  for (const k of ['begin_time_iso', 'end_time_iso']) expect(b[k]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$/);
  for (const k of ['begin_time', 'end_time']) expect(b[k]).toMatch(/^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$/);
  for (const k of ['begin_wal', 'end_wal']) expect(b[k]).toMatch(/^[0-9A-F]{24}$/);
  for (const k of ['begin_xlog', 'end_xlog']) expect(b[k]).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  expect(b.error).toBeNull();
}

function pureJson(r: BinResult): Record<string, unknown> {
  expect(r.stdout.trimStart().startsWith('{')).toBe(true);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

let moto: ServerHandle;
let proxy: Proxy | undefined;
let proxyUrl: string;
/** What the proxy in front of moto refuses, as S3 would for a narrower IAM policy. */
let refuse: 'nothing' | 'reads' | 'wal-deletes' = 'nothing';
const refusals: string[] = [];
let pg: PgCluster;
let work: string;
const backupIds: Partial<Record<Variant, string>> = {};

const SHAPES: Shape[] = [
  {
    id: 'version probe (CNPG <= 1.25.1 capabilities: regex "barman-cloud.* (?P<Version>.*)" on combined output)',
    source: 'cloudnative-pg/cloudnative-pg:pkg/management/barman/capabilities (CNPG <= 1.24; lib <= v0.3.0)',
    tool: 'barman-cloud-wal-archive',
    argv: () => ['--version'],
    code: 0,
    on: ['s3', 'barman34'],
    check: (r) => {
      const m = /barman-cloud.* (?<version>.*)/.exec(r.stdout + r.stderr);
      expect(m?.groups?.version).toMatch(/^\d+\.\d+\.\d+$/);
    },
  },
  {
    id: 'empty-archive check before the first archive',
    source: `${LIB}pkg/archiver/archiver.go (BarmanCloudCheckWalArchiveOptions)`,
    tool: 'barman-cloud-check-wal-archive',
    argv: (c) => ['--endpoint-url', c.ep, ...CP, c.dest, SRV],
    code: 0,
    on: ['s3', 'file', 'barman34'],
  },
  {
    id: 'connectivity probe on a bucket that does not exist (CNPG e2e helper)',
    source: 'cloudnative-pg/cloudnative-pg:tests/e2e (connectivity probe helper)',
    tool: 'barman-cloud-check-wal-archive',
    argv: (c) => [...CP, '--endpoint-url', c.ep, 's3://not-evaluated/', SRV, '--test'],
    code: 0,
    on: ['s3', 'barman34'],
  },
  {
    id: 'wal-archive, plugin path: compression, -e, --tags, --history-tags, absolute %p',
    source: `${LIB}pkg/archiver/command.go (BarmanCloudWalArchiveOptions); ${PLUGIN}internal/cnpgi/common/wal.go`,
    tool: 'barman-cloud-wal-archive',
    argv: (c) => [
      '--gzip', '-e', 'AES256', '--endpoint-url', c.ep, '--tags', 'retention,30days', 'team,dba',
      '--history-tags', 'retention,forever', ...CP, c.dest, SRV, join(c.pgdata, 'pg_wal', SEG),
    ],
    code: 0,
    on: ['s3', 'file', 'barman34'],
    check: async (r, c) => {
      if (c.variant !== 's3') return;
      const tags = await (await store()).getTags(`ours/${SRV}/wals/0000000100000000/${SEG}.gz`);
      expect(tags).toEqual([['retention', '30days'], ['team', 'dba']]);
    },
  },
  {
    id: 'empty-archive check once WAL is there: exit 1, "Expected empty archive"',
    source: `${LIB}pkg/archiver/archiver.go (CheckWalArchiveDestination)`,
    tool: 'barman-cloud-check-wal-archive',
    argv: (c) => ['--endpoint-url', c.ep, ...CP, c.dest, SRV],
    code: 1,
    on: ['s3', 'file', 'barman34'],
    check: (r) => expect(r.stderr).toMatch(/Expected empty archive/),
  },
  {
    id: 'wal-archive with a write-only credential (s3:PutObject only: LIST and GET refused)',
    source: `${PLUGIN}internal/cnpgi/common/wal.go (same argv; a least-privilege policy)`,
    tool: 'barman-cloud-wal-archive',
    argv: (c) => ['--endpoint-url', proxyUrl, ...CP, c.dest, SRV, join(c.pgdata, 'pg_wal', SEG2)],
    code: 0,
    on: ['s3'],
    check: () => expect(refusals.some((x) => x.startsWith('GET') || x.startsWith('HEAD'))).toBe(true),
  },
  {
    id: 'wal-restore of an archived segment: restoreAdditionalCommandArgs sit between SRV and the positionals',
    source: `${LIB}pkg/command/commandbuilder.go (CloudWalRestoreOptions); ${LIB}pkg/restorer/restorer.go`,
    tool: 'barman-cloud-wal-restore',
    argv: (c) => ['--endpoint-url', c.ep, ...CP, c.dest, SRV, '--read-timeout=60', SEG, join(c.restoreDir('wal'), 'RECOVERYXLOG')],
    code: 0,
    on: ['s3', 'file', 'barman34'],
  },
  {
    id: 'wal-restore of a segment not in the archive: exit 1 is the only "not found" (end of WAL)',
    source: `${LIB}pkg/restorer/restorer.go (errorForExitCode)`,
    tool: 'barman-cloud-wal-restore',
    argv: (c) => ['--endpoint-url', c.ep, ...CP, c.dest, SRV, MISSING, join(c.restoreDir('wal'), `${MISSING}.tmp`)],
    code: 1,
    on: ['s3', 'file', 'barman34'],
  },
  {
    id: 'wal-restore with AWS_CA_BUNDLE naming a missing file (endpointCA set, projection not there yet), http endpoint',
    source: `${PLUGIN}internal/cnpgi/common/common.go (GetRestoreCABundleEnv)`,
    tool: 'barman-cloud-wal-restore',
    argv: (c) => ['--endpoint-url', c.ep, ...CP, c.dest, SRV, SEG, join(c.restoreDir('ca-http'), 'RECOVERYXLOG')],
    env: () => ({ AWS_CA_BUNDLE: '/barman-certificates/store/barman-ca.crt' }),
    code: 0,
    on: ['s3', 'barman34'],
  },
  {
    id: 'the same on an https endpoint: exit 4 (retried by the operator), never 3 ("invalid WAL name")',
    source: `${PLUGIN}internal/cnpgi/common/common.go (GetRestoreCABundleEnv)`,
    tool: 'barman-cloud-wal-restore',
    argv: (c) => ['--endpoint-url', c.ep.replace('http://', 'https://'), ...CP, c.dest, SRV, SEG, join(c.restoreDir('ca-https'), 'RECOVERYXLOG')],
    env: () => ({ AWS_CA_BUNDLE: '/barman-certificates/store/barman-ca.crt' }),
    code: 4,
    on: ['s3', 'barman34'],
    check: (r, c) => { if (c.variant !== 'barman34') expect(r.stderr).toMatch(/AWS_CA_BUNDLE: cannot read CA file/); },
  },
  {
    id: 'base backup: the plugin argv with data options, additionalCommandArgs, --tags; TMPDIR and libpq env',
    source: `${LIB}pkg/backup/backup.go (GetBarmanCloudBackupOptions, Take)`,
    tool: 'barman-cloud-backup',
    argv: (c) => [
      '--user', 'postgres', '--name', BACKUP_NAME, '--gzip', '--encryption', 'AES256', '--immediate-checkpoint',
      '--jobs', '2', '--min-chunk-size=5MB', '--read-timeout=59', '--tags', 'retention,30days', 'team,dba',
      '--endpoint-url', c.ep, ...CP, c.dest, SRV,
    ],
    env: () => ({ PGHOST: pg.env.PGHOST, PGPORT: pg.env.PGPORT, PGUSER: undefined, PGDATABASE: undefined, TMPDIR: join(work, 'controller-backup') }),
    code: 0,
    on: ['s3', 'file', 'barman34'],
    barman34: { code: 3, why: '3.4 has no --min-chunk-size (an unrecognized argument)' },
    check: async (_r, c) => {
      if (c.variant !== 's3') return;
      // --tags reach backup.info as well as the data tarballs (bucket lifecycle rules select by tag).
      const s = await store();
      const keys: string[] = [];
      for await (const e of s.list(`ours/${SRV}/base/`)) if (e.kind === 'object') keys.push(e.key);
      const info = keys.filter((k) => k.endsWith('/backup.info'));
      expect(info).toHaveLength(1);
      for (const k of [...info, ...keys.filter((k) => k.endsWith('.tar.gz'))]) {
        expect([k, await s.getTags(k)]).toEqual([k, [['retention', '30days'], ['team', 'dba']]]);
      }
    },
  },
  {
    id: 'backup-show by name right after the backup: {"cloud": {...}}, pure JSON',
    source: `${LIB}pkg/command/backuplist.go (GetBackupByName); ${LIB}pkg/catalog/catalog.go`,
    tool: 'barman-cloud-backup-show',
    argv: (c) => ['--format', 'json', '--endpoint-url', c.ep, ...CP, c.dest, SRV, BACKUP_NAME],
    code: 0,
    on: ['s3', 'file'],
    check: (r, c) => {
      const doc = pureJson(r);
      expect(Object.keys(doc)).toEqual(['cloud']);
      checkBackupJson(doc.cloud as Record<string, unknown>);
      backupIds[c.variant] = (doc.cloud as { backup_id: string }).backup_id;
    },
  },
  {
    id: 'backup-list for the catalog: {"backups_list": [...]}, pure JSON',
    source: `${LIB}pkg/command/backuplist.go (GetBackupList); ${LIB}pkg/catalog/catalog.go`,
    tool: 'barman-cloud-backup-list',
    argv: (c) => ['--format', 'json', '--endpoint-url', c.ep, ...CP, c.dest, SRV],
    code: 0,
    on: ['s3', 'file'],
    check: (r, c) => {
      const doc = pureJson(r) as { backups_list: Record<string, unknown>[] };
      expect(Object.keys(doc)).toEqual(['backups_list']);
      expect(doc.backups_list.map((b) => b.backup_id)).toEqual([c.backupId()]);
      checkBackupJson(doc.backups_list[0]!);
    },
  },
  {
    id: 'restore, plugin ordering: CP EP DEST SRV BACKUP_ID PGDATA',
    source: `${PLUGIN}internal/cnpgi/restore/restore.go (restoreDataDir)`,
    tool: 'barman-cloud-restore',
    argv: (c) => [...CP, '--endpoint-url', c.ep, c.dest, SRV, c.backupId(), c.restoreDir('plugin')],
    code: 0,
    on: ['s3', 'file'],
    check: (_r, c) => expect(existsSync(join(c.restoreDir('plugin'), 'PG_VERSION'))).toBe(true),
  },
  {
    id: 'restore, in-tree ordering: EP DEST SRV BACKUP_ID CP PGDATA (broke barman 3.13.0, CNPG #6932)',
    source: 'cloudnative-pg/cloudnative-pg:pkg/management/postgres (buildRestoreDataDirOptions)',
    tool: 'barman-cloud-restore',
    argv: (c) => ['--endpoint-url', c.ep, c.dest, SRV, c.backupId(), ...CP, c.restoreDir('in-tree')],
    code: 0,
    on: ['s3', 'file'],
    check: (_r, c) => expect(existsSync(join(c.restoreDir('in-tree'), 'PG_VERSION'))).toBe(true),
  },
  {
    id: 'retention "30d" → RECOVERY WINDOW OF 30 DAYS, one argv element; nothing to delete',
    source: `${LIB}pkg/command/backupdelete.go (DeleteBackupsByPolicy); ${LIB}pkg/utils/barman.go (ParsePolicy)`,
    tool: 'barman-cloud-backup-delete',
    argv: (c) => ['--endpoint-url', c.ep, ...CP, '--retention-policy', 'RECOVERY WINDOW OF 30 DAYS', c.dest, SRV],
    code: 0,
    on: ['s3', 'file'],
  },
  {
    id: 'retention "1d" where the store refuses the WAL deletions: logged, exit 0 (non-zero raises RetentionPolicyFailed)',
    source: `${LIB}pkg/command/backupdelete.go (DeleteBackupsByPolicy); ${PLUGIN}internal/cnpgi/instance/retention.go`,
    tool: 'barman-cloud-backup-delete',
    argv: (c) => ['--endpoint-url', proxyUrl, ...CP, '--retention-policy', 'RECOVERY WINDOW OF 1 DAYS', c.dest, 'retained'],
    code: 0,
    on: ['s3'],
    check: (r) => {
      expect(r.stderr).toMatch(/ERROR: Could not delete the following WALs for backup 20261129T050418/);
      expect(refusals.length).toBeGreaterThan(0);
    },
  },
];

async function store() {
  return openObjectStore({
    provider: 'aws-s3', bucket: BUCKET, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
}



describe.skipIf(skip)('the CloudNativePG plugin\'s argv and env, through bin/ (moto, file store, barman 3.4 side by side)', () => {
  const ctx = {} as Record<Variant, Ctx>;

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    work = mkdtempSync(join(tmpdir(), 'bc-cnpg-'));
    mkdirSync(join(work, 'controller-backup'));
    // PGDATA as the plugin sees it: absolute pg_wal paths.
    const pgdata = join(work, 'pgdata');
    mkdirSync(join(pgdata, 'pg_wal'), { recursive: true });
    writeFileSync(join(pgdata, 'pg_wal', SEG), withLongPageHeader(walLike(16 * 1024 * 1024, 3), SEG));
    writeFileSync(join(pgdata, 'pg_wal', SEG2), withLongPageHeader(walLike(16 * 1024 * 1024, 4), SEG2));
    pg = await startCluster();

    // A catalog for the refused-deletion row: two DONE backups older than one day, WAL before and after.
    const s = await store();
    const second = HEAD_DONE.replaceAll('20261129T050418', '20261130T050418').replace('backup_name=firsthead', 'backup_name=second')
      .replace(/begin_time=2026-11-29/, 'begin_time=2026-11-30').replace(/end_time=2026-11-29/, 'end_time=2026-11-30')
      .replace(/begin_wal=\w+/, 'begin_wal=000000010000000000000008').replace(/end_wal=\w+/, 'end_wal=000000010000000000000008');
    await s.put('ours/retained/base/20261129T050418/backup.info', Buffer.from(HEAD_DONE));
    await s.put('ours/retained/base/20261130T050418/backup.info', Buffer.from(second));
    for (const n of [5, 6, 7, 8]) await s.put(`ours/retained/wals/0000000100000000/00000001000000000000000${n}`, walLike(1024, n));
    await s.close();

    proxy = await startS3Proxy(moto.port, (r) => {
      const walDelete = isWalDelete(r);
      if (!((refuse === 'reads' && (r.method === 'GET' || r.method === 'HEAD')) || (refuse === 'wal-deletes' && walDelete))) return false;
      refusals.push(`${r.method} ${r.url}${walDelete ? ' (WAL delete)' : ''}`);
      return true;
    });
    proxyUrl = proxy.url;

    const restoreDir = (variant: Variant) => (shape: string) => {
      const d = join(work, `restore-${variant}-${shape}`);
      mkdirSync(d, { recursive: true });
      return d;
    };
    for (const variant of ['s3', 'file', 'barman34'] as const) {
      ctx[variant] = {
        variant,
        dest: variant === 'file' ? `file://${join(work, 'file-store')}/` : `s3://${BUCKET}/${variant === 's3' ? 'ours' : 'barman34'}/`,
        ep: moto.url,
        pgdata,
        restoreDir: restoreDir(variant),
        backupId: () => backupIds[variant] ?? 'unknown',
      };
    }
    mkdirSync(join(work, 'file-store'));
  }, 120_000);

  afterAll(async () => {
    await pg?.remove();
    await proxy?.close();
    await moto?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.each(SHAPES.map((s) => [s.id, s] as const))('%s', async (_id, shape) => {
    for (const variant of shape.on) {
      if (variant === 'barman34' && !BARMAN34) continue;
      const c = ctx[variant];
      const argv = shape.argv(c);
      const env = cleanEnv({ ...MOTO_ENV, ...shape.env?.(c) });
      refuse = shape.argv(c).includes(proxyUrl) ? (shape.tool === 'barman-cloud-backup-delete' ? 'wal-deletes' : 'reads') : 'nothing';
      refusals.length = 0;
      const r = variant === 'barman34'
        ? await runBarman(shape.tool, argv, env)
        : await runBin(shape.tool, argv, { env, timeoutMs: 120_000 });
      const want = variant === 'barman34' && shape.barman34 ? shape.barman34.code : shape.code;
      expect({ variant, source: shape.source, code: r.code }, r.stderr).toEqual({ variant, source: shape.source, code: want });
      if (variant !== 'barman34') {
        // No traceback, no multi-line dump: at most one line per message.
        expect(r.stderr).not.toMatch(/Traceback|\n\s+at /);
      }
      await shape.check?.(r, c);
    }
  }, 240_000);
});

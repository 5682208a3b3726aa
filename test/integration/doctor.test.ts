// `barman-cloud doctor` as an operator runs it: against moto with a real PostgreSQL 15 archiving
// through our wal-archive, and against the broken setups it must explain (missing bucket, refused
// credentials, unreachable endpoint, archive_mode off, archive_command aimed elsewhere).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startMoto, startAzurite, createS3Bucket, azuriteConnectionString, freePort, ROOT, type ServerHandle,
} from '../helpers/servers.ts';
import { runBin, cleanEnv, type BinResult } from '../helpers/run-bin.ts';
import { requireTool, postgresAvailable, startCluster, toolCommand, type PgCluster } from '../helpers/postgres.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const skip = requireTool('PostgreSQL 15', postgresAvailable());
const BUCKET = 'doctor';
const LINE = /^(ok|warn|FAIL)  +[^:]+: .+$/;

/** The status of each check, by name, from console output. */
function statuses(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.trimEnd().split('\n')) {
    expect(line).toMatch(LINE);
    const m = /^(\S+)\s+([^:]+):/.exec(line)!;
    out[m[2]!] = m[1]!;
  }
  return out;
}

describe.skipIf(skip)('barman-cloud doctor', () => {
  let moto: ServerHandle;
  let primary: PgCluster;
  const clusters: PgCluster[] = [];
  const url = (server = 'srv') => ['--endpoint-url', moto.url, `s3://${BUCKET}/pg`, server];
  const archiveCommand = (server = 'srv') => `${toolCommand('barman-cloud-wal-archive', url(server))} %p`;
  const doctor = (args: string[], env: Record<string, string | undefined> = {}): Promise<BinResult> =>
    runBin('barman-cloud', ['doctor', ...args], { env: cleanEnv({ ...MOTO_ENV, ...primary.env, ...env }), timeoutMs: 60_000 });

  async function bucketKeys(): Promise<string[]> {
    const store = await openObjectStore({
      provider: 'aws-s3', bucket: BUCKET, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    const keys: string[] = [];
    try {
      for await (const e of store.list('')) if (e.kind === 'object') keys.push(e.key);
    } finally {
      await store.close();
    }
    return keys;
  }

  beforeAll(async () => {
    moto = await startMoto();
    await createS3Bucket(moto.url, BUCKET);
    primary = await startCluster({
      conf: { archive_mode: 'on', archive_command: archiveCommand(), archive_timeout: '0' },
      serverEnv: { ...MOTO_ENV, HOME: '/tmp' },
    });
    clusters.push(primary);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', ...url()], {
      env: cleanEnv({ ...MOTO_ENV, ...primary.env }), timeoutMs: 120_000,
    });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
  }, 180_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
    await moto?.stop();
  });

  it('passes every check on a working setup (exit 0) and leaves no probe object behind', async () => {
    const before = await bucketKeys();
    const r = await doctor(url());
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(statuses(r.stdout)).toEqual({
      configuration: 'ok', bucket: 'ok', 'probe object': 'ok', catalog: 'ok', 'postgres connection': 'ok',
      'postgres privileges': 'ok', archive_mode: 'ok', archive_command: 'ok', wal_level: 'ok', pg_stat_archiver: 'ok',
    });
    expect(r.stdout).toMatch(/^ok {4}configuration: aws-s3, bucket doctor, path pg, endpoint http:\/\/127\.0\.0\.1:\d+; credentials: environment variables AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY$/m);
    expect(r.stdout).toMatch(/^ok {4}catalog: 1 backup \(1 DONE\); latest \d{8}T\d{6} ended .*; \d+ WAL objects?$/m);
    expect(r.stdout).toMatch(/^ok {4}archive_command: calls .*barman-cloud-wal-archive with s3:\/\/doctor\/pg srv %p$/m);
    expect(r.stdout).toMatch(/^ok {4}pg_stat_archiver: [1-9]\d* archived, the last [0-9A-F]{24}\S* \d+ \w+ ago, no failures since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
    expect(r.stdout).not.toContain('testing'); // the secret access key
    // The probe was written under pg/srv/ and is gone: the bucket holds exactly what it held before.
    expect(r.stdout).toMatch(/deleted pg\/srv\/barman-cloud-doctor-\d{8}T\d{6}Z-[0-9a-f]{12}\.probe/);
    const after = await bucketKeys();
    expect(after.filter((k) => k.includes('barman-cloud-doctor'))).toEqual([]);
    expect(after.filter((k) => !k.includes('/wals/'))).toEqual(before.filter((k) => !k.includes('/wals/')));
  });

  it('--format json parses, with the same checks', async () => {
    const r = await doctor(['--format', 'json', ...url()]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string }[]; ok: boolean };
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual([
      'configuration', 'bucket', 'probe object', 'catalog', 'postgres connection', 'postgres privileges',
      'archive_mode', 'archive_command', 'wal_level', 'pg_stat_archiver',
    ]);
    expect(report.checks.every((c) => c.status === 'ok' && c.detail.length > 0)).toBe(true);
  });

  it('a missing bucket is a FAIL with the fix, exit 1', async () => {
    const r = await doctor(['--no-postgres', '--endpoint-url', moto.url, 's3://no-such-bucket/pg', 'srv']);
    expect(r.code).toBe(1);
    expect(statuses(r.stdout)).toEqual({ configuration: 'ok', bucket: 'FAIL' });
    expect(r.stdout).toContain('FAIL  bucket: bucket no-such-bucket does not exist: fix its name in the URL, or create it (barman-cloud check-wal-archive s3://no-such-bucket/pg srv creates a missing bucket');
  });

  it('refused credentials: exit 2, a plain message, no secret (S3 on moto with authentication, Azure on azurite)', async () => {
    const secret = 'wR0ng/Secret+Key-0123456789abcdef';
    // moto checks signatures only when told to: every request is then refused for an unknown key.
    process.env.INITIAL_NO_AUTH_ACTION_COUNT = '0';
    let strict: ServerHandle;
    try {
      strict = await startMoto();
    } finally {
      delete process.env.INITIAL_NO_AUTH_ACTION_COUNT;
    }
    const azurite = await startAzurite();
    try {
      const s3 = await doctor(['--no-postgres', '-vv', '--endpoint-url', strict.url, `s3://${BUCKET}/pg`, 'srv'], {
        AWS_ACCESS_KEY_ID: 'AKIAWRONGKEY', AWS_SECRET_ACCESS_KEY: secret,
      });
      expect(s3.code).toBe(2);
      expect(s3.stdout).toMatch(/^FAIL  bucket: .*the store refused the credentials \(from environment variables AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY\): check that they are valid/m);
      const badKey = Buffer.from('not the azurite key at all, 0123456789').toString('base64');
      const connection = azuriteConnectionString(azurite.url).replace(/AccountKey=[^;]+/, `AccountKey=${badKey}`);
      const az = await doctor(['--no-postgres', '-vv', '--cloud-provider', 'azure-blob-storage', `${azurite.url}/devstoreaccount1/cont/pg`, 'srv'], {
        AZURE_STORAGE_CONNECTION_STRING: connection,
      });
      expect(az.code).toBe(2);
      expect(az.stdout).toMatch(/^ok {4}configuration: azure-blob-storage, container cont, path pg, .*credentials: a connection string \(AZURE_STORAGE_CONNECTION_STRING\)$/m);
      expect(az.stdout).toMatch(/^FAIL  bucket: .*the store refused the credentials/m);
      for (const out of [s3.stdout, s3.stderr, az.stdout, az.stderr]) {
        expect(out).not.toContain(secret);
        expect(out).not.toContain(badKey);
      }
    } finally {
      await Promise.all([strict.stop(), azurite.stop()]);
    }
  });

  it('an unreachable endpoint is exit 2; the PostgreSQL checks still run', async () => {
    const port = await freePort();
    const r = await doctor(['--endpoint-url', `http://127.0.0.1:${port}`, `s3://${BUCKET}/pg`, 'srv']);
    expect(r.code).toBe(2);
    const s = statuses(r.stdout);
    expect(s).toMatchObject({ configuration: 'ok', bucket: 'FAIL', 'postgres connection': 'ok', archive_mode: 'ok' });
    // The archive_command names moto's endpoint, not this one.
    expect(s.archive_command).toBe('warn');
    expect(r.stdout).toMatch(/FAIL  bucket: Could not connect .*: the endpoint cannot be reached/);
  });

  it('archive_command pointing to another server is a warning (exit 0)', async () => {
    primary.setConf({ archive_command: archiveCommand('other') });
    await primary.reload();
    try {
      await primary.waitFor("SELECT current_setting('archive_command') LIKE '% other %'", 't');
      const r = await doctor(url());
      expect(r.code).toBe(0);
      expect(statuses(r.stdout).archive_command).toBe('warn');
      expect(r.stdout).toMatch(/^warn  archive_command: calls .*barman-cloud-wal-archive but its server name is other, not srv: the WAL archive checked here is not the one PostgreSQL fills$/m);
    } finally {
      primary.setConf({ archive_command: archiveCommand() });
      await primary.reload();
    }
  });

  it('archive_mode off is a FAIL (exit 1); a role without backup rights is a warning with the GRANT', async () => {
    const off = await startCluster({ conf: { archive_mode: 'off' } });
    clusters.push(off);
    await off.psql('CREATE ROLE plain LOGIN');
    const r = await doctor([...url(), '-U', 'plain'], { ...off.env });
    expect(r.code).toBe(1);
    const s = statuses(r.stdout);
    expect(s).toMatchObject({ 'postgres connection': 'ok', 'postgres privileges': 'warn', archive_mode: 'FAIL', archive_command: 'warn' });
    expect(r.stdout).toMatch(/^FAIL  archive_mode: archive_mode is off: PostgreSQL archives no WAL/m);
    expect(r.stdout).toMatch(/^ok {4}postgres connection: connected to PostgreSQL 15\.\S+ \(a primary\) as plain@/m);
    expect(r.stdout).toContain('GRANT EXECUTE ON FUNCTION pg_backup_start(text,boolean) TO plain;');
    await off.remove();
  });

  it('a PostgreSQL that cannot be reached is a FAIL (exit 1) that suggests --no-postgres', async () => {
    const r = await doctor(url(), { PGHOST: '/nonexistent', PGPORT: '1' });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL  postgres connection: cannot connect to PostgreSQL: .*--no-postgres to check the object store only$/m);
  });

  it('works on a file:// store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-doctor-'));
    try {
      const r = await doctor(['--no-postgres', `file://${dir}`, 'srv']);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(statuses(r.stdout)).toEqual({ configuration: 'ok', bucket: 'ok', 'probe object': 'ok', catalog: 'ok' });
      expect(r.stdout).toContain(`ok    configuration: local directory ${dir}; credentials: none needed (local directory)`);
      expect(readdirSync(dir, { recursive: true })).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is not a drop-in executable, and -t behaves as for every command', async () => {
    expect(existsSync(join(ROOT, 'bin', 'barman-cloud-doctor'))).toBe(false);
    const t = await doctor(['-t', ...url()]);
    expect(t.code).toBe(0);
    expect(t.stdout).toBe('');
  });
});

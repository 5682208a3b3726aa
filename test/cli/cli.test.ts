// The real executables, spawned as PostgreSQL or an operator would: version format, argparse
// compatibility, exit codes of -t against live, missing-bucket and unreachable stores, secrets.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS, BARMAN_CONTRACT_VERSION } from '../../src/cli/spec.ts';
import {
  startMoto, startAzurite, startGcs, createS3Bucket, azuriteConnectionString, freePort, ROOT, type ServerHandle,
} from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { openObjectStore, DEFAULT_RETRY, type StoreConfig } from '../../src/storage/config.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const WAL = '000000010000000000000001';
/** The commands that have their own barman-cloud-<command> executable (not `completion`). */
const DROP_INS = COMMANDS.filter((c) => !c.umbrellaOnly);
let scratch: string;
let store: string;

/** Run a command by its prog: its drop-in executable, or `barman-cloud <command>` when it is umbrella-only. */
function runProg(prog: string, args: string[], opts?: Parameters<typeof runBin>[2]) {
  const [bin, ...sub] = prog.split(' ');
  return runBin(bin!, [...sub, ...args], opts);
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'bc-cli-'));
  store = join(scratch, 'store');
  mkdirSync(store);
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('executables and --version', () => {
  it.each(DROP_INS.map((c) => [c.prog]))('%s --version prints "<prog> X.Y.Z" and exits 0', async (prog) => {
    const r = await runBin(prog, ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${prog} ${BARMAN_CONTRACT_VERSION}\n`);
    expect(r.stderr).toBe('');
    // The operator's probe (docs/compatibility.md#cloudnativepg-plugin-or-in-tree) must match and parse as semver.
    expect(/barman-cloud.* (?<v>.*)/.exec(r.stdout.trim())?.groups?.v).toBe('3.17.0');
    const short = await runProg(prog, ['-V', 's3://ignored']);
    expect(short.stdout).toBe(`${prog} ${BARMAN_CONTRACT_VERSION}\n`);
  });

  it('barman-cloud --version prints our version and the contract version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runBin('barman-cloud', ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`barman-cloud ${pkg.version} (barman-cloud ${BARMAN_CONTRACT_VERSION} compatible)\n`);
  });

  it('barman-cloud dispatches to every command and lists them in --help', async () => {
    const help = await runBin('barman-cloud', ['--help']);
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toContain(c.name);
    const v = await runBin('barman-cloud', ['wal-restore', '--version']);
    expect(v.stdout).toBe(`barman-cloud-wal-restore ${BARMAN_CONTRACT_VERSION}\n`);
    const bad = await runBin('barman-cloud', ['no-such-command']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain("invalid choice: 'no-such-command'");
    const t = await runBin('barman-cloud', ['backup-list', '-t', `file://${store}`, 'srv']);
    expect(t.code).toBe(0);
  });

  it.each(DROP_INS.map((c) => [c.prog, c]))('%s --help documents every option and exits 0', async (prog, spec) => {
    const r = await runBin(prog, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(`usage: ${prog} `)).toBe(true);
    for (const o of spec.options) expect(r.stdout).toContain(o.long);
    for (const p of spec.positionals) expect(r.stdout).toContain(p.name);
  });
});

describe('argparse compatibility: exit 3 with usage on stderr', () => {
  const cases: [string, string, string[], RegExp][] = [
    ['unknown option', 'barman-cloud-backup-list', ['--bogus', 's3://b', 'srv'], /unrecognized arguments: --bogus/],
    ['-h is not help', 'barman-cloud-wal-restore', ['-h', 's3://b', 'srv', WAL, '/tmp/x'], /unrecognized arguments: -h/],
    ['missing positionals', 'barman-cloud-wal-restore', ['s3://b', 'srv'], /the following arguments are required: wal_name, wal_dest/],
    ['extra positional', 'barman-cloud-backup-list', ['s3://b', 'srv', 'extra'], /unrecognized arguments: extra/],
    ['bad choice', 'barman-cloud-backup-list', ['--cloud-provider', 'ftp', 's3://b', 'srv'], /argument --cloud-provider: invalid choice: 'ftp'/],
    ['-v with -q', 'barman-cloud-backup-list', ['-v', '-q', 's3://b', 'srv'], /argument -q\/--quiet: not allowed with argument -v\/--verbose/],
    ['two codecs', 'barman-cloud-wal-archive', ['-z', '--lz4', 's3://b', 'srv', WAL], /argument --lz4: not allowed with argument -z\/--gzip/],
    ['bad size', 'barman-cloud-wal-archive', ['--max-block-size', '0', 's3://b', 'srv', WAL], /argument --max-block-size: .*not a valid size/],
    ['bad int', 'barman-cloud-backup-list', ['--read-timeout', 'soon', 's3://b', 'srv'], /argument --read-timeout: invalid int value: 'soon'/],
    ['missing value', 'barman-cloud-backup-list', ['s3://b', 'srv', '-P'], /argument -P\/--aws-profile: expected one argument/],
    ['ambiguous abbreviation', 'barman-cloud-backup', ['--azure', 'x', 's3://b', 'srv'], /ambiguous option: --azure could match/],
    ['required group', 'barman-cloud-backup-keep', ['s3://b', 'srv', 'latest'], /one of the arguments -r\/--release -s\/--status --target is required/],
    ['delete needs -b or -r', 'barman-cloud-backup-delete', ['s3://b', 'srv'], /one of the arguments -b\/--backup-id -r\/--retention-policy is required/],
    ['--target-tli not a number', 'barman-cloud-restore', ['--target-tli', 'abc', 's3://b', 'srv', 'auto', '/tmp/x'], /argument --target-tli: 'abc' is not a valid input/],
    ['--target-tli in hex', 'barman-cloud-restore', ['--target-tli', '0x2', 's3://b', 'srv', 'auto', '/tmp/x'], /argument --target-tli: '0x2' is not a valid input/],
    ['--target-tli zero', 'barman-cloud-restore', ['--target-tli', '0', 's3://b', 'srv', 'auto', '/tmp/x'], /argument --target-tli: '0' is not a valid positive integer/],
    ['--target-tli keyword case', 'barman-cloud-restore', ['--target-tli', 'Latest', 's3://b', 'srv', 'auto', '/tmp/x'], /argument --target-tli: 'Latest' is not a valid input/],
    ['nargs=* swallows positionals', 'barman-cloud-wal-archive', [`file://${'/tmp'}`, '--tags', 'a,b', 'srv', WAL], /required: server_name/],
  ];
  it.each(cases)('%s', async (_what, prog, args, message) => {
    const r = await runBin(prog, args);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^usage: ${prog} `));
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^${prog}: error: `));
  });

  it('--target-tli accepts a decimal timeline, current and latest (not usage errors)', async () => {
    const dest = join(scratch, 'tli-dest');
    for (const [tli, message] of [
      ['2', /Cannot find any candidate backup for recovery/],
      [' +3 ', /Cannot find any candidate backup for recovery/],
      ['latest', /No WAL files found/],
      ['current', /'current' is not supported/],
    ] as const) {
      const r = await runBin('barman-cloud-restore', ['--target-tli', tli, `file://${store}`, 'srv', 'auto', dest]);
      expect(r.stderr).not.toMatch(/usage:/);
      expect(r.stderr).toMatch(message);
      expect(r.code === 1 || r.code === 4).toBe(true);
    }
  });

  it('an invalid WAL name is exit 3 with one log line, checked before -t', async () => {
    for (const prog of ['barman-cloud-wal-archive', 'barman-cloud-wal-restore']) {
      const args = prog.endsWith('archive') ? ['-t', `file://${store}`, 'srv', 'pg_wal/not-a-wal'] : ['-t', `file://${store}`, 'srv', 'not-a-wal', '/tmp/x'];
      const r = await runBin(prog, args);
      expect(r.code).toBe(3);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/ERROR: .*not-a-wal is an invalid name for a WAL file/);
    }
  });

  it('wal-archive without wal_path exits 1 (barman hook-mode quirk)', async () => {
    const r = await runBin('barman-cloud-wal-archive', [`file://${store}`, 'srv']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/wal_path/);
  });
});

describe('options anywhere, --opt=value, abbreviations', () => {
  it('accepts options between and after positionals, in both value forms', async () => {
    const forms = [
      ['-t', `file://${store}`, 'srv'],
      [`file://${store}`, '-t', 'srv', '-vv'],
      [`file://${store}`, 'srv', '--cloud-provider=aws-s3', '--test'],
      ['--cloud-provider', 'aws-s3', `file://${store}`, 'srv', '-t', '--read-timeout=5'],
      ['--cloud-prov=google-cloud-storage', '--tes', store, 'srv'],
    ];
    for (const args of forms) {
      const r = await runBin('barman-cloud-backup-list', args);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: expect.any(String) });
    }
  });

  it('expands a unique prefix the way argparse does (shown by its effect)', async () => {
    const port = await freePort();
    // --endp is --endpoint-url (barman's own flags win over our --endpoint-ca): unreachable → 2.
    const r = await runBin('barman-cloud-backup-list', ['-t', `--endp=http://127.0.0.1:${port}`, 's3://bucket', 'srv'], {
      env: cleanEnv(MOTO_ENV),
    });
    expect(r.code).toBe(2);
    const bad = await runBin('barman-cloud-backup-list', ['--cloud-prov', 'azure', 's3://b', 'srv']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/argument --cloud-provider: invalid choice: 'azure'/);
    // Deprecated aliases are accepted.
    const alias = await runBin('barman-cloud-backup-list', ['-t', '--profile', 'x', '--credential', 'default', `file://${store}`, 'srv']);
    expect(alias.code).toBe(0);
  });
});

describe('-t exit codes against real servers', () => {
  let moto: ServerHandle;
  let azurite: ServerHandle;
  let gcs: ServerHandle;
  let closedPort: number;
  beforeAll(async () => {
    [moto, azurite, gcs] = await Promise.all([startMoto(), startAzurite(), startGcs()]);
    await createS3Bucket(moto.url, 'live-bucket');
    closedPort = await freePort();
  });
  afterAll(async () => {
    await Promise.all([moto?.stop(), azurite?.stop(), gcs?.stop()]);
  });

  it('S3 (moto): 0 live, 1 missing bucket, 2 unreachable — for every command', async () => {
    const env = cleanEnv(MOTO_ENV);
    for (const c of DROP_INS) {
      const tail = c.name === 'wal-archive' ? [WAL] : c.name === 'wal-restore' ? [WAL, '/tmp/x'] :
        ['backup-show', 'backup-keep'].includes(c.name) ? ['latest', ...(c.name === 'backup-keep' ? ['-s'] : [])] :
        c.name === 'restore' ? ['latest', '/tmp/r'] : c.name === 'backup-delete' ? ['-r', 'REDUNDANCY 1'] : [];
      const live = await runProg(c.prog, ['-t', '--endpoint-url', moto.url, 's3://live-bucket/pfx', 'srv', ...tail], { env });
      expect({ prog: c.prog, code: live.code, err: live.stderr }).toEqual({ prog: c.prog, code: 0, err: '' });
      const missing = await runProg(c.prog, ['-t', '--endpoint-url', moto.url, 's3://missing-bucket', 'srv', ...tail], { env });
      // check-wal-archive -t only tests connectivity (docs/format.md#check-wal-archive).
      expect({ prog: c.prog, code: missing.code }).toEqual({ prog: c.prog, code: c.name === 'check-wal-archive' ? 0 : 1 });
      const down = await runProg(c.prog, ['-t', '--endpoint-url', `http://127.0.0.1:${closedPort}`, 's3://live-bucket', 'srv', ...tail], { env });
      expect({ prog: c.prog, code: down.code }).toEqual({ prog: c.prog, code: 2 });
      expect(down.stderr).toMatch(/ERROR: Can't connect to cloud provider: /);
    }
  });

  it('Azure (azurite) and GCS (test server): 0 / 1 / 2', async () => {
    const az = (url: string) => cleanEnv({ AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(url) });
    const azArgs = (bucket: string, url: string) => ['-t', '--cloud-provider', 'azure-blob-storage', `${url}/devstoreaccount1/${bucket}`, 'srv'];
    for (const config of [
      { provider: 'azure-blob-storage', bucket: 'live', retry: DEFAULT_RETRY, auth: { kind: 'connection-string', connectionString: azuriteConnectionString(azurite.url) } },
      { provider: 'google-cloud-storage', bucket: 'live', retry: DEFAULT_RETRY, apiEndpoint: gcs.url, projectId: 'test' },
    ] as StoreConfig[]) {
      const s = await openObjectStore(config);
      await s.createBucket();
      await s.close();
    }
    expect((await runBin('barman-cloud-backup-list', azArgs('live', azurite.url), { env: az(azurite.url) })).code).toBe(0);
    expect((await runBin('barman-cloud-backup-list', azArgs('nothere', azurite.url), { env: az(azurite.url) })).code).toBe(1);
    const downUrl = `http://127.0.0.1:${closedPort}`;
    expect((await runBin('barman-cloud-backup-list', azArgs('live', downUrl), { env: az(downUrl) })).code).toBe(2);

    const g = (host: string) => cleanEnv({ STORAGE_EMULATOR_HOST: host });
    const gArgs = (bucket: string) => ['-t', '--cloud-provider', 'google-cloud-storage', `gs://${bucket}/path`, 'srv'];
    expect((await runBin('barman-cloud-backup-list', gArgs('live'), { env: g(gcs.url) })).code).toBe(0);
    expect((await runBin('barman-cloud-backup-list', gArgs('nothere'), { env: g(gcs.url) })).code).toBe(1);
    expect((await runBin('barman-cloud-backup-list', gArgs('live'), { env: g(`http://127.0.0.1:${closedPort}`) })).code).toBe(2);
  });

  it('file store: 0 for an existing directory, 1 for a missing one', async () => {
    expect((await runBin('barman-cloud-backup-list', ['-t', `file://${store}`, 'srv'])).code).toBe(0);
    expect((await runBin('barman-cloud-backup-list', ['-t', join(scratch, 'missing'), 'srv'])).code).toBe(1);
  });

  it('a command that uses S3 never loads the Azure or GCS SDK (nor the AWS SDK when it can do without)', async () => {
    const traced = async (extraEnv: Record<string, string>, args: string[]) => {
      const trace = join(scratch, `modules-${Math.random().toString(36).slice(2)}.txt`);
      writeFileSync(trace, '');
      const r = await runBin('barman-cloud-backup-list', ['-t', '--endpoint-url', moto.url, ...args, 's3://live-bucket', 'srv'], {
        env: cleanEnv({ ...extraEnv, BC_TRACE_MODULES: trace }),
        nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'trace-modules.mjs')],
      });
      expect(r.code).toBe(0);
      return readFileSync(trace, 'utf8');
    };
    // Static keys: the lean SigV4 client answers; no SDK at all.
    const lean = await traced(MOTO_ENV, []);
    expect(lean).toMatch(/dist\/cli\/s3-lean-\w+\.js/);
    expect(lean).not.toMatch(/@aws-sdk\//);
    // A profile needs the SDK's credential chain: the AWS SDK, still never Azure or GCS.
    const creds = join(scratch, 'aws-credentials');
    writeFileSync(creds, '[bench]\naws_access_key_id = testing\naws_secret_access_key = testing\n');
    const sdk = await traced({ AWS_SHARED_CREDENTIALS_FILE: creds, AWS_CONFIG_FILE: creds, AWS_EC2_METADATA_DISABLED: 'true' }, ['-P', 'bench']);
    expect(sdk).toMatch(/@aws-sdk\/client-s3/);
    for (const loaded of [lean, sdk]) {
      expect(loaded).not.toMatch(/@azure\//);
      expect(loaded).not.toMatch(/@google-cloud\//);
      expect(loaded).not.toMatch(/dist\/cli\/(azure|gcs)-\w+\.js/);
    }
  });

  it('never prints secrets, even at debug level and on failure', async () => {
    const secret = 'sEcReT/KEY+value-1234567890';
    const keyFile = join(scratch, 'secret');
    const idFile = join(scratch, 'id');
    writeFileSync(keyFile, `${secret}\n`);
    writeFileSync(idFile, 'AKIDEXAMPLE');
    const r = await runBin('barman-cloud-backup-list', [
      '-t', '-vv', '--s3-access-key-id-file', idFile, '--s3-secret-access-key-file', keyFile,
      '--endpoint-url', `http://127.0.0.1:${closedPort}`, 's3://live-bucket', 'srv',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain(secret);
    const badKey = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=';
    const az = await runBin('barman-cloud-backup-list', [
      '-t', '-vv', '--cloud-provider', 'azure-blob-storage', `http://127.0.0.1:${closedPort}/devstoreaccount1/c`, 'srv',
    ], {
      env: cleanEnv({
        AZURE_STORAGE_CONNECTION_STRING:
          `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${badKey};BlobEndpoint=http://127.0.0.1:${closedPort}/devstoreaccount1;`,
      }),
    });
    expect(az.code).toBe(2);
    expect(az.stderr).not.toContain(badKey);
    expect(`${r.stdout}${az.stdout}`).toBe('');
  });
});

describe('store options mirror the ObjectStore fields', () => {
  it('rejects contradictory credential flags with a clear usage error', async () => {
    const f = join(scratch, 'k');
    writeFileSync(f, 'x');
    const cases: string[][] = [
      ['--s3-inherit-from-iam-role', '--s3-access-key-id-file', f, '--s3-secret-access-key-file', f, 's3://b', 'srv'],
      ['--s3-access-key-id-file', f, 's3://b', 'srv'],
      ['--cloud-provider', 'azure-blob-storage', '--azure-storage-key-file', f, '--azure-inherit-from-azure-ad', 'https://a.blob.core.windows.net/c', 'srv'],
      ['--cloud-provider', 'azure-blob-storage', '--azure-credential', 'azure-cli', '--azure-use-default-azure-credentials', 'https://a.blob.core.windows.net/c', 'srv'],
      ['--cloud-provider', 'google-cloud-storage', '--google-gke-environment', '--google-application-credentials', f, 'gs://b', 'srv'],
      ['--s3-region', 'eu-west-1', '--cloud-provider', 'google-cloud-storage', 'gs://b', 'srv'],
      ['--s3-secret-access-key-file', join(scratch, 'missing-file'), '--s3-access-key-id-file', f, 's3://b', 'srv'],
    ];
    for (const args of cases) {
      const r = await runBin('barman-cloud-backup-list', ['-t', ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 3 });
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('needs a connection string for an emulator URL, as barman does (exit 4)', async () => {
    const r = await runBin('barman-cloud-backup-list', ['-t', '--cloud-provider', 'azure-blob-storage', 'http://127.0.0.1:1/acct/c', 'srv']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/A connection string must be provided when using emulated storage/);
  });

  it('rejects an invalid s3 URL with exit 4', async () => {
    const r = await runBin('barman-cloud-backup-list', ['-t', 'http://bucket', 'srv']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/Invalid s3 URL address: http:\/\/bucket/);
  });
});

describe('restore --target-time', () => {
  it('accepts the offsets PostgreSQL prints (+00, +0130) and rejects what is not a time', async () => {
    const store = mkdtempSync(join(tmpdir(), 'bc-target-'));
    for (const t of ['2026-11-29 10:00:00+00', '2026-11-29T10:00:00+0130', '2026-11-29 10:00:00.5-05:00']) {
      const r = await runBin('barman-cloud-restore', ['--target-time', t, `file://${store}`, 'srv', 'auto', join(store, 'dest')]);
      expect(r.stderr).not.toMatch(/Invalid target time/);
      expect(r.stderr).toMatch(/Cannot find any candidate backup/);
      expect(r.code).toBe(1);
    }
    const bad = await runBin('barman-cloud-restore', ['--target-time', 'yesterday-ish', `file://${store}`, 'srv', 'auto', join(store, 'dest')]);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/Invalid target time: yesterday-ish/);
  });
});

describe('a reader that stops early', () => {
  it('ends the command quietly (exit 0, no stack trace), as `| head` expects', async () => {
    const { spawnSync } = await import('node:child_process');
    const script = `${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, 'bin', 'barman-cloud'))} completion fish | head -c 1 >/dev/null; echo "rc=\${PIPESTATUS[0]}"`;
    const r = spawnSync('bash', ['-c', script], { env: cleanEnv(), encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('rc=0');
  });
});

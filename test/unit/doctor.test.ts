// The pure pieces of `barman-cloud doctor`: archive_command parsing and comparison, the PostgreSQL
// verdicts, error classification, output formats and exit codes.
import { describe, it, expect } from 'vitest';
import {
  checkArchiveCommand, parseWalArchiveArgs, scanArchiveCommand, splitShellCommands, targetDifferences, type ArchiveTarget,
} from '../../src/cli/doctor/archive-command.ts';
import {
  ago, backupFunctions, checkArchiveMode, checkArchiver, checkPrivileges, checkWalLevel, type ArchiverStats, type PostgresFacts,
} from '../../src/cli/doctor/postgres-checks.ts';
import { exitCode, fail, formatConsole, formatJson, ok, warn } from '../../src/cli/doctor/report.ts';
import { classifyStoreError, probeKey } from '../../src/cli/doctor/store-checks.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { AccessDeniedError, BucketNotFoundError, NetworkError, StorageError } from '../../src/errors.ts';
import { registerSecret } from '../../src/log.ts';

const TARGET: ArchiveTarget = { destinationUrl: 's3://bkt/pg', serverName: 'srv', cloudProvider: 'aws-s3', endpointUrl: 'http://minio:9000' };

describe('splitShellCommands', () => {
  it('resolves quotes and backslashes, splits on operators, drops redirections and comments', async () => {
    expect(splitShellCommands(`cp "%p" '/arch dir/%f' && a\\ b c; d | e || f & g`)).toEqual([
      ['cp', '%p', '/arch dir/%f'], ['a b', 'c'], ['d'], ['e'], ['f'], ['g'],
    ]);
    expect(splitShellCommands('x --opt "a \\"q\\" \\$b" 2>>/var/log/x.log >/dev/null 2>&1 y # comment')).toEqual([
      ['x', '--opt', 'a "q" $b', 'y'],
    ]);
    expect(splitShellCommands('(test -f x) \n z')).toEqual([['test', '-f', 'x'], ['z']]);
    expect(splitShellCommands('   ')).toEqual([]);
  });
});

describe('scanArchiveCommand', () => {
  it('finds the wal-archive call behind env assignments, node, a path or the umbrella', async () => {
    expect(scanArchiveCommand('')).toEqual({ kind: 'empty' });
    expect(scanArchiveCommand('barman-cloud-wal-archive s3://b srv %p')).toEqual({
      kind: 'wal-archive', call: { program: 'barman-cloud-wal-archive', args: ['s3://b', 'srv', '%p'] },
    });
    expect(scanArchiveCommand("AWS_PROFILE=x /usr/bin/node '/opt/bc/bin/barman-cloud-wal-archive' -z s3://b srv %p")).toMatchObject({
      kind: 'wal-archive', call: { program: '/opt/bc/bin/barman-cloud-wal-archive', args: ['-z', 's3://b', 'srv', '%p'] },
    });
    expect(scanArchiveCommand('test ! -f /x/%f && /usr/local/bin/barman-cloud wal-archive s3://b srv %p')).toMatchObject({
      kind: 'wal-archive', call: { program: '/usr/local/bin/barman-cloud', args: ['s3://b', 'srv', '%p'] },
    });
  });

  it('names other programs, and recognises barman-wal-archive and the CloudNativePG manager', async () => {
    expect(scanArchiveCommand('cp %p /mnt/archive/%f')).toEqual({ kind: 'other', program: 'cp' });
    expect(scanArchiveCommand('barman-wal-archive backup pg %p')).toMatchObject({ known: 'barman-wal-archive' });
    expect(scanArchiveCommand('/controller/manager wal-archive --log-destination /controller/log/postgres.json %p'))
      .toMatchObject({ known: 'cloudnative-pg' });
  });
});

describe('parseWalArchiveArgs and targetDifferences', () => {
  it('reads the arguments with wal-archive\'s own parser (abbreviations, --opt=value, options anywhere)', async () => {
    expect(parseWalArchiveArgs(['--endp=http://minio:9000', 's3://bkt/pg/', '--gzip', 'srv', '%p'])).toEqual({
      valid: true, destinationUrl: 's3://bkt/pg/', serverName: 'srv', walPath: '%p', cloudProvider: 'aws-s3', endpointUrl: 'http://minio:9000',
    });
    expect(parseWalArchiveArgs(['--bogus', 's3://b', 'srv', '%p'])).toEqual({ valid: false, error: 'unrecognized arguments: --bogus' });
  });

  it('is the same place with a trailing slash, and names every difference otherwise', async () => {
    const same = parseWalArchiveArgs(['--endpoint-url', 'http://minio:9000/', 's3://bkt/pg/', 'srv', '%p']);
    if (!same.valid) throw new Error(same.error);
    expect(await targetDifferences(same, TARGET)).toEqual([]);
    const other = parseWalArchiveArgs(['--endpoint-url', 'https://s3.example', 's3://bkt/other', 'db2', '%p']);
    if (!other.valid) throw new Error(other.error);
    expect(await targetDifferences(other, TARGET)).toEqual([
      'it archives to s3://bkt/other, not s3://bkt/pg',
      'its server name is db2, not srv',
      'its endpoint is https://s3.example, not http://minio:9000',
    ]);
    // No --endpoint-url: PostgreSQL's environment (AWS_ENDPOINT_URL) decides, which is not visible.
    const implicit = parseWalArchiveArgs(['s3://bkt/pg', 'srv', '%p']);
    if (!implicit.valid) throw new Error(implicit.error);
    expect(await targetDifferences(implicit, TARGET)).toEqual([]);
    const gcs = parseWalArchiveArgs(['--cloud-provider', 'google-cloud-storage', 'gs://bkt/pg', 'srv', '%p']);
    if (!gcs.valid) throw new Error(gcs.error);
    expect(await targetDifferences(gcs, TARGET)).toEqual(['it uses google-cloud-storage, not aws-s3']);
  });
});

describe('checkArchiveCommand', () => {
  const cmd = (archiveCommand: string, archiveMode = 'on', archiveLibrary?: string) =>
    checkArchiveCommand({ archiveMode, archiveCommand, archiveLibrary }, TARGET);

  it('ok when it archives to the checked store and server', async () => {
    expect(await cmd('barman-cloud-wal-archive --endpoint-url http://minio:9000 s3://bkt/pg srv %p')).toEqual(
      ok('archive_command', 'calls barman-cloud-wal-archive with s3://bkt/pg srv %p'),
    );
  });

  it('FAIL when archiving is on with an empty command, arguments wal-archive refuses, or no %p', async () => {
    expect((await cmd('')).status).toBe('fail');
    expect((await cmd('', 'off')).status).toBe('warn');
    expect(await cmd('barman-cloud-wal-archive --nope s3://bkt/pg srv %p')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/refuses \(unrecognized arguments: --nope\)/) });
    expect(await cmd('barman-cloud-wal-archive --endpoint-url http://minio:9000 s3://bkt/pg srv')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/without %p/) });
  });

  it('warn when it points elsewhere, runs another tool, or archive_library takes over', async () => {
    expect(await cmd('barman-cloud-wal-archive --endpoint-url http://minio:9000 s3://bkt/pg other %p')).toMatchObject({
      status: 'warn', detail: expect.stringMatching(/its server name is other, not srv/),
    });
    expect(await cmd('cp %p /mnt/%f')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/runs cp, not barman-cloud-wal-archive/) });
    expect((await cmd('x', 'on', 'basic_archive')).status).toBe('warn');
  });

  it('never repeats the command line itself (it may hold secrets)', async () => {
    const r = await cmd('AWS_SECRET_ACCESS_KEY=hunter2hunter2 cp %p /mnt/%f');
    expect(r.detail).not.toContain('hunter2');
  });
});

const facts = (over: Partial<PostgresFacts> = {}): PostgresFacts => ({
  where: 'bob@/tmp:5432/postgres', user: 'bob', version: '15.14', versionNum: 150014, inRecovery: false, superuser: false,
  functions: backupFunctions(150014).map((name) => ({ name, signature: `${name}(text)`, executable: true })),
  readAllSettings: true, archiveMode: 'on', archiveCommand: '', walLevel: 'replica',
  archiver: { archivedCount: 0, lastArchivedWal: null, lastArchivedTime: null, failedCount: 0, lastFailedWal: null, lastFailedTime: null, statsReset: null },
  ...over,
});

describe('PostgreSQL verdicts', () => {
  it('names the backup functions of each version', async () => {
    expect(backupFunctions(150000)).toEqual(['pg_backup_start', 'pg_backup_stop', 'pg_switch_wal', 'pg_create_restore_point']);
    expect(backupFunctions(140005)).toEqual(['pg_start_backup', 'pg_stop_backup', 'pg_switch_wal', 'pg_create_restore_point']);
    expect(backupFunctions(90624)[2]).toBe('pg_switch_xlog');
  });

  it('privileges: superuser or grants are ok; missing ones are a warning with the GRANT to run', async () => {
    expect(checkPrivileges(facts({ superuser: true })).status).toBe('ok');
    expect(checkPrivileges(facts()).status).toBe('ok');
    const missing = checkPrivileges(facts({
      readAllSettings: false,
      functions: [{ name: 'pg_backup_start', signature: 'pg_backup_start(text,boolean)', executable: false }],
    }));
    expect(missing.status).toBe('warn');
    expect(missing.detail).toContain('GRANT EXECUTE ON FUNCTION pg_backup_start(text,boolean) TO bob; GRANT pg_read_all_settings TO bob;');
  });

  it('archive_mode off is a FAIL, on on a standby a warning; wal_level minimal a FAIL', async () => {
    expect(checkArchiveMode(facts({ archiveMode: 'off' })).status).toBe('fail');
    expect(checkArchiveMode(facts({ archiveMode: 'on', inRecovery: true })).status).toBe('warn');
    expect(checkArchiveMode(facts({ archiveMode: 'always', inRecovery: true })).status).toBe('ok');
    expect(checkWalLevel(facts({ walLevel: 'minimal' })).status).toBe('fail');
    expect(checkWalLevel(facts({ walLevel: 'logical' })).status).toBe('ok');
  });

  it('pg_stat_archiver: failing now or within a day is a warning, an old failure is not', async () => {
    const now = new Date('2026-11-29T12:00:00Z');
    const base: ArchiverStats = {
      archivedCount: 10, lastArchivedWal: '00000001000000000000000A', lastArchivedTime: new Date('2026-11-29T11:00:00Z'),
      failedCount: 0, lastFailedWal: null, lastFailedTime: null, statsReset: null,
    };
    expect(checkArchiver(base, now)).toEqual(ok('pg_stat_archiver', '10 archived, the last 00000001000000000000000A 60 minutes ago, no failures'));
    const failing = { ...base, failedCount: 3, lastFailedWal: '00000001000000000000000B', lastFailedTime: new Date('2026-11-29T11:59:00Z') };
    expect(checkArchiver(failing, now)).toMatchObject({ status: 'warn', detail: expect.stringMatching(/archiving is failing/) });
    const recovered = { ...failing, lastFailedTime: new Date('2026-11-29T10:00:00Z') };
    expect(checkArchiver(recovered, now)).toMatchObject({ status: 'warn', detail: expect.stringMatching(/recovered/) });
    const old = { ...failing, lastFailedTime: new Date('2026-11-20T10:00:00Z'), lastArchivedTime: new Date('2026-11-29T11:00:00Z') };
    expect(checkArchiver(old, now).status).toBe('ok');
    expect(checkArchiver({ ...base, archivedCount: 0, lastArchivedWal: null, lastArchivedTime: null }, now).detail).toBe('nothing archived yet, no failures');
  });

  it('says how long ago in words', async () => {
    const now = new Date('2026-11-29T12:00:00Z');
    expect(ago(new Date('2026-11-29T11:59:59Z'), now)).toBe('1 second ago');
    expect(ago(new Date('2026-11-29T09:00:00Z'), now)).toBe('3 hours ago');
    expect(ago(new Date('2026-11-20T12:00:00Z'), now)).toBe('9 days ago');
  });
});

describe('store errors, probe key, output and exit codes', () => {
  it('classifies storage errors into what the user fixes', async () => {
    expect(classifyStoreError(new BucketNotFoundError('b'))).toBe('bucket-missing');
    expect(classifyStoreError(new AccessDeniedError('InvalidAccessKeyId'))).toBe('credentials');
    expect(classifyStoreError(new NetworkError('Could not connect (connect ECONNREFUSED 127.0.0.1:9)'))).toBe('unreachable');
    const tls = Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    expect(classifyStoreError(new NetworkError('Could not connect', { cause: tls }))).toBe('tls');
    expect(classifyStoreError(new StorageError('InternalError (HTTP 500)'))).toBe('other');
  });

  it('puts the probe directly under <path>/<server_name>/ with a unique name', async () => {
    const key = probeKey(new ServerLayout('pg/', 'srv'), new Date('2026-11-29T09:08:07.123Z'), 'abc123');
    expect(key).toBe('pg/srv/barman-cloud-doctor-20261129T090807Z-abc123.probe');
  });

  it('prints one line per check, JSON with ok, and redacts registered secrets', async () => {
    registerSecret('sup3rs3cr3t');
    const results = [ok('configuration', 'fine'), warn('catalog', 'two\nlines'), fail('bucket', 'key sup3rs3cr3t refused')];
    expect(formatConsole(results)).toBe('ok    configuration: fine\nwarn  catalog: two lines\nFAIL  bucket: key *** refused\n');
    expect(JSON.parse(formatJson(results))).toEqual({
      checks: [
        { name: 'configuration', status: 'ok', detail: 'fine' },
        { name: 'catalog', status: 'warn', detail: 'two lines' },
        { name: 'bucket', status: 'fail', detail: 'key *** refused' },
      ],
      ok: false,
    });
  });

  it('exit code: 0 with warnings, 1 with a FAIL, 2 when the store was unusable', async () => {
    expect(exitCode([ok('a', ''), warn('b', '')], false)).toBe(0);
    expect(exitCode([ok('a', ''), fail('b', '')], false)).toBe(1);
    expect(exitCode([fail('a', '')], true)).toBe(2);
  });
});

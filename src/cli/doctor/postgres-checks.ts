// `barman-cloud doctor`: the PostgreSQL checks. gatherPostgresFacts() asks the server (connection
// rules of barman-cloud-backup: -h/-p/-U/-d or a conninfo, plus the libpq environment); every
// verdict is a pure function of those facts.
import pg from 'pg';
import { clientConfig, type ConnectionOptions } from '../../backup/postgres.js';
import { checkArchiveCommand, type ArchiveTarget } from './archive-command.js';
import { fail, ok, warn, type CheckResult } from './report.js';

export interface ArchiverStats {
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: Date | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: Date | null;
  statsReset: Date | null;
}

export interface PostgresFacts {
  /** user@host:port/database, as connected. */
  where: string;
  user: string;
  /** server_version, e.g. "15.14 (Debian 15.14-0+deb12u1)". */
  version: string;
  versionNum: number;
  inRecovery: boolean;
  superuser: boolean;
  /** Each function barman-cloud-backup calls: whether the user may execute it, with its signature. */
  functions: { name: string; signature: string; executable: boolean }[];
  /** Member of pg_read_all_settings (backup reads data_directory and the configuration files' paths). */
  readAllSettings: boolean;
  archiveMode: string;
  archiveCommand: string;
  archiveLibrary?: string;
  walLevel: string;
  archiver: ArchiverStats;
}

/** The functions barman-cloud-backup calls on a server of this version (docs/format.md#postgres-session). */
export function backupFunctions(versionNum: number): string[] {
  const wal = versionNum >= 100000 ? 'pg_switch_wal' : 'pg_switch_xlog';
  const [start, stop] = versionNum >= 150000 ? ['pg_backup_start', 'pg_backup_stop'] : ['pg_start_backup', 'pg_stop_backup'];
  return [start, stop, wal, 'pg_create_restore_point'];
}

function checkConnection(facts: PostgresFacts): CheckResult {
  const role = facts.inRecovery ? 'a standby' : 'a primary';
  return ok('postgres connection', `connected to PostgreSQL ${facts.version.split(' ')[0]} (${role}) as ${facts.where}`);
}

/** Superuser, or EXECUTE on the backup functions and pg_read_all_settings (warn otherwise). */
export function checkPrivileges(facts: PostgresFacts): CheckResult {
  const name = 'postgres privileges';
  if (facts.superuser) return ok(name, `${facts.user} is a superuser: it can take base backups`);
  const missing = facts.functions.filter((f) => !f.executable);
  const grants = missing.map((f) => `GRANT EXECUTE ON FUNCTION ${f.signature} TO ${facts.user};`);
  if (!facts.readAllSettings) grants.push(`GRANT pg_read_all_settings TO ${facts.user};`);
  if (grants.length === 0) {
    return ok(name, `${facts.user} is not a superuser but may run ${facts.functions.map((f) => f.name).join(', ')} and read all settings`);
  }
  const what = [
    ...(missing.length ? [`run ${missing.map((f) => f.name).join(', ')}`] : []),
    ...(facts.readAllSettings ? [] : ['read all settings']),
  ].join(' or ');
  return warn(name, `${facts.user} is not a superuser and may not ${what}, so barman-cloud-backup would fail; ` +
    `as a superuser run: ${grants.join(' ')}`);
}

export function checkArchiveMode(facts: PostgresFacts): CheckResult {
  const name = 'archive_mode';
  if (facts.archiveMode === 'off') {
    return fail(name, 'archive_mode is off: PostgreSQL archives no WAL, so backups cannot be restored to a consistent ' +
      'state; set archive_mode = on and restart PostgreSQL');
  }
  if (facts.archiveMode === 'on' && facts.inRecovery) {
    return warn(name, 'archive_mode is on but this server is a standby: it archives nothing until it is promoted ' +
      '(archive_mode = always archives on a standby too)');
  }
  return ok(name, facts.archiveMode);
}

export function checkWalLevel(facts: PostgresFacts): CheckResult {
  if (facts.walLevel === 'replica' || facts.walLevel === 'logical') return ok('wal_level', facts.walLevel);
  return fail('wal_level', `wal_level is ${facts.walLevel}: archiving and base backups need replica or logical; ` +
    'set wal_level = replica and restart PostgreSQL');
}

/** How long ago, in the largest whole unit. */
export function ago(then: Date, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - then.getTime()) / 1000));
  const [n, unit] = s < 120 ? [s, 'second'] : s < 7200 ? [Math.floor(s / 60), 'minute'] : s < 172800 ? [Math.floor(s / 3600), 'hour'] : [Math.floor(s / 86400), 'day'];
  return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
}

/** A failure within this long is "recent". */
const RECENT_FAILURE_MS = 24 * 3600 * 1000;

/** pg_stat_archiver: warn when archiving is failing now, or failed within the last day. */
export function checkArchiver(a: ArchiverStats, now: Date): CheckResult {
  const name = 'pg_stat_archiver';
  const since = a.statsReset ? ` since ${a.statsReset.toISOString().replace(/\.\d+Z$/, 'Z')}` : '';
  const archived = a.archivedCount === 0
    ? 'nothing archived yet'
    : `${a.archivedCount} archived${a.lastArchivedWal ? `, the last ${a.lastArchivedWal}` : ''}` +
      `${a.lastArchivedTime ? ` ${ago(a.lastArchivedTime, now)}` : ''}`;
  if (a.failedCount === 0 || !a.lastFailedTime) return ok(name, `${archived}, no failures${since}`);
  const failed = `${a.failedCount} failed, the last ${a.lastFailedWal ?? '?'} ${ago(a.lastFailedTime, now)}`;
  const failingNow = !a.lastArchivedTime || a.lastFailedTime > a.lastArchivedTime;
  if (failingNow) {
    return warn(name, `${archived}; ${failed} and nothing archived since: archiving is failing, the PostgreSQL log ` +
      'shows the archive_command\'s error');
  }
  if (now.getTime() - a.lastFailedTime.getTime() < RECENT_FAILURE_MS) {
    return warn(name, `${archived}; ${failed}: archiving recovered, but the PostgreSQL log says why it failed`);
  }
  return ok(name, `${archived}; ${failed}${since}`);
}

/** Every PostgreSQL verdict, in the order they are reported. */
export async function postgresResults(facts: PostgresFacts, target: ArchiveTarget, now: Date): Promise<CheckResult[]> {
  return [
    checkConnection(facts),
    checkPrivileges(facts),
    checkArchiveMode(facts),
    await checkArchiveCommand({ archiveMode: facts.archiveMode, archiveCommand: facts.archiveCommand, archiveLibrary: facts.archiveLibrary }, target),
    checkWalLevel(facts),
    checkArchiver(facts.archiver, now),
  ];
}

/** Connect with barman-cloud-backup's rules and read what the checks need; throws when the connection fails. */
export async function gatherPostgresFacts(opts: ConnectionOptions): Promise<PostgresFacts> {
  const { fromConninfo: _, ...config } = clientConfig(opts);
  const client = new pg.Client({ ...config, connectionTimeoutMillis: config.connectionTimeoutMillis ?? 10_000 });
  await client.connect();
  try {
    const row = async <T>(sql: string, values: unknown[] = []): Promise<T> => (await client.query(sql, values)).rows[0] as T;
    const id = await row<{ user: string; version: string; num: string; recovery: boolean; superuser: boolean; settings: boolean }>(
      "SELECT current_user AS user, current_setting('server_version') AS version, current_setting('server_version_num') AS num, " +
        'pg_is_in_recovery() AS recovery, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser, ' +
        "CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_read_all_settings') " +
        "THEN pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER') ELSE false END AS settings",
    );
    const versionNum = Number(id.num);
    const names = backupFunctions(versionNum);
    const procs = (await client.query(
      'SELECT proname, p.oid::regprocedure::text AS signature, has_function_privilege(p.oid, \'EXECUTE\') AS executable ' +
        'FROM pg_proc p WHERE proname = ANY($1) ORDER BY proname, pronargs DESC',
      [names],
    )).rows as { proname: string; signature: string; executable: boolean }[];
    const functions = names.map((name) => {
      const overloads = procs.filter((p) => p.proname === name);
      const usable = overloads.find((p) => p.executable) ?? overloads[0];
      return { name, signature: usable?.signature ?? `${name}()`, executable: Boolean(usable?.executable) };
    });
    const settings = new Map(
      ((await client.query(
        "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_command', 'archive_library', 'wal_level')",
      )).rows as { name: string; setting: string }[]).map((r) => [r.name, r.setting]),
    );
    const a = await row<Record<string, unknown>>(
      'SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time, stats_reset FROM pg_stat_archiver',
    );
    const date = (v: unknown) => (v instanceof Date ? v : v ? new Date(String(v)) : null);
    return {
      where: `${client.user}@${client.host}:${client.port}/${client.database}`,
      user: id.user,
      version: id.version,
      versionNum,
      inRecovery: id.recovery,
      superuser: id.superuser === true,
      functions,
      readAllSettings: id.settings === true,
      archiveMode: settings.get('archive_mode') ?? 'off',
      archiveCommand: settings.get('archive_command') ?? '',
      archiveLibrary: settings.get('archive_library') || undefined,
      walLevel: settings.get('wal_level') ?? 'unknown',
      archiver: {
        archivedCount: Number(a.archived_count ?? 0),
        lastArchivedWal: (a.last_archived_wal as string | null) ?? null,
        lastArchivedTime: date(a.last_archived_time),
        failedCount: Number(a.failed_count ?? 0),
        lastFailedWal: (a.last_failed_wal as string | null) ?? null,
        lastFailedTime: date(a.last_failed_time),
        statsReset: date(a.stats_reset),
      },
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

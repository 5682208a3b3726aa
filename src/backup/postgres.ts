// The PostgreSQL session of a base backup (docs/format.md#postgres-session): connection from -h/-p/-U/-d or a whole
// conninfo and the libpq environment (node-postgres reads PGHOST, PGPORT, PGUSER, PGDATABASE,
// PGPASSWORD and ~/.pgpass / PGPASSFILE itself), then barman's SQL sequence with the function
// names of the server's version (pg_backup_* from 15, pg_*_backup below, xlog names below 10).
import pg from 'pg';
import { GeneralError, OperationError } from '../errors.js';
import { log } from '../log.js';

export interface ConnectionOptions {
  host?: string;
  port?: string;
  user?: string;
  /** A database name, or (when it contains '=' or is empty) a whole conninfo string (docs/format.md#postgres-session). */
  dbname?: string;
}

/** Parse a libpq keyword/value conninfo string: `host=/tmp port=5432 dbname='my db'`. */
function parseConninfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /\s*([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(text)) !== null) {
    const [, key, quoted, bare] = m;
    // Group 1 always takes part in a match; the check only satisfies the index type.
    if (key !== undefined) out[key] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare ?? '';
    pos = re.lastIndex;
  }
  if (text.slice(pos).trim() !== '') throw new GeneralError(`invalid connection string: missing "=" after "${text.slice(pos).trim()}"`);
  return out;
}

/** The node-postgres configuration for barman's connection rules. */
export function clientConfig(opts: ConnectionOptions): pg.ClientConfig & { fromConninfo: boolean } {
  const dbname = opts.dbname ?? 'postgres';
  if (/^postgres(ql)?:\/\//.test(dbname)) return { connectionString: dbname, fromConninfo: true };
  if (dbname === '' || dbname.includes('=')) {
    const kv = parseConninfo(dbname);
    return {
      host: kv.host ?? kv.hostaddr,
      port: kv.port ? Number(kv.port) : undefined,
      user: kv.user,
      password: kv.password,
      database: kv.dbname,
      application_name: kv.application_name,
      connectionTimeoutMillis: kv.connect_timeout ? Number(kv.connect_timeout) * 1000 : undefined,
      ssl: kv.sslmode && !['disable', 'allow', 'prefer'].includes(kv.sslmode) ? { rejectUnauthorized: kv.sslmode.startsWith('verify') } : undefined,
      fromConninfo: true,
    };
  }
  return {
    host: opts.host,
    port: opts.port ? Number(opts.port) : undefined,
    user: opts.user,
    database: dbname,
    fromConninfo: false,
  };
}

/**
 * PostgreSQL's ISO text of a timestamptz (`2026-11-29 05:04:19.0034+00`, `…+05:30`) as Python's
 * str(datetime) writes it in backup.info: `2026-11-29 05:04:19.003400+00:00`, no fraction when zero.
 */
function pythonTimestamp(pgText: string): string {
  const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))?([+-]\d\d)(?::?(\d\d))?(?::(\d\d))?$/.exec(pgText.trim());
  if (!m) throw new GeneralError(`unexpected timestamp from PostgreSQL: ${pgText}`);
  const micro = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  const fraction = micro === '' || /^0+$/.test(micro) ? '' : `.${micro}`;
  return `${m[1]}${fraction}${m[3]}:${m[4] ?? '00'}${m[5] ? `:${m[5]}` : ''}`;
}

export interface BackupStart {
  lsn: string;
  timeline: number;
  timestamp: string;
}

export interface BackupStop extends BackupStart {
  backupLabel: string;
}

export interface ServerMetadata {
  version: number;
  systemId: string;
  pgdata: string;
  segmentSize: number;
  configFile: string | null;
  hbaFile: string | null;
  identFile: string | null;
  includedFiles: string[] | null;
  tablespaces: { name: string; oid: number; location: string }[];
  dataChecksums: string | null;
  summarizeWal: string | null;
  clusterSize: number | null;
  isStandby: boolean;
}

export class PostgresSession {
  private constructor(private readonly client: pg.Client, readonly version: number) {}

  static async connect(opts: ConnectionOptions): Promise<PostgresSession> {
    const { fromConninfo, ...config } = clientConfig(opts);
    const client = new pg.Client(config);
    // Keep timestamptz as PostgreSQL's text: barman writes the session's offset and microseconds.
    client.setTypeParser(1184, (v: string) => v);
    try {
      await client.connect();
    } catch (e) {
      throw new OperationError(`Cannot connect to postgres: ${(e as Error).message}`, { cause: e });
    }
    const version = Number((await client.query('SHOW server_version_num')).rows[0].server_version_num);
    if (version < 90600) {
      await client.end();
      throw new GeneralError(`unsupported PostgresSQL version ${version}. Expecting 9.6.0 or above.`);
    }
    await client.query("SET datestyle TO 'ISO'");
    if (!(fromConninfo && config.application_name) && !(config.connectionString ?? '').includes('application_name')) {
      await client.query('SET application_name TO barman_cloud_backup');
    }
    return new PostgresSession(client, version);
  }

  private async value<T = string>(sql: string, params: unknown[] = []): Promise<T> {
    const res = await this.client.query({ text: sql, values: params, rowMode: 'array' });
    return res.rows[0]?.[0] as T;
  }

  async metadata(): Promise<ServerMetadata> {
    const v = this.version;
    const systemId = await this.value('SELECT system_identifier::text FROM pg_control_system()');
    const pgdata = await this.value('SHOW "data_directory"');
    let segmentSize = Number(await this.value("SELECT setting FROM pg_settings WHERE name='wal_segment_size'"));
    if (v < 110000) segmentSize *= Number(await this.value("SELECT setting FROM pg_settings WHERE name='wal_block_size'"));
    const files = new Map<string, string>();
    for (const row of (await this.client.query(
      "SELECT name, setting FROM pg_settings WHERE name IN ('config_file', 'hba_file', 'ident_file')",
    )).rows as { name: string; setting: string }[]) files.set(row.name, row.setting);
    const included = (await this.client.query(
      'SELECT DISTINCT sourcefile AS included_file FROM pg_settings WHERE sourcefile IS NOT NULL ' +
        "AND sourcefile NOT IN (SELECT setting FROM pg_settings WHERE name = 'config_file') ORDER BY 1",
    )).rows.map((r: { included_file: string }) => r.included_file);
    const tablespaces = (await this.client.query(
      "SELECT spcname, oid, pg_tablespace_location(oid) AS spclocation FROM pg_tablespace WHERE pg_tablespace_location(oid) != ''",
    )).rows.map((r: { spcname: string; oid: number; spclocation: string }) => ({ name: r.spcname, oid: Number(r.oid), location: r.spclocation }));
    const dataChecksums = await this.value('SHOW "data_checksums"').catch(() => null);
    const summarizeWal = v >= 170000 ? await this.value('SHOW "summarize_wal"').catch(() => null) : null;
    let clusterSize: number | null = null;
    try {
      clusterSize = Number(await this.value('SELECT sum(pg_tablespace_size(oid)) FROM pg_tablespace'));
    } catch (e) {
      log.warning(`Could not compute the cluster size: ${(e as Error).message}`);
    }
    const isStandby = (await this.value<boolean>('SELECT pg_is_in_recovery()')) === true;
    return {
      version: v, systemId, pgdata, segmentSize,
      configFile: files.get('config_file') ?? null, hbaFile: files.get('hba_file') ?? null, identFile: files.get('ident_file') ?? null,
      includedFiles: included.length ? included : null,
      tablespaces, dataChecksums, summarizeWal, clusterSize, isStandby,
    };
  }

  async startBackup(label: string, immediate: boolean): Promise<BackupStart> {
    if (this.version >= 140000) await this.client.query('SET idle_session_timeout TO 0');
    const fn = this.version >= 150000 ? 'pg_backup_start($1, $2)' : 'pg_start_backup($1, $2, FALSE)';
    const tli = this.version >= 90600 ? '(SELECT timeline_id FROM pg_control_checkpoint())' : 'NULL';
    const row = (await this.client.query({
      text: `SELECT location::text, ${tli} AS timeline, now() AS timestamp FROM ${fn} AS location`,
      values: [label, immediate],
    })).rows[0] as { location: string; timeline: number; timestamp: string };
    return { lsn: row.location, timeline: Number(row.timeline), timestamp: pythonTimestamp(row.timestamp) };
  }

  async stopBackup(): Promise<BackupStop> {
    if (this.version >= 140000) await this.client.query('RESET idle_session_timeout');
    const fn = this.version >= 150000 ? 'pg_backup_stop()' : 'pg_stop_backup(FALSE)';
    const row = (await this.client.query(
      'SELECT end_row.lsn::text AS location, (SELECT CASE WHEN pg_is_in_recovery() THEN min_recovery_end_timeline ' +
        'ELSE timeline_id END FROM pg_control_checkpoint(), pg_control_recovery()) AS timeline, ' +
        `end_row.labelfile AS backup_label, now() AS timestamp FROM ${fn} AS end_row`,
    )).rows[0] as { location: string; timeline: number; backup_label: string; timestamp: string };
    return { lsn: row.location, timeline: Number(row.timeline), backupLabel: row.backup_label, timestamp: pythonTimestamp(row.timestamp) };
  }

  /** Close the current WAL segment so the backup's last WAL gets archived (skipped on a standby). */
  async switchWal(): Promise<void> {
    const w = this.version >= 100000 ? { name: 'pg_walfile_name', insert: 'pg_current_wal_insert_lsn', sw: 'pg_switch_wal' }
      : { name: 'pg_xlogfile_name', insert: 'pg_current_xlog_insert_location', sw: 'pg_switch_xlog' };
    await this.value(`SELECT ${w.name}(${w.insert}())`);
    await this.value(`SELECT ${w.name}(${w.sw}())`);
    await this.value(`SELECT ${w.name}(${w.insert}())`);
  }

  async createRestorePoint(name: string): Promise<void> {
    try {
      await this.value('SELECT pg_create_restore_point($1)', [name]);
    } catch (e) {
      log.warning(`Could not create restore point ${name}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

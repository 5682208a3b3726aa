// What backup-list and backup-show print (docs/format.md#output): the console tables and the JSON documents,
// character for character as barman-cloud 3.17 prints them.
import { escapeControl } from '../log.js';
import { GeneralError } from '../errors.js';
import {
  BACKUP_INFO_FIELDS, FIELD_NAMES, STATUS, ctime, dumpedValue, isoformat, parseTimestamp, pyDatetimeStr,
  strftimeSeconds, type BackupInfo,
} from './backup-info.js';
import { pyJsonDumps, pyNumber, pyStr, pyTruthy, type PyDict, type PyValue } from './python-literal.js';

// ---- small Python formatting helpers ---------------------------------------------------------------

/** str.format's `{:<width}`: pad on the right to `width` code points, never truncate. */
export function padRight(text: string, width: number): string {
  const len = [...text].length;
  return len >= width ? text : text + ' '.repeat(width - len);
}

/** `"%.1f" % x`: round half to even on the exact binary value, like C's printf. */
function fixed1(x: number): string {
  // A tie at one decimal is exactly representable only as k/4 with k odd (….25 or ….75).
  if (Number.isInteger(x * 4) && !Number.isInteger(x * 2)) {
    const scaled = x * 10; // k * 2.5: exact
    const lo = Math.floor(scaled);
    const n = lo % 2 === 0 ? lo : lo + 1;
    return (n / 10).toFixed(1);
  }
  return x.toFixed(1);
}

/** barman.utils.pretty_size: base 1024, `%d B` below 1 KiB, else `%.1f KiB|MiB|…|YiB`. */
export function prettySize(size: number): string {
  const suffixes = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];
  let value = size;
  for (const suffix of suffixes) {
    if (Math.abs(value) < 1024 || suffix === suffixes[suffixes.length - 1]) {
      if (suffix === 'B') return `${Math.trunc(value)} B`;
      return `${fixed1(value)} ${suffix}`;
    }
    value /= 1024;
  }
  /* c8 ignore next */
  throw new Error('unreachable');
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** barman.utils.human_readable_timedelta of timedelta(seconds=x). */
export function humanDuration(seconds: number): string {
  // timedelta keeps whole microseconds, rounding half to even.
  const scaled = seconds * 1e6;
  let micros = Math.round(scaled);
  if (Math.abs(scaled % 1) === 0.5 && micros % 2 !== 0) micros -= 1;
  const negative = micros < 0;
  const abs = Math.abs(micros);
  const days = Math.floor(abs / 86_400_000_000);
  const secs = Math.floor((abs % 86_400_000_000) / 1_000_000);
  const parts: string[] = [];
  if (days > 0) parts.push(plural(days, 'day'));
  const hours = Math.trunc(secs / 3600);
  const minutes = Math.trunc(secs / 60) % 60;
  const s = secs % 60;
  if (hours > 0) parts.push(plural(hours, 'hour'));
  if (minutes > 0) parts.push(plural(minutes, 'minute'));
  if (s > 0) parts.push(plural(s, 'second'));
  let human = parts.join(', ');
  if (abs < 1_000_000) human = 'less than one second';
  if (negative) human += ' ago';
  return human;
}

/** `"{}".format(v)` of a backup.info value. */
function show(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  return String(v);
}

function timeStr(v: string | null): string {
  return v === null ? 'None' : pyDatetimeStr(parseTimestamp(v));
}

function dictGet(d: PyDict | null | undefined, key: string): PyValue | undefined {
  return d ? d.get(key) : undefined;
}

// ---- backup-list, console (docs/format.md#list-console) ---------------------------------------------------------------------

const LIST_WIDTHS = [20, 25, 30, 17, 20];

// A backup id is a listed directory's name and a name comes from backup.info: control characters
// in either are escaped, so that a row is one line (docs/format.md#untrusted-text).
function listRow(cells: string[]): string {
  return cells.map((c, i) => padRight(escapeControl(c), LIST_WIDTHS[i]!)).join('') + '\n';
}

/** The header line of the console list, with its newline. */
export function backupListHeader(): string {
  return listRow(['Backup ID', 'End Time', 'Begin Wal', 'Archival Status', 'Name']);
}

/** Whether a backup appears in the console list: status DONE only. */
export function listedInConsole(info: Pick<BackupInfo, 'status'>): boolean {
  return info.status === STATUS.DONE;
}

/** What a console row shows of a backup. */
export type ListRowFields = Pick<BackupInfo, 'backup_id' | 'status' | 'end_time' | 'begin_wal' | 'backup_name'>;

export function listRowFields(info: BackupInfo): ListRowFields {
  return { backup_id: info.backup_id, status: info.status, end_time: info.end_time, begin_wal: info.begin_wal, backup_name: info.backup_name };
}

/**
 * One console row for a DONE backup, with its newline. `keepTarget` is the keep annotation
 * (`full`/`standalone`) or null. Like barman, a DONE backup without end_time or begin_wal fails.
 */
export function backupListRow(info: ListRowFields, keepTarget: string | null): string {
  if (info.end_time === null) throw new GeneralError("'NoneType' object has no attribute 'strftime'");
  const end = strftimeSeconds(parseTimestamp(info.end_time));
  if (info.begin_wal === null) throw new GeneralError('unsupported format string passed to NoneType.__format__');
  const keep = keepTarget ? `KEEP:${keepTarget.toUpperCase()}` : '';
  return listRow([info.backup_id, end, info.begin_wal, keep, info.backup_name ?? '']);
}

function sortById(backups: Iterable<BackupInfo>): BackupInfo[] {
  return [...backups].sort((a, b) => (a.backup_id < b.backup_id ? -1 : a.backup_id > b.backup_id ? 1 : 0));
}

// ---- JSON (docs/format.md#list-json, #show) ------------------------------------------------------------------------------

/**
 * barman's BackupInfo.to_json(): the fields in alphabetical order (hidden ones left out when null),
 * then backup_id, then begin_time_iso / end_time_iso when the time is set.
 */
export function backupInfoToJson(info: BackupInfo): PyDict {
  const out: PyDict = new Map();
  for (const name of FIELD_NAMES) {
    const def: { kind: string; hideIfNull?: boolean } = BACKUP_INFO_FIELDS[name];
    const raw = info[name];
    if (def.hideIfNull && raw === null) continue;
    let value: PyValue;
    switch (def.kind) {
      case 'time':
        value = raw === null ? null : ctime(parseTimestamp(raw as string));
        break;
      case 'tablespaces':
        value = raw === null ? null : (raw as BackupInfo['tablespaces'] & object).map((t) => [t.name, t.oid, t.location]);
        break;
      case 'label':
      case 'ids':
        // Not among barman's "top level" fields: JSON gets the text written to backup.info (a quirk
        // for backup_label: the Python repr string, docs/format.md#list-json).
        value = dumpedValue(info, name);
        break;
      default:
        value = raw as PyValue;
    }
    out.set(name, value);
  }
  out.set('backup_id', info.backup_id);
  if (info.begin_time !== null) out.set('begin_time_iso', isoformat(parseTimestamp(info.begin_time)));
  if (info.end_time !== null) out.set('end_time_iso', isoformat(parseTimestamp(info.end_time)));
  return out;
}

/** backup-list JSON (one line, no newline): `{"backups_list": [...]}`, every status, sorted by ID. */
export function formatBackupListJson(backups: Iterable<BackupInfo>): string {
  const doc: PyDict = new Map([['backups_list', sortById(backups).map(backupInfoToJson)]]);
  return pyJsonDumps(doc);
}

/** One backup of the backup-list JSON, as formatBackupListJson() writes it inside the list. */
export function backupListJsonEntry(info: BackupInfo): string {
  return pyJsonDumps(backupInfoToJson(info));
}

/**
 * The backup-list JSON document from entries already formatted (in ID order), written piece by
 * piece: the same bytes as formatBackupListJson(), without the whole document as one string.
 */
export function writeBackupListJson(entries: Iterable<string>, write: (text: string) => void): void {
  write(`{${pyJsonDumps('backups_list')}: [`);
  let first = true;
  for (const entry of entries) {
    write(first ? entry : `, ${entry}`);
    first = false;
  }
  write(']}');
}

/** backup-show JSON (one line, no newline): keyed by the server_name inside backup.info ("cloud"). */
export function formatBackupShowJson(info: BackupInfo): string {
  return pyJsonDumps(new Map<PyValue, PyValue>([[info.server_name, backupInfoToJson(info)]]));
}

// ---- backup-show, console (docs/format.md#show) -------------------------------------------------------------------

const row = (key: string, value: string) => `  ${padRight(key, 23)}: ${value}`;
const header = (title: string) => `  ${title}:`;
const nested = (key: string, value: string) => `    ${padRight(key, 21)}: ${value}`;

const COPY_DONE: readonly (string | null)[] = [STATUS.WAITING_FOR_WALS, STATUS.DONE];

function snapshotLines(info: BackupInfo, out: string[]): void {
  const snaps = info.snapshots_info;
  if (snaps === null) return;
  out.push(header('Snapshot information'));
  for (const [k, v] of snaps) {
    if (k !== 'snapshots' && k !== 'provider_info') out.push(nested(pyStr(k), pyStr(v)));
  }
  const providerInfo = snaps.get('provider_info');
  if (!(providerInfo instanceof Map)) throw new GeneralError("'provider_info'");
  for (const [k, v] of providerInfo) out.push(nested(pyStr(k), pyStr(v)));
  out.push('');
  const list = snaps.get('snapshots');
  const items = Array.isArray(list) ? list : [];
  for (const meta of items) {
    if (!(meta instanceof Map)) throw new GeneralError('invalid snapshot metadata');
    const provider = meta.get('provider');
    const mount = meta.get('mount');
    if (!(provider instanceof Map)) throw new GeneralError("'provider'");
    if (!(mount instanceof Map)) throw new GeneralError("'mount'");
    const entries = [...provider].map(([k, v]) => [pyStr(k), pyStr(v)] as const);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    for (const [k, v] of entries) out.push(nested(k, v));
    out.push(nested('Mount point', pyStr(mount.get('mount_point') ?? null)));
    out.push(nested('Mount options', pyStr(mount.get('mount_options') ?? null)));
    out.push('');
  }
}

function baseBackupLines(info: BackupInfo, out: string[]): void {
  out.push(header('Base backup information'));
  if (info.mode) out.push(nested('Backup Method', info.mode));
  if (info.encryption) out.push(nested('Encryption', info.encryption));
  // The cloud show gets backup_info.to_dict(): no wal_size, backup_type or throughput keys.
  if (info.deduplicated_size) out.push(nested('Backup Size', prettySize(info.deduplicated_size)));
  if (info.compression && info.compression !== 'none') out.push(nested('Backup Compression', info.compression));
  out.push(nested('Timeline', show(info.timeline)));
  out.push(nested('Begin WAL', show(info.begin_wal)));
  out.push(nested('End WAL', show(info.end_wal)));
  out.push(nested('Begin time', timeStr(info.begin_time)));
  out.push(nested('End time', timeStr(info.end_time)));
  const stats = info.copy_stats;
  if (stats && stats.size > 0) {
    const copyTime = dictGet(stats, 'copy_time') ?? 0;
    const analysisTime = pyNumber(dictGet(stats, 'analysis_time') ?? 0) ?? 0;
    if (pyTruthy(copyTime)) {
      const seconds = pyNumber(copyTime);
      if (seconds === undefined) throw new GeneralError(`unsupported type for timedelta seconds component: ${pyStr(copyTime)}`);
      let text = humanDuration(seconds);
      if (analysisTime >= 1) text += ` + ${humanDuration(analysisTime)} startup`;
      out.push(nested('Copy time', text));
    }
  }
  out.push(nested('Begin Offset', show(info.begin_offset)));
  out.push(nested('End Offset', show(info.end_offset)));
  out.push(nested('Begin LSN', show(info.begin_xlog)));
  out.push(nested('End LSN', show(info.end_xlog)));
  out.push('');
}

/** The backup-show console text, every line ending with a newline (docs/format.md#show). */
export function formatBackupShowConsole(info: BackupInfo): string {
  const out: string[] = [`Backup ${info.backup_id}:`];
  if (info.backup_name) out.push(row('Backup Name', info.backup_name));
  out.push(row('Server Name', show(info.server_name)));
  if (info.systemid) out.push(row('System Id', info.systemid));
  out.push(row('Status', show(info.status)));
  const copyDone = COPY_DONE.includes(info.status);
  if (copyDone) {
    out.push(row('PostgreSQL Version', show(info.version)));
    out.push(row('PGDATA directory', show(info.pgdata)));
    if (info.cluster_size) out.push(row('Estimated Cluster Size', prettySize(info.cluster_size)));
  }
  out.push('');
  if (info.data_checksums || info.summarize_wal) {
    out.push(header('Server information'));
    if (info.data_checksums) out.push(nested('Checksums', info.data_checksums));
    if (info.summarize_wal) out.push(nested('WAL summarizer', info.summarize_wal));
    out.push('');
  }
  if (copyDone) {
    snapshotLines(info, out);
    if (info.tablespaces && info.tablespaces.length > 0) {
      out.push(header('Tablespaces'));
      for (const t of info.tablespaces) out.push(nested(t.name, `${t.location} (oid: ${t.oid})`));
      out.push('');
    }
    baseBackupLines(info, out);
    // Catalog block: of its rows only the children list can apply to a backup.info alone.
    if (info.mode === 'postgres' && info.children_backup_ids !== null) {
      out.push(nested('Children Backup(s)', info.children_backup_ids.join(',')));
    }
  } else if (info.error) {
    out.push(row('Error', info.error));
  }
  // every field comes from backup.info, which whoever writes the store chose (docs/format.md#untrusted-text)
  return out.map((line) => `${escapeControl(line)}\n`).join('');
}

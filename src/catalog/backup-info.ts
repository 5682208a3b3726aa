// backup.info: the metadata file of one base backup (docs/format.md#backup-info). Reader and writer follow barman's
// FieldListFile: `key=value` lines, keys sorted, `None` for nulls, Python repr() for literal fields.
import { GeneralError, OperationError } from '../errors.js';
import {
  parsePyLiteral, pyRepr, pyTruthy, PyBytes, PyTuple, strRepr, type PyDict, type PyValue,
} from './python-literal.js';

/** One tablespace of the backed-up cluster (barman's `Tablespace` namedtuple). */
export interface Tablespace {
  name: string;
  oid: number;
  location: string;
}

/** How a field's text is read and written. */
export type FieldKind =
  /** plain text */
  | 'str'
  /** Python int() */
  | 'int'
  /** str(datetime) with an offset, e.g. `2026-11-29 05:04:19.003382+00:00` */
  | 'time'
  /** repr() of a str (backup_label) */
  | 'label'
  /** repr() of a list of str (included_files) */
  | 'files'
  /** repr() of a dict (copy_stats, snapshots_info) */
  | 'dict'
  /** repr() of a list of (name, oid, location) tuples */
  | 'tablespaces'
  /** comma-joined backup IDs */
  | 'ids';

interface KindTypes {
  str: string;
  int: number;
  time: string;
  label: string;
  files: string[];
  dict: PyDict;
  tablespaces: Tablespace[];
  ids: string[];
}

interface FieldDef {
  readonly kind: FieldKind;
  /** Whether barman 3.4 knows the key (docs/format.md#backup-info-fields); 3.4 cannot read a file with any other key. */
  readonly in34: boolean;
  /** Omitted from the file (and from JSON) when null. */
  readonly hideIfNull?: boolean;
}

/**
 * Every backup.info field of barman 3.17 (docs/format.md#backup-info-fields), in the sorted order barman writes them.
 * The BackupInfoFields type is derived from this table.
 */
export const BACKUP_INFO_FIELDS = {
  backup_label: { kind: 'label', in34: true },
  backup_name: { kind: 'str', in34: true, hideIfNull: true },
  begin_offset: { kind: 'int', in34: true },
  begin_time: { kind: 'time', in34: true },
  begin_wal: { kind: 'str', in34: true },
  begin_xlog: { kind: 'str', in34: true },
  children_backup_ids: { kind: 'ids', in34: false },
  cluster_size: { kind: 'int', in34: false },
  compression: { kind: 'str', in34: true },
  config_file: { kind: 'str', in34: true },
  copy_stats: { kind: 'dict', in34: true },
  data_checksums: { kind: 'str', in34: false },
  deduplicated_size: { kind: 'int', in34: true },
  encryption: { kind: 'str', in34: false },
  end_offset: { kind: 'int', in34: true },
  end_time: { kind: 'time', in34: true },
  end_wal: { kind: 'str', in34: true },
  end_xlog: { kind: 'str', in34: true },
  error: { kind: 'str', in34: true },
  hba_file: { kind: 'str', in34: true },
  ident_file: { kind: 'str', in34: true },
  included_files: { kind: 'files', in34: true },
  mode: { kind: 'str', in34: true },
  parent_backup_id: { kind: 'str', in34: false },
  pgdata: { kind: 'str', in34: true },
  server_name: { kind: 'str', in34: true },
  size: { kind: 'int', in34: true },
  snapshots_info: { kind: 'dict', in34: true, hideIfNull: true },
  status: { kind: 'str', in34: true },
  summarize_wal: { kind: 'str', in34: false },
  systemid: { kind: 'str', in34: true },
  tablespaces: { kind: 'tablespaces', in34: true },
  timeline: { kind: 'int', in34: true },
  version: { kind: 'int', in34: true },
  xlog_segment_size: { kind: 'int', in34: true },
} as const satisfies Record<string, FieldDef>;

export type BackupInfoField = keyof typeof BACKUP_INFO_FIELDS;

/** The content of a backup.info file; null = `None` (or absent). */
export type BackupInfoFields = {
  -readonly [K in BackupInfoField]: KindTypes[(typeof BACKUP_INFO_FIELDS)[K]['kind']] | null;
};

/** A backup.info together with the ID of the directory it was found in. */
export interface BackupInfo extends BackupInfoFields {
  backup_id: string;
}

export const FIELD_NAMES = Object.keys(BACKUP_INFO_FIELDS).sort() as BackupInfoField[];

/** Backup statuses (docs/format.md#backup-info-fields). */
export const STATUS = {
  EMPTY: 'EMPTY',
  STARTED: 'STARTED',
  WAITING_FOR_WALS: 'WAITING_FOR_WALS',
  DONE: 'DONE',
  SYNCING: 'SYNCING',
  FAILED: 'FAILED',
} as const;

/**
 * The `error` a deletion writes, with status FAILED, into a backup's backup.info before the first of
 * its objects goes (docs/format.md#delete-backup): in barman's `failure <phase> (<reason>)` shape,
 * so that barman too stops counting the backup as DONE. Our `backup-delete -r` finishes a backup
 * carrying exactly this text; a backup that failed to be taken never does.
 */
export const DELETION_ERROR = 'failure deleting backup (deletion not finished: run barman-cloud-backup-delete again)';

/** True for a backup whose deletion was begun and not finished (docs/format.md#delete-backup). */
export function isInterruptedDeletion(info: Pick<BackupInfoFields, 'status' | 'error'>): boolean {
  return info.status === STATUS.FAILED && info.error === DELETION_ERROR;
}

/**
 * A backup.info's text with `status=FAILED` and `error=<DELETION_ERROR>`, every other line as it
 * was: a file barman 3.4 wrote keeps the keys 3.4 knows only, and stays readable by it
 * (docs/format.md#delete-backup). The two lines go where barman's sorted keys put them.
 */
export function markDeletionStarted(text: string): string {
  const values = new Map<string, string>([['error', DELETION_ERROR], ['status', STATUS.FAILED]]);
  const keyOf = (line: string): string | null => {
    const eq = line.indexOf('=');
    return eq < 0 || line.trimStart().startsWith('#') ? null : line.slice(0, eq).trim();
  };
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out = lines.filter((line) => !values.has(keyOf(line) ?? ''));
  for (const [key, value] of values) {
    const at = out.findIndex((line) => (keyOf(line) ?? '') > key);
    out.splice(at < 0 ? out.length : at, 0, `${key}=${value}`);
  }
  return `${out.join('\n')}\n`;
}

/** barman's DEFAULT_XLOG_SEG_SIZE, used when a file has no xlog_segment_size line. */
export const DEFAULT_XLOG_SEGMENT_SIZE = 16 * 1024 * 1024;

/** Attributes barman's BackupInfo accepts from a file without writing them back (instance slots). */
const IGNORED_KEYS = new Set(['backup_id', 'backup_version', 'filename']);

/** Every field null, except the two with a default in barman (status EMPTY, 16 MiB segments). */
export function emptyBackupInfoFields(): BackupInfoFields {
  const out = {} as Record<string, unknown>;
  for (const name of FIELD_NAMES) out[name] = null;
  out.status = STATUS.EMPTY;
  out.xlog_segment_size = DEFAULT_XLOG_SEGMENT_SIZE;
  return out as BackupInfoFields;
}

/** A BackupInfo with every field given in `fields` and the defaults elsewhere. */
export function newBackupInfo(backupId: string, fields: Partial<BackupInfoFields> = {}): BackupInfo {
  return { ...emptyBackupInfoFields(), ...fields, backup_id: backupId };
}

// ---- errors ---------------------------------------------------------------------------------------

/** A backup.info that cannot be read: barman skips such a backup with a WARNING. */
export class BackupInfoParseError extends GeneralError {}

/**
 * A key this version does not know. barman 3.15+ aborts the whole command with exit 1 (docs/format.md#backup-info-syntax),
 * on the assumption that the backup was written by a newer release.
 */
export class UnknownBackupInfoField extends OperationError {
  constructor(readonly field: string) {
    super(
      `Unsupported field '${field}' found in backup metadata. This indicates the backup was created with ` +
        'a newer version of Barman. Please upgrade to a compatible or newer version.',
    );
  }
}

// ---- timestamps -----------------------------------------------------------------------------------

/** A timezone-aware datetime as barman keeps it: wall-clock fields in the stored offset. */
export interface Timestamp {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  microsecond: number;
  /** Offset from UTC in seconds (east positive), e.g. 3600 for +01:00. */
  offsetSeconds: number;
}

const TIMESTAMP_RE =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/i;

function daysInMonth(year: number, month: number): number {
  const d = new Date(Date.UTC(2000, month, 0));
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

/**
 * Read a timestamp as barman does (dateutil): `YYYY-MM-DD HH:MM[:SS[.ffffff]][±HH[:MM]]`, `T` or a
 * space between date and time. A naive timestamp takes the local zone's offset, like tzlocal().
 */
export function parseTimestamp(text: string): Timestamp {
  const m = TIMESTAMP_RE.exec(text.trim());
  if (!m) throw new BackupInfoParseError(`Unknown string format: ${text}`);
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
  const second = m[6] ? Number(m[6]) : 0;
  const microsecond = m[7] ? Number(m[7].slice(0, 6).padEnd(6, '0')) : 0;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new BackupInfoParseError(`date value out of range: ${text}`);
  }
  let offsetSeconds: number;
  const zone = m[8]?.toUpperCase();
  if (zone === undefined) {
    const local = new Date(year, month - 1, day, hour, minute, second);
    local.setFullYear(year);
    offsetSeconds = -local.getTimezoneOffset() * 60;
  } else if (zone === 'Z' || zone === 'UTC' || zone === 'GMT') {
    offsetSeconds = 0;
  } else {
    const digits = zone.slice(1).replace(/:/g, '');
    const abs = Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4) || 0) * 60 + Number(digits.slice(4, 6) || 0);
    if (abs >= 86400) throw new BackupInfoParseError(`offset out of range: ${text}`);
    offsetSeconds = zone[0] === '-' ? -abs : abs;
  }
  return { year, month, day, hour, minute, second, microsecond, offsetSeconds };
}

/** A timestamp for an instant, shown in the given offset (seconds east of UTC). */
export function timestampFromDate(date: Date, offsetSeconds = 0, microsecond?: number): Timestamp {
  const wall = new Date(date.getTime() + offsetSeconds * 1000);
  return {
    year: wall.getUTCFullYear(),
    month: wall.getUTCMonth() + 1,
    day: wall.getUTCDate(),
    hour: wall.getUTCHours(),
    minute: wall.getUTCMinutes(),
    second: wall.getUTCSeconds(),
    microsecond: microsecond ?? wall.getUTCMilliseconds() * 1000,
    offsetSeconds,
  };
}

/** The instant a timestamp denotes (microseconds truncated to milliseconds). */
export function timestampToDate(ts: Timestamp): Date {
  const d = new Date(0);
  d.setUTCFullYear(ts.year, ts.month - 1, ts.day);
  d.setUTCHours(ts.hour, ts.minute, ts.second, Math.floor(ts.microsecond / 1000));
  return new Date(d.getTime() - ts.offsetSeconds * 1000);
}

/** Microseconds since the epoch, exact: for ordering timestamps. */
export function timestampEpochMicros(ts: Timestamp): bigint {
  const d = new Date(0);
  d.setUTCFullYear(ts.year, ts.month - 1, ts.day);
  d.setUTCHours(ts.hour, ts.minute, ts.second, 0);
  return BigInt(d.getTime() - ts.offsetSeconds * 1000) * 1000n + BigInt(ts.microsecond);
}

const p2 = (n: number) => String(n).padStart(2, '0');

function formatOffset(offsetSeconds: number): string {
  const sign = offsetSeconds < 0 ? '-' : '+';
  const abs = Math.abs(offsetSeconds);
  const h = Math.floor(abs / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const s = abs % 60;
  return `${sign}${p2(h)}:${p2(m)}${s ? `:${p2(s)}` : ''}`;
}

/** Python's datetime.isoformat(sep): microseconds only when non-zero, offset `±HH:MM`. */
export function isoformat(ts: Timestamp, sep = 'T'): string {
  const frac = ts.microsecond ? `.${String(ts.microsecond).padStart(6, '0')}` : '';
  return (
    `${String(ts.year).padStart(4, '0')}-${p2(ts.month)}-${p2(ts.day)}${sep}` +
    `${p2(ts.hour)}:${p2(ts.minute)}:${p2(ts.second)}${frac}${formatOffset(ts.offsetSeconds)}`
  );
}

/** Python's str(datetime): what backup.info stores and backup-show prints. */
export function pyDatetimeStr(ts: Timestamp): string {
  return isoformat(ts, ' ');
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Python's datetime.ctime() in the stored offset: `Sun Nov  1 05:04:19 2026` (day space-padded). */
export function ctime(ts: Timestamp): string {
  const d = new Date(0);
  d.setUTCFullYear(ts.year, ts.month - 1, ts.day);
  return (
    `${WEEKDAYS[d.getUTCDay()]} ${MONTHS[ts.month - 1]} ${String(ts.day).padStart(2, ' ')} ` +
    `${p2(ts.hour)}:${p2(ts.minute)}:${p2(ts.second)} ${String(ts.year).padStart(4, '0')}`
  );
}

/** strftime("%Y-%m-%d %H:%M:%S") in the stored offset (backup-list console). */
export function strftimeSeconds(ts: Timestamp): string {
  return `${ts.year}-${p2(ts.month)}-${p2(ts.day)} ${p2(ts.hour)}:${p2(ts.minute)}:${p2(ts.second)}`;
}

/** Any timestamp text barman would accept, rewritten as barman writes it. */
export function normalizeTimestamp(text: string): string {
  return pyDatetimeStr(parseTimestamp(text));
}

// ---- reader ---------------------------------------------------------------------------------------

/** Python int(text): optional sign, digits with single underscores between them, blanks around. */
function parseInt10(text: string): number {
  const t = text.trim();
  if (!/^[+-]?\d+(?:_\d+)*$/.test(t)) {
    throw new BackupInfoParseError(`invalid literal for int() with base 10: ${strRepr(text)}`);
  }
  return Number(t.replace(/_/g, ''));
}

function literal(name: string, text: string): PyValue {
  try {
    return parsePyLiteral(text);
  } catch (e) {
    throw new BackupInfoParseError(`malformed value for ${name}: ${(e as Error).message}`, { cause: e });
  }
}

function asText(name: string, v: PyValue): string {
  if (typeof v === 'string') return v;
  if (v instanceof PyBytes) return new TextDecoder().decode(v.bytes);
  throw new BackupInfoParseError(`${name} is not a string: ${pyRepr(v)}`);
}

function asItems(v: PyValue): PyValue[] | undefined {
  if (Array.isArray(v)) return v;
  if (v instanceof PyTuple) return v.items;
  return undefined;
}

function parseField(name: BackupInfoField, text: string): unknown {
  const kind: FieldKind = BACKUP_INFO_FIELDS[name].kind;
  switch (kind) {
    case 'str':
      return text;
    case 'int':
      return parseInt10(text);
    case 'time':
      parseTimestamp(text); // validated now: barman parses it when loading
      return text;
    case 'label':
      return asText(name, literal(name, text));
    case 'files': {
      const v = literal(name, text);
      const items = asItems(v);
      if (!items) throw new BackupInfoParseError(`${name} is not a list: ${text}`);
      return items.map((item) => asText(name, item));
    }
    case 'dict': {
      const v = literal(name, text);
      if (!(v instanceof Map)) throw new BackupInfoParseError(`${name} is not a dict: ${text}`);
      return v;
    }
    case 'tablespaces': {
      const v = literal(name, text);
      if (!pyTruthy(v)) return null; // barman loads an empty list as None
      const items = asItems(v);
      if (!items) throw new BackupInfoParseError(`${name} is not a list: ${text}`);
      const list = items.map((item) => {
        const parts = asItems(item);
        if (!parts || parts.length !== 3) throw new BackupInfoParseError(`Expected 3 arguments for a tablespace, got ${pyRepr(item)}`);
        const [tsName, oid, location] = parts as [PyValue, PyValue, PyValue];
        if (typeof oid !== 'number' || !Number.isInteger(oid)) throw new BackupInfoParseError(`invalid tablespace oid ${pyRepr(oid)}`);
        return { name: asText(name, tsName), oid, location: asText(name, location) };
      });
      // An OID names the archive a tablespace is restored from, a name is what --tablespace
      // relocates: each must be unique, as in pg_tablespace (docs/format.md#backup-info-syntax).
      const oids = new Set<number>();
      const names = new Set<string>();
      for (const t of list) {
        if (oids.has(t.oid)) throw new BackupInfoParseError(`tablespace oid ${t.oid} appears twice in tablespaces`);
        if (names.has(t.name)) throw new BackupInfoParseError(`tablespace name ${pyRepr(t.name)} appears twice in tablespaces`);
        oids.add(t.oid);
        names.add(t.name);
      }
      return list;
    }
    case 'ids':
      return text === '' ? null : text.split(',');
  }
}

export interface ParseOptions {
  /** Name used in error messages (barman prints `<UNKNOWN>` for objects read from a bucket). */
  filename?: string;
}

/**
 * Read a backup.info (docs/format.md#backup-info-syntax). Throws BackupInfoParseError for unreadable content and
 * UnknownBackupInfoField for a key barman 3.17 does not know.
 */
/**
 * The most a backup.info is read of (docs/format.md#metadata-limits): barman's are 2-4 KB; 1 MiB
 * leaves room for thousands of tablespaces.
 */
export const BACKUP_INFO_MAX_BYTES = 1 << 20;

export function parseBackupInfo(content: string | Uint8Array, options: ParseOptions = {}): BackupInfoFields {
  let text: string;
  if (typeof content === 'string') text = content;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    } catch (e) {
      throw new BackupInfoParseError(`'utf-8' codec can't decode backup.info: ${(e as Error).message}`, { cause: e });
    }
  }
  const info = emptyBackupInfoFields() as Record<string, unknown>;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    // Python iterates the file keeping each '\n'; a line of blanks or a comment is skipped.
    if (line.trim() === '' || line.trimEnd().startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new BackupInfoParseError(`invalid line ${line.trim()} in file ${options.filename ?? '<UNKNOWN>'}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (!Object.hasOwn(BACKUP_INFO_FIELDS, key)) {
      if (IGNORED_KEYS.has(key)) continue;
      throw new UnknownBackupInfoField(key);
    }
    info[key] = value === 'None' ? null : parseField(key as BackupInfoField, value);
  }
  return info as BackupInfoFields;
}

// ---- writer ---------------------------------------------------------------------------------------

export interface SerializeOptions {
  /**
   * 'head' (default) writes every field of barman 3.17; '3.4' leaves out the six keys barman 3.4
   * does not know (docs/format.md#backup-info-syntax), so that 3.4 can still read the file.
   */
  compat?: 'head' | '3.4';
}

function dumpField(name: BackupInfoField, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  switch (BACKUP_INFO_FIELDS[name].kind as FieldKind) {
    case 'str':
      return String(value);
    case 'int':
      return String(value);
    case 'time':
      return normalizeTimestamp(value as string);
    case 'label':
      return value === '' ? null : strRepr(value as string);
    case 'files':
      return (value as string[]).length ? pyRepr(value as string[]) : null;
    case 'dict':
      return (value as PyDict).size ? pyRepr(value as PyDict) : null;
    case 'tablespaces': {
      const list = value as Tablespace[];
      return list.length ? pyRepr(list.map((t) => new PyTuple([t.name, t.oid, t.location]))) : null;
    }
    case 'ids':
      return (value as string[]).length ? (value as string[]).join(',') : null;
  }
}

/** The value of a field as barman's items() gives it: the text written to the file, or null. */
export function dumpedValue(info: BackupInfoFields, name: BackupInfoField): string | null {
  return dumpField(name, info[name]);
}

/** Write a backup.info as barman does: sorted keys, `None` for nulls, hidden fields left out when null. */
export function serializeBackupInfo(info: BackupInfoFields, options: SerializeOptions = {}): string {
  const compat = options.compat ?? 'head';
  let out = '';
  for (const name of FIELD_NAMES) {
    const def: FieldDef = BACKUP_INFO_FIELDS[name];
    if (compat === '3.4' && !def.in34) continue;
    const raw = info[name];
    if (def.hideIfNull && (raw === null || raw === undefined)) continue;
    out += `${name}=${dumpField(name, raw) ?? 'None'}\n`;
  }
  return out;
}

// Retention policies (docs/format.md#retention-policy, #retention-report): parsing barman's two policy syntaxes and evaluating them over
// a catalog into barman's per-backup report. Pure functions: the catalog, the keep annotations and
// the current time are all parameters, so the same input always gives the same report.
import { CliError, GeneralError } from '../errors.js';
import {
  STATUS, isInterruptedDeletion, parseTimestamp, pyDatetimeStr, timestampEpochMicros, timestampFromDate, type BackupInfo,
} from '../catalog/backup-info.js';

/** barman's retention statuses (BackupInfo.OBSOLETE, VALID, …); `-` is "not a DONE backup". */
const RETENTION_STATUS = {
  OBSOLETE: 'OBSOLETE',
  VALID: 'VALID',
  POTENTIALLY_OBSOLETE: 'OBSOLETE*',
  NONE: '-',
  KEEP_FULL: 'KEEP:FULL',
  KEEP_STANDALONE: 'KEEP:STANDALONE',
} as const;

export type RetentionStatus = (typeof RETENTION_STATUS)[keyof typeof RETENTION_STATUS];

export type WindowUnit = 'd' | 'w' | 'm';

export type RetentionPolicy =
  | { kind: 'redundancy'; value: number }
  | { kind: 'window'; value: number; unit: WindowUnit };

// The regexes of barman's RedundancyRetentionPolicy / RecoveryWindowRetentionPolicy (docs/format.md#retention-policy).
const REDUNDANCY_RE = /^\s*redundancy\s+(\d+)\s*$/i;
const WINDOW_RE = /^\s*recovery\s+window\s+of\s+(\d+)\s+(day|month|week)s?\s*$/i;
// barman's SimpleWALRetentionPolicy matches this too and then crashes when used for base backups.
const MAIN_RE = /^\s*main\s*$/i;

/** Python's timedelta refuses more than this many days (OverflowError when the policy is built). */
const MAX_TIMEDELTA_DAYS = 999_999_999;

const UNIT_WORD: Record<WindowUnit, string> = { d: 'DAYS', w: 'WEEKS', m: 'MONTHS' };
/** A week is 7 days and a month is always 31 days in barman (docs/format.md#retention-policy). */
const UNIT_DAYS: Record<WindowUnit, number> = { d: 1, w: 7, m: 31 };

/**
 * Parse `REDUNDANCY n` or `RECOVERY WINDOW OF n DAY[S]|WEEK[S]|MONTH[S]` (case-insensitive, blanks
 * around allowed). Anything else is barman's CLI error (exit 3).
 */
export function parseRetentionPolicy(text: string): RetentionPolicy {
  const red = REDUNDANCY_RE.exec(text);
  if (red) return { kind: 'redundancy', value: Number(red[1]) };
  const win = WINDOW_RE.exec(text);
  if (win) {
    const policy: RetentionPolicy = { kind: 'window', value: Number(win[1]), unit: win[2]!.toLowerCase()[0] as WindowUnit };
    const days = policy.value * UNIT_DAYS[policy.unit];
    if (days > MAX_TIMEDELTA_DAYS) {
      throw new GeneralError(`days=${days}; must have magnitude <= ${MAX_TIMEDELTA_DAYS}`);
    }
    return policy;
  }
  if (MAIN_RE.test(text)) {
    // barman builds a WAL-only policy here and fails with an AttributeError (exit 4).
    throw new GeneralError(`Could not use retention policy ${text}: MAIN is a WAL retention policy, not a backup one`);
  }
  throw new CliError(`Could not create retention policy ${text}: Cannot parse option retention_policy: ${text}`);
}

/** barman's str(policy): `REDUNDANCY 2`, `RECOVERY WINDOW OF 4 WEEKS`. */
export function formatRetentionPolicy(policy: RetentionPolicy): string {
  return policy.kind === 'redundancy'
    ? `REDUNDANCY ${policy.value}`
    : `RECOVERY WINDOW OF ${policy.value} ${UNIT_WORD[policy.unit]}`;
}

/** The retention status a keep annotation gives a DONE backup, or null when it is not kept. */
export function keepStatus(target: string | null | undefined): RetentionStatus | null {
  if (target === 'standalone') return RETENTION_STATUS.KEEP_STANDALONE;
  // Any other non-empty value counts as a full keep, for safety (barman's rule). An empty
  // annotation object is "no keep" here.
  if (target) return RETENTION_STATUS.KEEP_FULL;
  return null;
}

/**
 * The start of a recovery window: `now` minus the window, computed like barman's
 * `datetime.now(tzlocal()) - timedelta`: on the local wall clock, then read back in the local zone.
 */
export function pointOfRecoverability(policy: Extract<RetentionPolicy, { kind: 'window' }>, now: Date): Date {
  const days = policy.value * UNIT_DAYS[policy.unit];
  const point = new Date(now.getTime());
  point.setDate(point.getDate() - days);
  // setDate() keeps the local wall-clock time across DST changes, as Python's aware arithmetic does.
  return point;
}

/** Python's datetime cannot go before year 1: barman fails there (OverflowError, exit 4). */
function pyMinDate(): number {
  const d = new Date(0);
  d.setUTCFullYear(1, 0, 1);
  return d.getTime();
}

export interface RetentionMessage {
  level: 'warning' | 'info' | 'debug';
  text: string;
}

export interface RetentionInput {
  /** Every backup with a readable backup.info, keyed by backup ID. */
  backups: ReadonlyMap<string, BackupInfo>;
  /** The keep annotation of a backup (null when there is none). */
  keepTarget: (backupId: string) => string | null;
  /** `--minimum-redundancy` (0 when not given). */
  minimumRedundancy: number;
  /** The current time, for recovery windows. */
  now: Date;
  /** For the log messages only. */
  serverName?: string;
}

export interface RetentionReport {
  /** Status per backup ID, newest first (barman's dict order). Incremental backups without a
   *  parent in the report are absent, as in barman. */
  statuses: Map<string, RetentionStatus>;
  /** What barman logs while evaluating (the caller decides where it goes). */
  messages: RetentionMessage[];
  /** The effective redundancy (after -m) for REDUNDANCY, the window start for RECOVERY WINDOW. */
  effectiveRedundancy?: number;
  pointOfRecoverability?: Date;
}

function endsBefore(info: BackupInfo, pointMs: number): boolean {
  // A DONE backup always has an end time; without one barman would crash. Not ending before the
  // window is the conservative reading (the backup stays in the window).
  if (!info.end_time) return false;
  return timestampEpochMicros(parseTimestamp(info.end_time)) < BigInt(pointMs) * 1000n;
}

function localTimestamp(date: Date): string {
  return pyDatetimeStr(timestampFromDate(date, -date.getTimezoneOffset() * 60, date.getMilliseconds() * 1000));
}

/** barman's has_children / is_incremental (only Barman-server backups uploaded in hook mode have them). */
const isIncremental = (b: BackupInfo) => b.parent_backup_id !== null && b.parent_backup_id !== undefined;
const hasChildren = (b: BackupInfo) => Array.isArray(b.children_backup_ids) && b.children_backup_ids.length > 0;

/** Give every backup below `root` (children, grandchildren…) the status `status`. */
function propagate(backups: ReadonlyMap<string, BackupInfo>, root: BackupInfo, status: RetentionStatus, report: Map<string, RetentionStatus>): void {
  const seen = new Set<string>([root.backup_id]);
  const walk = (b: BackupInfo) => {
    for (const child of b.children_backup_ids ?? []) {
      if (seen.has(child)) continue;
      seen.add(child);
      const info = backups.get(child);
      if (info) walk(info);
      report.set(child, status);
    }
  };
  walk(root);
}

/**
 * barman's retention report (docs/format.md#retention-report) for every backup of `input.backups`: iterate backup IDs
 * newest first; non-DONE backups get `-`; keep annotations give KEEP:FULL / KEEP:STANDALONE and
 * still consume redundancy slots; OBSOLETE* (kept for -m in a recovery window) is never deleted.
 */
export function evaluateRetention(policy: RetentionPolicy, input: RetentionInput): RetentionReport {
  const statuses = new Map<string, RetentionStatus>();
  const messages: RetentionMessage[] = [];
  const server = input.serverName ?? '';
  const m = input.minimumRedundancy;
  const ids = [...input.backups.keys()].sort().reverse();

  if (policy.kind === 'redundancy') {
    let redundancy = policy.value;
    if (redundancy < m) {
      messages.push({
        level: 'warning',
        text: `Retention policy redundancy (${redundancy}) is lower than the required minimum redundancy (${m}). Enforce ${m}.`,
      });
      redundancy = m;
    }
    let i = 0;
    for (const id of ids) {
      const b = input.backups.get(id)!;
      if (isIncremental(b)) continue;
      if (b.status === STATUS.DONE) {
        const keep = keepStatus(input.keepTarget(id));
        if (keep) statuses.set(id, keep);
        else statuses.set(id, i < redundancy ? RETENTION_STATUS.VALID : RETENTION_STATUS.OBSOLETE);
        i += 1;
      } else {
        statuses.set(id, RETENTION_STATUS.NONE);
      }
      if (hasChildren(b)) {
        let status = statuses.get(id)!;
        if (status === RETENTION_STATUS.KEEP_STANDALONE) status = i > redundancy ? RETENTION_STATUS.OBSOLETE : RETENTION_STATUS.VALID;
        else if (status === RETENTION_STATUS.KEEP_FULL) status = RETENTION_STATUS.VALID;
        propagate(input.backups, b, status, statuses);
      }
    }
    return { statuses, messages, effectiveRedundancy: redundancy };
  }

  const point = pointOfRecoverability(policy, input.now);
  const pointMs = point.getTime();
  const pointText = () => localTimestamp(point);
  let found = false;
  let valid = 0;
  for (const id of ids) {
    const b = input.backups.get(id)!;
    if (isIncremental(b)) continue;
    if (b.status === STATUS.DONE) {
      if (!(pointMs >= pyMinDate())) throw new GeneralError('date value out of range');
      const keep = keepStatus(input.keepTarget(id));
      if (found) {
        if (valid < m) {
          if (keep) {
            messages.push({ level: 'info', text: `Keeping obsolete backup ${id} for server ${server} (older than ${pointText()}) due to keep status: ${keep}` });
            statuses.set(id, keep);
          } else {
            messages.push({
              level: 'warning',
              text: `Keeping obsolete backup ${id} for server ${server} (older than ${pointText()}) due to minimum redundancy requirements (${m})`,
            });
            statuses.set(id, RETENTION_STATUS.POTENTIALLY_OBSOLETE);
          }
          valid += 1;
        } else if (keep) {
          messages.push({ level: 'info', text: `Keeping obsolete backup ${id} for server ${server} (older than ${pointText()}) due to keep status: ${keep}` });
          statuses.set(id, keep);
        } else {
          messages.push({ level: 'info', text: `Reporting backup ${id} for server ${server} as OBSOLETE (older than ${pointText()})` });
          statuses.set(id, RETENTION_STATUS.OBSOLETE);
        }
      } else {
        // Inside the window, and the first backup ending before the window start: needed to recover
        // to the start of the window, so it stays VALID.
        statuses.set(id, keep ?? RETENTION_STATUS.VALID);
        valid += 1;
        if (endsBefore(b, pointMs)) found = true;
      }
    } else {
      statuses.set(id, RETENTION_STATUS.NONE);
    }
    if (hasChildren(b)) {
      let status = statuses.get(id)!;
      if (status === RETENTION_STATUS.KEEP_STANDALONE) status = found ? RETENTION_STATUS.OBSOLETE : RETENTION_STATUS.VALID;
      else if (status === RETENTION_STATUS.KEEP_FULL) status = RETENTION_STATUS.VALID;
      propagate(input.backups, b, status, statuses);
    }
  }
  return { statuses, messages, pointOfRecoverability: point };
}

/** The backups `backup-delete -r` deletes: status exactly OBSOLETE, oldest first (docs/format.md#retention-report). */
export function obsoleteBackupIds(report: RetentionReport | Map<string, RetentionStatus>): string[] {
  const statuses = report instanceof Map ? report : report.statuses;
  return [...statuses].filter(([, s]) => s === RETENTION_STATUS.OBSOLETE).map(([id]) => id).sort();
}

/**
 * What `backup-delete -r` deletes, oldest first: the OBSOLETE backups and, beyond barman, every
 * backup whose deletion was begun and not finished, whatever the policy (docs/format.md#delete-backup).
 */
export function retentionDeletions(report: RetentionReport, backups: Iterable<BackupInfo>): string[] {
  const interrupted = [...backups].filter(isInterruptedDeletion).map((b) => b.backup_id);
  return [...new Set([...obsoleteBackupIds(report), ...interrupted])].sort();
}

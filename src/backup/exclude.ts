// Which files of PGDATA / of a tablespace go into a base backup (docs/format.md#tar-members).
//
// barman filters the `os.walk` of the directory with rsync-like rules (barman/fs.py path_allowed):
//   * a rule starting with '/' is anchored at the root of the walk; any other rule also matches at
//     any depth (it is tried a second time as `**/<rule>`);
//   * a rule ending with '/' only applies to directories;
//   * `*` matches within one path component, `**` crosses '/', `?` matches any one character;
//   * the include list wins over the exclude list; a path matching neither is kept.
// Paths are matched in barman's spelling (see childMemberName): the root is '.', entries directly
// below the root are 'name' for directories but './name' for files, deeper entries 'dir/sub/name'.
//
// A directory that is excluded loses its own entry and the files directly inside it; its
// sub-directories are not visited either (the documented intent, docs/format.md#tar-members), except below the walk
// root, which is always visited (a tablespace root '.' is itself excluded by `/*`).
// `descendExcluded: true` reproduces barman's literal os.walk behaviour instead, which keeps walking
// below an excluded directory and matches every deeper entry on its own.

export type RootKind = 'pgdata' | 'tablespace';

/** barman.postgres_plumbing.PGDATA_EXCLUDE_LIST: applied to PGDATA only. */
export const PGDATA_EXCLUDE_RULES: readonly string[] = [
  // log files (pg_log was renamed log in PostgreSQL 10)
  '/pg_log/*',
  '/log/*',
  // WAL (pg_xlog was renamed pg_wal in PostgreSQL 10): the directory stays, empty
  '/pg_xlog/*',
  '/pg_wal/*',
  // appended on its own after the walk
  '/global/pg_control',
];

/** Temporary relation files (`t<backend>_<relfilenode>` inside a database directory). */
const TEMP_RELATION_RULE = '**/[0-9]*/t[0-9]*_[0-9]*';

/** barman.postgres_plumbing.EXCLUDE_LIST: applied to PGDATA and to every tablespace. */
export const GENERIC_EXCLUDE_RULES: readonly string[] = [
  // files (PostgreSQL's excludeFiles)
  'pgsql_tmp*',
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
  'pg_internal.init',
  'postmaster.pid',
  'postmaster.opts',
  'recovery.conf',
  'standby.signal',
  TEMP_RELATION_RULE,
  // contents of these directories (PostgreSQL's excludeDirContents); the directories are kept
  'pg_dynshmem/*',
  'pg_notify/*',
  'pg_replslot/*',
  'pg_serial/*',
  'pg_stat_tmp/*',
  'pg_snapshots/*',
  'pg_subtrans/*',
];

/** A tablespace as backup.info records it (name, oid, location). */
export interface TablespaceRef {
  oid: number | string;
  location: string;
  name?: string;
}

export interface ExclusionOptions {
  kind: RootKind;
  /** PostgreSQL major version as barman spells it: '15', '16', '9.6' (see majorVersionString). */
  majorVersion: string | number;
  /** Tablespaces of the cluster: each is excluded from PGDATA (`/pg_tblspc/<oid>`). */
  tablespaces?: readonly TablespaceRef[];
  /**
   * PGDATA as PostgreSQL reports it (`SHOW data_directory`): a tablespace whose location starts with
   * `<pgdata>/` is excluded from the PGDATA walk (it is stored in its own archive).
   */
  pgdata?: string;
  /** More rules, appended after the standard ones. */
  extraExclude?: readonly string[];
  extraInclude?: readonly string[];
  /**
   * Treat `[...]` as a character class (rsync semantics, the intent of the temp-relation rule).
   * Default true. barman's own translator escapes '[' so the rule only matches a literal "[0-9]";
   * false reproduces that.
   */
  bracketClasses?: boolean;
  /** Keep walking below excluded directories, as barman's os.walk does (see the file comment). */
  descendExcluded?: boolean;
}

/** The rule lists barman passes to upload_directory for this root. */
export interface RuleSet {
  include: string[];
  exclude: string[];
}

/** server_version_num (150004, 90624) → barman's server_major_version ('15', '9.6'). */
export function majorVersionString(serverVersionNum: number): string {
  if (serverVersionNum >= 100000) return String(Math.floor(serverVersionNum / 10000));
  return `${Math.floor(serverVersionNum / 10000)}.${Math.floor(serverVersionNum / 100) % 100}`;
}

/** The include rule of a tablespace walk: only the `PG_<major>_<catversion>` tree is stored. */
export function tablespaceIncludeRule(majorVersion: string | number): string {
  return `/PG_${String(majorVersion)}_*`;
}

/** Include / exclude lists exactly as barman builds them (cloud.py _backup_data_files). */
export function buildRules(options: ExclusionOptions): RuleSet {
  const extraExclude = [...(options.extraExclude ?? [])];
  const extraInclude = [...(options.extraInclude ?? [])];
  if (options.kind === 'tablespace') {
    return {
      include: [tablespaceIncludeRule(options.majorVersion), ...extraInclude],
      exclude: ['/*', ...GENERIC_EXCLUDE_RULES, ...extraExclude],
    };
  }
  const perTablespace: string[] = [];
  for (const tbs of options.tablespaces ?? []) {
    // barman compares strings: the location must start with "<pgdata>/"
    if (options.pgdata !== undefined && tbs.location.startsWith(options.pgdata + '/')) {
      perTablespace.push(tbs.location.slice(options.pgdata.length));
    }
    perTablespace.push(`/pg_tblspc/${String(tbs.oid)}`);
  }
  return {
    include: extraInclude,
    exclude: [...PGDATA_EXCLUDE_RULES, ...GENERIC_EXCLUDE_RULES, ...perTablespace, ...extraExclude],
  };
}

/** A rule ready to be matched. */
export interface CompiledRule {
  readonly rule: string;
  readonly dirOnly: boolean;
  readonly anchored: boolean;
  /** The pattern itself, anchored at both ends. */
  readonly re: RegExp;
  /** `**\/<pattern>` for unanchored rules (match at any depth). */
  readonly deepRe?: RegExp;
}

function escapeRegExpChar(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c;
}

/** Translate a bracket expression starting at pattern[i] === '['; undefined when it is not closed. */
function translateClass(pattern: string, i: number): { re: string; next: number } | undefined {
  let j = i + 1;
  let negate = false;
  if (pattern[j] === '!' || pattern[j] === '^') {
    negate = true;
    j++;
  }
  let body = '';
  if (pattern[j] === ']') {
    body += '\\]';
    j++;
  }
  while (j < pattern.length && pattern[j] !== ']') {
    const c = pattern[j]!;
    body += c === '\\' || c === '[' || c === '^' ? `\\${c}` : c;
    j++;
  }
  if (j >= pattern.length) return undefined;
  // like rsync's wildmatch, a negated class never matches the path separator
  return { re: negate ? `[^/${body}]` : `[${body}]`, next: j + 1 };
}

/** barman's _translate_to_regexp (+ optional character classes), anchored at both ends. */
export function translatePattern(pattern: string, bracketClasses = true): RegExp {
  let res = '';
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith('**', i)) {
      res += '.*';
      i += 2;
      continue;
    }
    const c = pattern[i]!;
    if (c === '*') {
      res += '[^/]*';
      i++;
    } else if (c === '?') {
      res += '.';
      i++;
    } else if (c === '[' && bracketClasses) {
      const cls = translateClass(pattern, i);
      if (cls) {
        res += cls.re;
        i = cls.next;
      } else {
        res += '\\[';
        i++;
      }
    } else {
      res += escapeRegExpChar(c);
      i++;
    }
  }
  // Python: re.match(r"(?s)...\Z") → anchored at both ends, '.' matches newlines too
  return new RegExp(`^(?:${res})$`, 's');
}

export function compileRule(rule: string, bracketClasses = true): CompiledRule {
  if (rule.length === 0) throw new RangeError('empty exclusion rule');
  let body = rule;
  let dirOnly = false;
  if (body.endsWith('/')) {
    dirOnly = true;
    body = body.slice(0, -1);
  }
  let anchored = false;
  if (body.startsWith('/')) {
    anchored = true;
    body = body.slice(1);
  }
  return {
    rule,
    dirOnly,
    anchored,
    re: translatePattern(body, bracketClasses),
    deepRe: anchored ? undefined : translatePattern(`**/${body}`, bracketClasses),
  };
}

/** barman's _match_path: does any rule match this path? */
export function matchRules(rules: readonly CompiledRule[], path: string, isDir: boolean): boolean {
  for (const r of rules) {
    if (r.dirOnly && !isDir) continue;
    if (r.re.test(path)) return true;
    if (r.deepRe?.test(path)) return true;
  }
  return false;
}

/** What the walker does with one entry. */
export interface PathDecision {
  /** Store this entry (and, for a directory, the files directly inside it). */
  include: boolean;
  /** Directories only: visit the sub-directories. */
  descend: boolean;
}

/**
 * Member name of an entry found in the directory whose member name is `parent`, as barman builds
 * it: directories are `os.path.relpath` ('.', 'base', 'base/1'), files `os.path.join(tar_root,
 * name)` ('./PG_VERSION' at the top, 'base/1/1259' deeper).
 */
export function childMemberName(parent: string, name: string, isDir: boolean): string {
  if (parent === '.') return isDir ? name : `./${name}`;
  return `${parent}/${name}`;
}

export class PathFilter {
  readonly rules: RuleSet;
  private readonly include: CompiledRule[];
  private readonly exclude: CompiledRule[];
  private readonly descendExcluded: boolean;

  constructor(rules: RuleSet, options: { bracketClasses?: boolean; descendExcluded?: boolean } = {}) {
    this.rules = rules;
    const classes = options.bracketClasses ?? true;
    this.include = rules.include.map((r) => compileRule(r, classes));
    this.exclude = rules.exclude.map((r) => compileRule(r, classes));
    this.descendExcluded = options.descendExcluded ?? false;
  }

  /** barman's path_allowed: include rules first, then exclude rules, else allowed. */
  allowed(path: string, isDir: boolean): boolean {
    if (this.include.length > 0 && matchRules(this.include, path, isDir)) return true;
    if (this.exclude.length > 0 && matchRules(this.exclude, path, isDir)) return false;
    return true;
  }

  /** Decision for a member path (barman spelling, see childMemberName). */
  decide(path: string, isDir: boolean): PathDecision {
    const include = this.allowed(path, isDir);
    if (!isDir) return { include, descend: false };
    return { include, descend: include || path === '.' || this.descendExcluded };
  }
}

/** The filter barman applies to a PGDATA or tablespace walk. */
export function createPathFilter(options: ExclusionOptions): PathFilter {
  return new PathFilter(buildRules(options), options);
}

/**
 * Whether a path relative to the root is stored, taking its ancestors into account: an entry
 * below an excluded (pruned) directory is not stored. `relPath` may use either spelling ('x' or
 * './x'); `isDir` describes the last component. Convenient for tests and for dry runs.
 */
export function isPathIncluded(filter: PathFilter, relPath: string, isDir: boolean): boolean {
  const parts = relPath.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) return filter.decide('.', true).include;
  let dirMember = '.';
  let dirState = filter.decide('.', true);
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    const entryIsDir = last ? isDir : true;
    // files of an excluded directory are skipped; sub-directories need `descend`
    if (!entryIsDir && !dirState.include) return false;
    if (entryIsDir && !dirState.descend) return false;
    const member = childMemberName(dirMember, parts[i]!, entryIsDir);
    const decision = filter.decide(member, entryIsDir);
    if (last) return decision.include;
    dirMember = member;
    dirState = decision;
  }
  return false;
}

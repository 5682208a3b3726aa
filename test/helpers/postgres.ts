// A small PostgreSQL 15 harness for integration tests: throw-away clusters on a private Unix socket,
// base backups, and clusters adopted from a restored data directory for recovery tests.
//
// Root and non-root: PostgreSQL refuses to run as root. When this process is root (CI is), every
// server-side binary (initdb, pg_ctl, pg_basebackup) runs as the `postgres` OS user through
// `runuser -u postgres --`, and every directory the server touches is chowned to that user. As
// any other user the binaries run directly and nothing is chowned.
// archive_command / restore_command run as the server's user too: build them with toolCommand(),
// which points at toolRootForPostgres() (a copy the postgres user can read when the checkout is
// not) and nodePath().
//
// Stop order: stop (or remove()) PostgreSQL BEFORE stopping the object-store servers its
// archive_command talks to. A fast shutdown waits for the archiver, and an archive_command that
// retries against a dead endpoint makes that wait long. stop() falls back to an immediate stop
// when a fast stop times out, but the order above keeps tests quick.
//
// Every started server is stopped at process exit (`pg_ctl stop -m immediate` in an exit hook),
// and the harness's temporary directories are deleted then (set BC_KEEP_PG_TMP=1 to keep them).
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync,
  statSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { promisify } from 'node:util';
import { freePort, ROOT } from './servers.ts';
import { cleanEnv, runBin } from './run-bin.ts';

/** Directory holding the PostgreSQL server binaries (override with PG_BINDIR). */
export const PG_BIN = process.env.PG_BINDIR ?? '/usr/lib/postgresql/15/bin';
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser'].find((p) => existsSync(p)) ?? 'runuser';

/** `argv` as the server's OS user would run it: behind `runuser -u postgres --` when we are root. */
export function asPostgresArgv(argv: string[]): [string, string[]] {
  return IS_ROOT ? [RUNUSER, ['-u', 'postgres', '--', ...argv]] : [argv[0]!, argv.slice(1)];
}

/** Run `argv` synchronously as the server's user, from a directory that user can enter. */
export function asPostgres(argv: string[], timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
  const [file, args] = asPostgresArgv(argv);
  const r = spawnSync(file, args, { cwd: tmpdir(), encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------
// Availability

let pgIds: { uid: number; gid: number } | null | undefined;
/** uid/gid of the `postgres` OS user, or null if there is none. */
function postgresIds(): { uid: number; gid: number } | null {
  if (pgIds !== undefined) return pgIds;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { stdio: 'pipe' }).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { stdio: 'pipe' }).toString().trim());
    pgIds = { uid, gid };
  } catch {
    pgIds = null;
  }
  return pgIds;
}

/** True when the PostgreSQL binaries are present (and, as root, the `postgres` user exists). */
export function postgresAvailable(): boolean {
  const bins = ['initdb', 'pg_ctl', 'postgres', 'psql', 'pg_basebackup', 'pgbench'];
  if (!bins.every((b) => existsSync(join(PG_BIN, b)))) return false;
  if (!IS_ROOT) return true;
  if (postgresIds() === null) return false;
  try {
    execFileSync(RUNUSER, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Skip flag for `describe.skipIf(...)` / `it.skipIf(...)`: returns true (skip) when a tool is
 * missing locally, but throws when process.env.CI === 'true', so CI never silently skips.
 *   describe.skipIf(requireTool('PostgreSQL 15', postgresAvailable()))('...', () => { ... })
 */
export function requireTool(name: string, available: boolean): boolean {
  if (available) return false;
  if (process.env.CI === 'true') throw new Error(`${name} is required in CI but is not available`);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Small utilities

/** Quote a string for /bin/sh (as archive_command / restore_command are run by `sh -c`). */
export function shellQuote(s: string): string {
  if (s !== '' && /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A postgresql.conf string literal. */
function confQuote(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

interface RunOpts {
  asPostgres?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}
interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Spawn a command (as `postgres` when asked and we are root); rejects on a non-zero exit. */
function run(cmd: string, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  const [file, argv] = opts.asPostgres ? asPostgresArgv([cmd, ...args]) : [cmd, args];
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const what = [cmd, ...args].join(' ');
  return new Promise((res, rej) => {
    const child = spawn(file, argv, {
      cwd: opts.cwd ?? tmpdir(),
      env: opts.env ?? baseEnv(),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      rej(new Error(`${what}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) res({ code, stdout, stderr });
      else {
        const why = signal ? `was killed by ${signal}${signal === 'SIGKILL' ? ` (timeout ${timeoutMs} ms?)` : ''}` : `exited with ${code}`;
        rej(Object.assign(new Error(`${what} ${why}\n${stderr}${stdout}`.trim()), { stdout, stderr, code }));
      }
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** The test runner's environment minus cloud/vitest variables and any PG* libpq settings. */
function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env = cleanEnv();
  for (const k of Object.keys(env)) if (k.startsWith('PG')) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function isWithin(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * As root, make sure `postgres` can traverse every ancestor of `path`: ancestors inside
 * os.tmpdir() get o+x added; anything else that blocks throws a clear error.
 */
function ensureTraversable(path: string): void {
  const ids = IS_ROOT ? postgresIds() : null;
  if (!ids) return;
  const tmp = resolve(tmpdir());
  let dir = dirname(resolve(path));
  for (;;) {
    const st = statSync(dir);
    const bit = st.uid === ids.uid ? 0o100 : st.gid === ids.gid ? 0o010 : 0o001;
    if (!(st.mode & bit)) {
      if (isWithin(tmp, dir)) chmodSync(dir, (st.mode & 0o7777) | 0o001);
      else throw new Error(`the postgres user cannot traverse ${dir} (needed for ${path})`);
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
}

/** As root, give a tree to the postgres user (no-op otherwise). */
async function chownToPostgres(path: string): Promise<void> {
  const ids = IS_ROOT ? postgresIds() : null;
  if (!ids) return;
  await run('chown', ['-R', `${ids.uid}:${ids.gid}`, path]);
}

const harnessDirs = new Set<string>();

/**
 * A fresh directory under os.tmpdir() that the server's user owns (mode 0755), e.g. an archive
 * directory for `cp %p dir/%f`. It is deleted at process exit.
 */
export function pgTempDir(prefix = 'bc-pg-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  harnessDirs.add(dir);
  chmodSync(dir, 0o755);
  ensureTraversable(dir);
  const ids = IS_ROOT ? postgresIds() : null;
  if (ids) execFileSync('chown', [`${ids.uid}:${ids.gid}`, dir]);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Process-exit cleanup

const running = new Set<Cluster>();
process.once('exit', () => {
  for (const c of running) {
    try {
      const args = [join(PG_BIN, 'pg_ctl'), 'stop', '-D', c.dataDir, '-m', 'immediate', '-w', '-t', '20', '-s'];
      const [file, argv] = asPostgresArgv(args);
      execFileSync(file, argv, { stdio: 'ignore', cwd: tmpdir(), timeout: 25_000 });
    } catch {
      // best effort
    }
  }
  running.clear();
  if (process.env.BC_KEEP_PG_TMP || harnessDirs.size === 0) return;
  // A detached rm: the test runner may kill this process before a synchronous delete of a large
  // tree (the tool copy's node_modules) finishes.
  try {
    spawn('rm', ['-rf', '--', ...harnessDirs], { detached: true, stdio: 'ignore', cwd: tmpdir() }).unref();
  } catch {
    // best effort
  }
});

// ---------------------------------------------------------------------------------------------
// The tool, as the postgres user sees it

let toolRoot: string | undefined;

/**
 * The repository root as the PostgreSQL server's user can reach it. ROOT when that user can
 * execute bin/barman-cloud-wal-archive and read dist/cli/run.js (or when we are not root);
 * otherwise a cached, once-per-process copy under os.tmpdir(): bin, dist, package.json copied and
 * node_modules hard-linked (`cp -al`, falling back to `cp -a`), directories chmod 755.
 * dist/ must be built (`node scripts/build.mjs`).
 */
export function toolRootForPostgres(opts: { forceCopy?: boolean } = {}): string {
  const runJs = join(ROOT, 'dist', 'cli', 'run.js');
  if (!existsSync(runJs)) throw new Error(`${runJs} is missing: build first with \`npx tsc -p tsconfig.json\``);
  if (!opts.forceCopy) {
    if (!IS_ROOT) return ROOT;
    if (toolRoot) return toolRoot;
    try {
      execFileSync(RUNUSER, ['-u', 'postgres', '--', 'test', '-x', join(ROOT, 'bin', 'barman-cloud-wal-archive'), '-a', '-r', runJs], {
        stdio: 'ignore', cwd: tmpdir(),
      });
      toolRoot = ROOT;
      return ROOT;
    } catch {
      // fall through to the copy
    }
  }
  const copy = mkdtempSync(join(tmpdir(), 'bc-tool-'));
  harnessDirs.add(copy);
  const sh = (script: string) => execFileSync('sh', ['-c', script], { stdio: 'pipe', cwd: tmpdir() });
  const src = shellQuote(ROOT);
  const dst = shellQuote(copy);
  sh(`cp -a ${src}/bin ${src}/dist ${src}/package.json ${dst}/ && chmod -R a+rX ${dst}/bin ${dst}/dist ${dst}/package.json`);
  if (existsSync(join(ROOT, 'node_modules'))) {
    try {
      sh(`cp -al ${src}/node_modules ${dst}/node_modules`);
    } catch {
      rmSync(join(copy, 'node_modules'), { recursive: true, force: true });
      sh(`cp -a ${src}/node_modules ${dst}/node_modules`);
    }
    // Directories are new (safe to chmod); hard-linked files share the original inode, so any file
    // that is not world-readable is replaced by a private readable copy instead.
    sh(
      `find ${dst}/node_modules -type d -exec chmod 755 {} + && ` +
        `find ${dst}/node_modules -type f ! -perm -o=r -exec sh -c 'for f; do cp -p "$f" "$f.tmp" && mv -f "$f.tmp" "$f" && chmod a+r "$f"; done' sh {} +`,
    );
  }
  chmodSync(copy, 0o755);
  ensureTraversable(copy);
  if (!opts.forceCopy) toolRoot = copy;
  return copy;
}

let nodeBin: string | undefined;

/** The node binary for archive/restore commands: process.execPath, or a copy postgres can run. */
export function nodePath(): string {
  if (nodeBin) return nodeBin;
  nodeBin = process.execPath;
  if (IS_ROOT) {
    try {
      execFileSync(RUNUSER, ['-u', 'postgres', '--', 'test', '-x', nodeBin], { stdio: 'ignore', cwd: tmpdir() });
    } catch {
      const dir = mkdtempSync(join(tmpdir(), 'bc-node-'));
      harnessDirs.add(dir);
      chmodSync(dir, 0o755);
      ensureTraversable(dir);
      execFileSync('cp', [process.execPath, join(dir, 'node')]);
      chmodSync(join(dir, 'node'), 0o755);
      nodeBin = join(dir, 'node');
    }
  }
  return nodeBin;
}

/**
 * A shell command line running one of our executables as the server's user, for archive_command
 * or restore_command: toolCommand('barman-cloud-wal-archive', ['s3://b', 'srv']) + ' %p'.
 */
export function toolCommand(bin: string, args: string[] = []): string {
  const exe = join(toolRootForPostgres(), 'bin', bin);
  // The WAL commands run as PostgreSQL runs them in production: the file itself, through its shell
  // front (src/cli/fast-path.ts), with our node first on PATH. The others through node directly.
  if (bin === 'barman-cloud-wal-archive' || bin === 'barman-cloud-wal-restore') {
    return `PATH=${shellQuote(dirname(nodePath()))}:"$PATH" ${[exe, ...args].map(shellQuote).join(' ')}`;
  }
  return [nodePath(), exe, ...args].map(shellQuote).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Clusters

export interface PgCluster {
  dataDir: string;
  port: number;
  /** Private Unix socket directory (the server listens on no TCP address). */
  socketDir: string;
  /** Major version, from PG_VERSION. */
  version: number;
  /** Server log file (written by pg_ctl -l). */
  logFile: string;
  /** libpq env for clients: PGHOST=socketDir, PGPORT, PGUSER=postgres, PGDATABASE=postgres. */
  env: NodeJS.ProcessEnv;
  /** Whether this harness started the server and has not stopped it. */
  readonly running: boolean;
  /** psql -XAtq -v ON_ERROR_STOP=1 with the SQL on stdin; returns stdout trimmed. */
  psql(sql: string, opts?: { db?: string }): Promise<string>;
  /** pgbench with the cluster's env; returns stdout trimmed. */
  pgbench(args: string[]): Promise<string>;
  /** Write a WAL record, switch WAL, and return the name of the segment just closed. */
  switchWal(): Promise<string>;
  /** Wait until a WAL file (or .history) is archived; throws with the archiver state + log tail. */
  waitForArchived(walName: string, timeoutMs?: number): Promise<void>;
  /** Poll a query until its trimmed output equals `expected` (connection errors are retried). */
  waitFor(sql: string, expected: string, timeoutMs?: number): Promise<void>;
  /** Append settings to postgresql.auto.conf (effective on start, or reload() for reloadable ones). */
  setConf(conf: Record<string, string>): void;
  /** SELECT pg_reload_conf(). */
  reload(): Promise<void>;
  /** pg_ctl -w start; throws with the log tail on failure. */
  start(): Promise<void>;
  /** pg_ctl stop (default fast; falls back to immediate after 30 s). No-op if not running. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** pg_ctl -w promote. */
  promote(): Promise<void>;
  /** The last `lines` lines of the server log, for failure messages. */
  logTail(lines?: number): string;
  /** Stop (immediate) if running and delete the data directory and the harness's directories. */
  remove(): Promise<void>;
}

export interface ClusterOptions {
  /** Extra settings, appended to postgresql.auto.conf after the harness's own. */
  conf?: Record<string, string>;
  /** Extra environment for the server process (and so for archive_command/restore_command). */
  serverEnv?: Record<string, string | undefined>;
}

class Cluster implements PgCluster {
  readonly env: NodeJS.ProcessEnv;
  readonly logFile: string;
  readonly version: number;
  private started = false;

  constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly socketDir: string,
    private readonly workDir: string,
    private readonly serverEnv: NodeJS.ProcessEnv,
    private readonly extraDirs: string[],
  ) {
    this.logFile = join(workDir, 'postgres.log');
    this.version = parseInt(readFileSync(join(dataDir, 'PG_VERSION'), 'utf8'), 10);
    this.env = baseEnv({ PGHOST: socketDir, PGPORT: String(port), PGUSER: 'postgres', PGDATABASE: 'postgres' });
  }

  get running(): boolean {
    return this.started;
  }

  private pgCtl(args: string[], timeoutMs = 90_000): Promise<RunResult> {
    return run(join(PG_BIN, 'pg_ctl'), [...args, '-D', this.dataDir], {
      asPostgres: true, env: this.serverEnv, cwd: this.workDir, timeoutMs,
    });
  }

  async psql(sql: string, opts: { db?: string } = {}): Promise<string> {
    const args = ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-f', '-'];
    if (opts.db) args.push('-d', opts.db);
    const r = await run(join(PG_BIN, 'psql'), args, { env: this.env, cwd: this.workDir, input: sql, timeoutMs: 60_000 });
    return r.stdout.trim();
  }

  async pgbench(args: string[]): Promise<string> {
    const r = await run(join(PG_BIN, 'pgbench'), args, { env: this.env, cwd: this.workDir, timeoutMs: 120_000 });
    return r.stdout.trim();
  }

  async switchWal(): Promise<string> {
    // pg_switch_wal() is a no-op on an empty segment, so write a record first; pg_walfile_name()
    // of the returned (segment-boundary) LSN names the segment that was just closed.
    const out = await this.psql(
      "SELECT pg_logical_emit_message(false, 'bc-harness', 'switch');\nSELECT pg_walfile_name(pg_switch_wal());",
    );
    return out.split('\n').at(-1)!.trim();
  }

  async waitForArchived(walName: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const done = join(this.dataDir, 'pg_wal', 'archive_status', `${walName}.done`);
    const isSegment = /^[0-9A-F]{24}$/.test(walName);
    let state = '';
    for (;;) {
      if (existsSync(done)) return;
      try {
        state = await this.psql(
          "SELECT coalesce(last_archived_wal, '') || '|' || coalesce(last_failed_wal, '') || '|' || failed_count FROM pg_stat_archiver",
        );
        const last = state.split('|')[0]!;
        if (last === walName) return;
        // Segments are archived in order: a later segment archived means ours was too.
        if (isSegment && /^[0-9A-F]{24}$/.test(last) && last > walName) return;
      } catch (e) {
        state = (e as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${walName} was not archived within ${timeoutMs} ms (last_archived|last_failed|failed_count: ${state})\n${this.logTail()}`,
        );
      }
      await sleep(100);
    }
  }

  async waitFor(sql: string, expected: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        last = await this.psql(sql);
        if (last === expected) return;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(`waiting for ${JSON.stringify(sql)} = ${JSON.stringify(expected)}: got ${JSON.stringify(last)}\n${this.logTail()}`);
      }
      await sleep(100);
    }
  }

  setConf(conf: Record<string, string>): void {
    const lines = Object.entries(conf).map(([k, v]) => `${k} = ${confQuote(v)}\n`);
    if (lines.length) appendFileSync(join(this.dataDir, 'postgresql.auto.conf'), lines.join(''));
  }

  async reload(): Promise<void> {
    await this.psql('SELECT pg_reload_conf();');
  }

  async start(): Promise<void> {
    if (this.started) return;
    running.add(this);
    this.started = true;
    try {
      await this.pgCtl(['start', '-w', '-t', '60', '-s', '-l', this.logFile], 75_000);
    } catch (e) {
      // pg_ctl may have left a half-started postmaster behind.
      await this.pgCtl(['stop', '-m', 'immediate', '-w', '-t', '10', '-s'], 15_000).catch(() => undefined);
      running.delete(this);
      this.started = false;
      throw new Error(`PostgreSQL did not start: ${(e as Error).message}\n--- server log ---\n${this.logTail()}`);
    }
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.started) return;
    try {
      await this.pgCtl(['stop', '-m', mode, '-w', '-t', '30', '-s'], 40_000);
    } catch (e) {
      if (mode === 'immediate') throw new Error(`pg_ctl stop failed: ${(e as Error).message}\n${this.logTail()}`);
      await this.pgCtl(['stop', '-m', 'immediate', '-w', '-t', '30', '-s'], 40_000);
    }
    running.delete(this);
    this.started = false;
  }

  async promote(): Promise<void> {
    try {
      await this.pgCtl(['promote', '-w', '-t', '60', '-s'], 75_000);
    } catch (e) {
      throw new Error(`pg_ctl promote failed: ${(e as Error).message}\n${this.logTail()}`);
    }
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch (e) {
      return `(no server log: ${(e as Error).message})`;
    }
  }

  async remove(): Promise<void> {
    if (this.started) await this.stop('immediate').catch(() => undefined);
    for (const d of [this.dataDir, ...this.extraDirs]) {
      rmSync(d, { recursive: true, force: true });
      harnessDirs.delete(d);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Settings every harness cluster gets: private socket, no TCP, fast and quiet. */
function baseConf(port: number, socketDir: string): Record<string, string> {
  return {
    port: String(port),
    unix_socket_directories: socketDir,
    listen_addresses: '',
    fsync: 'off',
    logging_collector: 'off',
    shared_buffers: '32MB',
    max_connections: '30',
  };
}

/** A work directory (socket dir + log) owned by the server's user. */
function makeWorkDir(prefix: string): { workDir: string; socketDir: string } {
  const workDir = pgTempDir(prefix);
  const socketDir = join(workDir, 'sock');
  mkdirSync(socketDir, { mode: 0o755 });
  chmodSync(socketDir, 0o755);
  const ids = IS_ROOT ? postgresIds() : null;
  if (ids) execFileSync('chown', [`${ids.uid}:${ids.gid}`, socketDir]);
  return { workDir, socketDir };
}

/**
 * initdb a new cluster (not started): `initdb -k -U postgres -A trust` (+ --wal-segsize), a
 * private socket dir, a free port, no TCP, fsync=off, logging_collector=off with the log in the
 * work dir; `conf` is appended to postgresql.auto.conf after the harness's settings.
 */
export async function initCluster(
  opts: ClusterOptions & { dataChecksums?: boolean; walSegmentSizeMb?: number } = {},
): Promise<PgCluster> {
  const { workDir, socketDir } = makeWorkDir('bc-pgcluster-');
  const dataDir = join(workDir, 'data');
  const port = await freePort();
  const serverEnv = baseEnv({ ...(opts.serverEnv ?? {}) });
  const args = ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-locale', '-E', 'UTF8', '-N'];
  if (opts.dataChecksums ?? true) args.push('-k');
  if (opts.walSegmentSizeMb) args.push('--wal-segsize', String(opts.walSegmentSizeMb));
  await run(join(PG_BIN, 'initdb'), args, { asPostgres: true, env: serverEnv, cwd: workDir, timeoutMs: 60_000 });
  const c = new Cluster(dataDir, port, socketDir, workDir, serverEnv, [workDir]);
  c.setConf({ ...baseConf(port, socketDir), ...(opts.conf ?? {}) });
  return c;
}

/** initCluster(opts) then start(). */
export async function startCluster(
  opts: ClusterOptions & { dataChecksums?: boolean; walSegmentSizeMb?: number } = {},
): Promise<PgCluster> {
  const c = await initCluster(opts);
  await c.start();
  return c;
}

/**
 * pg_basebackup -D <dir> -X none -c fast from a running cluster, as the server's user. WAL is not
 * included: a recovery test gets it from the archive (the server waits for the backup's WAL to be
 * archived when archive_mode is on). `targetDir` must not exist or be empty; by default a new
 * harness temp dir's `data`. `extraArgs` are appended (e.g. `--manifest-checksums=CRC32C`).
 * Returns the backup's directory.
 */
export async function baseBackup(from: PgCluster, targetDir?: string, extraArgs: string[] = []): Promise<string> {
  let dir: string;
  if (targetDir) {
    dir = resolve(targetDir);
    if (existsSync(dir) && readdirSync(dir).length) throw new Error(`${dir} is not empty`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } else {
    dir = join(pgTempDir('bc-pgbackup-'), 'data');
    mkdirSync(dir, { mode: 0o700 });
  }
  chmodSync(dir, 0o700);
  ensureTraversable(dir);
  await chownToPostgres(dir);
  const args = ['-D', dir, '-X', 'none', '-c', 'fast', '--no-sync', '-h', from.socketDir, '-p', String(from.port), '-U', 'postgres', ...extraArgs];
  try {
    await run(join(PG_BIN, 'pg_basebackup'), args, { asPostgres: true, env: from.env, cwd: dirname(dir), timeoutMs: 120_000 });
  } catch (e) {
    throw new Error(`pg_basebackup failed: ${(e as Error).message}\n${from.logTail()}`);
  }
  return dir;
}

/**
 * Adopt a restored or base-backup data directory as a new cluster (not started): new port and
 * socket dir, restore_command and `conf` appended to postgresql.auto.conf, recovery.signal or
 * standby.signal written, postmaster.pid dropped, owner postgres and mode 0700. Settings
 * inherited from the source (archive_mode, archive_command...) stay unless `conf` overrides them.
 * remove() deletes `dataDir` too.
 */
export async function recoveryCluster(
  dataDir: string,
  opts: ClusterOptions & { restoreCommand: string; signal: 'recovery' | 'standby' },
): Promise<PgCluster> {
  const dir = resolve(dataDir);
  if (!existsSync(join(dir, 'PG_VERSION'))) throw new Error(`${dir} is not a PostgreSQL data directory (no PG_VERSION)`);
  const { workDir, socketDir } = makeWorkDir('bc-pgrecovery-');
  const port = await freePort();
  rmSync(join(dir, 'postmaster.pid'), { force: true });
  rmSync(join(dir, 'postmaster.opts'), { force: true });
  for (const s of ['recovery.signal', 'standby.signal']) rmSync(join(dir, s), { force: true });
  mkdirSync(join(dir, 'pg_wal', 'archive_status'), { recursive: true });
  writeFileSync(join(dir, `${opts.signal}.signal`), '');
  const serverEnv = baseEnv({ ...(opts.serverEnv ?? {}) });
  // A backup directory made by baseBackup() in its own temp dir: delete that dir with the cluster.
  const extra = harnessDirs.has(dirname(dir)) ? [workDir, dirname(dir)] : [workDir];
  const c = new Cluster(dir, port, socketDir, workDir, serverEnv, extra);
  c.setConf({ ...baseConf(port, socketDir), restore_command: opts.restoreCommand, ...(opts.conf ?? {}) });
  chmodSync(dir, 0o700);
  ensureTraversable(dir);
  await chownToPostgres(dir);
  return c;
}

/**
 * startCluster() with archive_mode on and our barman-cloud-wal-archive as archive_command
 * (`archiveArgs`: its options, then the URL and server positionals); `conf` adds settings.
 */
export async function startArchivingCluster(
  archiveArgs: string[],
  opts: ClusterOptions & { dataChecksums?: boolean; walSegmentSizeMb?: number } = {},
): Promise<PgCluster> {
  return startCluster({ ...opts, conf: { archive_mode: 'on', archive_command: `${toolCommand('barman-cloud-wal-archive', archiveArgs)} %p`, ...opts.conf } });
}

/**
 * `barman-cloud-backup --immediate-checkpoint -n <name>` (after `flags`) to `storeArgs` (the URL
 * and server positionals, with any options before them); throws unless it exits 0 and writes
 * nothing on stderr. Returns what `backup-show --format json` says of the backup.
 */
export async function namedBackup(
  storeArgs: string[],
  name: string,
  env: NodeJS.ProcessEnv,
  flags: string[] = [],
): Promise<{ backup_id: string; tablespaces: [string, number, string][] | null }> {
  const b = await runBin('barman-cloud-backup', [...flags, '--immediate-checkpoint', '-n', name, ...storeArgs], { env, timeoutMs: 180_000 });
  if (b.code !== 0 || b.stderr !== '') throw new Error(`barman-cloud-backup exited ${b.code}: ${b.stderr}`);
  const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...storeArgs, name], { env });
  return (JSON.parse(show.stdout) as { cloud: { backup_id: string; tablespaces: [string, number, string][] | null } }).cloud;
}

/**
 * A restored data directory set to recover as the DBA would: through our barman-cloud-wal-restore
 * from `storeArgs` (the URL and server positionals, with any options before them), promoting at the
 * end of WAL, not archiving. Pushed on `clusters` before anything starts it, so the caller's
 * cleanup stops it even on failure.
 */
async function restoredCopy(
  dataDir: string,
  storeArgs: string[],
  opts: { serverEnv?: Record<string, string | undefined>; clusters: PgCluster[] },
): Promise<PgCluster> {
  const copy = await recoveryCluster(dataDir, {
    restoreCommand: `${toolCommand('barman-cloud-wal-restore', storeArgs)} %f %p`,
    signal: 'recovery',
    conf: { recovery_target_action: 'promote', archive_mode: 'off' },
    serverEnv: opts.serverEnv,
  });
  opts.clusters.push(copy);
  return copy;
}

/**
 * The end of every restore test: start a restored data directory as a copy (restoredCopy); resolves
 * once it accepts writes. Relocated tablespace directories made by this (root) process are handed
 * to postgres first.
 */
export async function startRestoredCopy(
  dataDir: string,
  storeArgs: string[],
  opts: { serverEnv: Record<string, string | undefined>; clusters: PgCluster[]; tablespaceDirs?: string[] },
): Promise<PgCluster> {
  if (IS_ROOT && opts.tablespaceDirs?.length) execFileSync('chown', ['-R', 'postgres:postgres', ...opts.tablespaceDirs]);
  const copy = await restoredCopy(dataDir, storeArgs, opts);
  await copy.start();
  await copy.waitFor('SELECT pg_is_in_recovery()', 'f', 120_000);
  return copy;
}

/**
 * Why PostgreSQL refuses to start on a restored data directory (restoredCopy, as startRestoredCopy
 * would start it): pg_ctl's error with the log tail. Throws if it starts. The copy is removed.
 */
export async function refusedStart(dataDir: string, storeArgs: string[], clusters: PgCluster[]): Promise<string> {
  const copy = await restoredCopy(dataDir, storeArgs, { clusters });
  try {
    await copy.start();
  } catch (e) {
    return (e as Error).message;
  } finally {
    await copy.remove();
  }
  throw new Error(`PostgreSQL started on ${dataDir}`);
}

/** Table t, 2000 rows 'before', and pgbench's tables at `scale`: what a round-trip test backs up. */
export async function fillRoundTrip(cluster: PgCluster, scale: number): Promise<void> {
  await cluster.psql("CREATE TABLE t (id int primary key, phase text); INSERT INTO t SELECT g, 'before' FROM generate_series(1, 2000) g;");
  await cluster.pgbench(['-i', '-s', String(scale), '-q']);
}

/**
 * After the backup of fillRoundTrip's rows: one row more in t, its WAL switched and archived (the
 * restored copy must replay it). The segment closed, and the rows the copy must show (roundTripRows).
 */
export async function afterRoundTripBackup(cluster: PgCluster): Promise<{ lastWal: string; rows: string[] }> {
  await cluster.psql("INSERT INTO t VALUES (100000, 'after')");
  const lastWal = await cluster.switchWal();
  await cluster.waitForArchived(lastWal, 60_000);
  return { lastWal, rows: await roundTripRows(cluster) };
}

/** What a round trip compares between the primary and its restored copy: pgbench's accounts and table t. */
export async function roundTripRows(cluster: PgCluster): Promise<string[]> {
  return [await cluster.psql('SELECT count(*), sum(abalance) FROM pgbench_accounts'), await cluster.psql('SELECT count(*), max(id) FROM t')];
}

/**
 * `pg_verifybackup -n` on a restored data directory (WAL is not checked: recovery fetches it from
 * the archive); its exit code and combined output.
 */
export async function pgVerifyBackup(dir: string): Promise<{ code: number; out: string }> {
  try {
    const r = await promisify(execFile)(join(PG_BIN, 'pg_verifybackup'), ['-n', dir]);
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

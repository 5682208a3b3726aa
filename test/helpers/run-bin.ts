// Spawns the real executables under bin/ (built by `npm test`'s pretest step) and collects output.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './servers.ts';
import { writeWalFile } from './wal-segment.ts';

export interface BinResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Environment for a child: ours, minus variables that would change what the tool does. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(AWS_|AZURE_|GOOGLE_|STORAGE_EMULATOR_HOST|IDENTITY_|MSI_|VITEST|NODE_OPTIONS)/.test(k)) delete env[k];
    if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k]; // tests name their own proxy (s3-proxy.test.ts)
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * The one way tests spawn a program and collect its output: resolves with the exit code (never
 * rejects on a non-zero one), rejects when it cannot start or outlives `timeoutMs` (then killed).
 */
export function runProcess(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<BinResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? cleanEnv(), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** One of our executables under bin/, run with Node as PostgreSQL's shell would (`node <file>` here). */
export function runBin(
  name: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; nodeArgs?: string[]; timeoutMs?: number } = {},
): Promise<BinResult> {
  return runProcess(process.execPath, [...(opts.nodeArgs ?? []), join(ROOT, 'bin', name), ...args], opts);
}

/** Segment names[i] holding contents[i], each archived in turn by `barman-cloud-wal-archive <args…> <file>` from a fresh pg_wal; each call's result. */
export async function archiveSegments(args: string[], names: readonly string[], contents: readonly Buffer[], env: NodeJS.ProcessEnv): Promise<BinResult[]> {
  const pgWal = mkdtempSync(join(tmpdir(), 'bc-archive-src-'));
  const results: BinResult[] = [];
  for (const [i, n] of names.entries()) results.push(await runBin('barman-cloud-wal-archive', [...args, writeWalFile(pgWal, n, contents[i]!)], { env }));
  return results;
}

/** One of our executables started in the background, for a test that kills it part-way through. */
export function spawnBin(name: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdio?: StdioOptions } = {}): ChildProcess {
  return spawn(process.execPath, [join(ROOT, 'bin', name), ...args], { env: opts.env ?? cleanEnv(), stdio: opts.stdio ?? 'ignore' });
}

/** How a child ended: the signal that killed it, else its exit code. Call it before the child can end. */
export function exitOf(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
}

/** One of Debian's barman-cli-cloud 3.4 tools (`/usr/bin/<tool>`), side by side with ours. */
export function runBarman(tool: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<BinResult> {
  return runProcess(`/usr/bin/${tool}`, args, { env, timeoutMs });
}

// Our barman-cloud-backup started in the background, for tests that watch, stop or kill it part-way.
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './servers.ts';
import { asPostgresArgv, nodePath, toolRootForPostgres } from './postgres.ts';

export interface BackupRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const IS_ROOT = process.getuid?.() === 0;

/** Start our barman-cloud-backup (as `postgres` when asked and we are root); `done` settles on exit. */
export function startBackup(args: string[], env: NodeJS.ProcessEnv, opts: { asPostgres?: boolean; timeoutMs?: number } = {}) {
  const started = Date.now();
  const [file, argv] = opts.asPostgres && IS_ROOT
    ? asPostgresArgv([nodePath(), join(toolRootForPostgres(), 'bin', 'barman-cloud-backup'), ...args])
    : [process.execPath, [join(ROOT, 'bin', 'barman-cloud-backup'), ...args]];
  const child: ChildProcess = spawn(file, argv, { env, cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const done = new Promise<BackupRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`barman-cloud-backup ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { child, done };
}

// Runs an executable of bin/ under GNU time and reports its own peak RSS (getrusage maxrss), for
// the memory bounds of issue 14 (test/integration/*-memory.test.ts).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './servers.ts';

export const GNU_TIME = '/usr/bin/time';
export const gnuTimeAvailable = (): boolean => existsSync(GNU_TIME);

export interface Measured {
  code: number | null;
  /** What the command wrote to stderr (time's own lines removed). */
  stderr: string;
  peakMb: number;
}

/** Runs bin/<name>; the peak RSS is the last line time writes to stderr. */
export function measured(name: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 300_000): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const child = spawn(GNU_TIME, ['-f', 'peak-rss-kib %M', process.execPath, join(ROOT, 'bin', name), ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const m = /peak-rss-kib (\d+)\s*$/.exec(stderr);
      if (!m) return reject(new Error(`no peak RSS from ${name}: ${stderr}`));
      resolve({ code, stderr: stderr.slice(0, m.index).replace(/Command exited with non-zero status \d+\n/, ''), peakMb: Number(m[1]) / 1024 });
    });
  });
}

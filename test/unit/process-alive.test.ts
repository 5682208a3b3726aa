// processAlive (src/wal/spool.ts) decides whether a claim or an --async worker lock is held: a
// zombie (killed, never reaped, e.g. under a PID 1 that does not reap) holds nothing.
import { describe, it, expect } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { processAlive } from '../../src/wal/spool.ts';

describe('processAlive', () => {
  it('is true for a running process and false for a zombie that kill(pid, 0) still finds', async () => {
    // The shell starts `sleep 1` and becomes `sleep 60`, which never reaps it: a zombie. (With
    // `sleep 5` as the parent, it could end first on a loaded machine, and then be no running
    // process; with `sleep 0` as the child, it could end before the exec, and the shell reaped it:
    // ps then found no such process, in one CI run.)
    const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((r) => parent.stdout.once('data', (d: Buffer) => r(d.toString().trim()))));
      // Wait until `sleep 1` has exited (ps says Z), however loaded the machine.
      for (let i = 0; i < 200 && !/Z/.test(execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' })); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(processAlive(pid)).toBe(false);
      expect(processAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

// One scratch directory per test run: every test's mkdtemp(tmpdir()) lands inside it (TMPDIR is
// inherited by the workers and every child they spawn), and it is removed when the run ends, so
// files a test forgot, or that a killed server left behind, never pile up in /tmp.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const root = mkdtempSync(join(tmpdir(), 'bc-test-run-'));
  // Sticky and world-writable like /tmp: PostgreSQL runs as another user and makes its own files here.
  chmodSync(root, 0o1777);
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(root, { recursive: true, force: true });
  };
}

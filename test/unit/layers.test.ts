// Layer rules of docs/architecture.md that a reader cannot check at a glance: nothing below
// src/cli/ reads the process environment (the CLI passes an env object down).
import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

// Still reads PATH and the locale itself; issue 15 moves it out in a change of its own.
const NOT_YET = new Set(['src/compression/bzip2.ts']);

describe('layers', () => {
  it('reads process.env only in src/cli/', () => {
    const files = sources(SRC).map((f) => relative(ROOT, f));
    expect(files.length).toBeGreaterThan(50);
    const readers = files.filter((f) => !f.startsWith('src/cli/') && !NOT_YET.has(f) &&
      /\bprocess\.env\b/.test(readFileSync(join(ROOT, f), 'utf8')));
    expect(readers).toEqual([]);
  });
});

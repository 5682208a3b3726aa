// scripts/unused-exports.mjs (run by pretest, so CI): on a small tree, an exported value no other
// file uses fails the check by name, whether it is used only in its own file or nowhere; exports
// used by another file (statically, by a dynamic import's destructuring or by a literal index),
// and exported types, pass.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

let tree: string;
const write = (path: string, text: string) => {
  mkdirSync(join(tree, path, '..'), { recursive: true });
  writeFileSync(join(tree, path), text);
};
const check = () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'unused-exports.mjs'), tree], { encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
};

beforeAll(() => {
  tree = mkdtempSync(join(tmpdir(), 'bc-unused-exports-'));
  write('test/tsconfig.json', JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, allowImportingTsExtensions: true }, include: ['**/*.ts', '../src/**/*.ts'] }));
  write('src/lib.ts', [
    'export const usedStatically = 1;',
    'export function usedByDestructuring(): number { return 2; }',
    'export function usedByIndex(): number { return 3; }',
    'export interface OnlyAType { a: number }',
    'export function onlyInItsOwnFile(): number { return 4; }',
    'export const nowhere = onlyInItsOwnFile();',
  ].join('\n'));
  write('src/main.ts', [
    "import { usedStatically } from './lib.ts';",
    "export async function run(flag: boolean): Promise<number> {",
    "  const { usedByDestructuring } = await import('./lib.ts');",
    "  const lib = await import('./lib.ts');",
    "  return usedStatically + usedByDestructuring() + lib[flag ? 'usedByIndex' : 'usedByIndex']();",
    '}',
  ].join('\n'));
  write('test/main.test.ts', "import { run } from '../src/main.ts';\nvoid run(true);\n");
});
afterAll(() => rmSync(tree, { recursive: true, force: true }));

describe('scripts/unused-exports.mjs', () => {
  it('names exported values no other file uses, and only those', () => {
    const r = check();
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const named = r.stderr.slice(r.stderr.indexOf('`export`): ') + 11).trim().split(', ').sort();
    expect(named).toEqual(['src/lib.ts: nowhere', 'src/lib.ts: onlyInItsOwnFile']);
  });

  it('passes once they are used or no longer exported', () => {
    write('src/lib.ts', [
      'export const usedStatically = 1;',
      'export function usedByDestructuring(): number { return 2; }',
      'export function usedByIndex(): number { return 3; }',
      'export interface OnlyAType { a: number }',
      'function onlyInItsOwnFile(): number { return 4; }',
      'void onlyInItsOwnFile();',
    ].join('\n'));
    const r = check();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

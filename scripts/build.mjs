// Build: type-check with tsc, then bundle src/cli/run.ts with esbuild into dist/cli/ as ESM with
// code splitting. One file per lazily imported part (each provider driver, each codec, each
// command) keeps the hot path lean, and loading a few bundled files instead of ~35 small modules
// saves ~25 ms per process start (measured), which PostgreSQL pays once per WAL file.
// npm packages stay external: the SDKs are still loaded only when their provider is used.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
// The launcher and the shell-front generator read the option table, which the registry's data-only
// declarations feed; the registry's loaders of provider code are never called there, so their
// dynamic imports are left unresolved instead of bundling every provider (and its driver) in.
const noDynamicImports = {
  name: 'no-dynamic-imports',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => (args.kind === 'dynamic-import' ? { path: args.path, external: true } : undefined));
  },
};
const check = !process.argv.includes('--no-check');
if (check) execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'], { cwd: root, stdio: 'inherit' });
rmSync(resolve(root, 'dist'), { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/run.ts'],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Linked maps: stack traces name src/ files under `node --enable-source-maps` (off by default,
  // see docs/architecture.md: parsing the maps would cost every WAL call).
  sourcemap: 'linked',
  logLevel: 'warning',
});
// The CommonJS launcher the bin/ scripts require (answers --version without the ESM loader).
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/launch.ts'],
  outfile: 'dist/cli/launch.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  plugins: [noDynamicImports],
  sourcemap: 'linked',
  logLevel: 'warning',
});
// The generator of the WAL commands' shell fronts (src/cli/fast-path.ts), for scripts/generate.mjs.
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/fast-path.ts'],
  outfile: 'dist/fast-path.mjs',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [noDynamicImports],
  logLevel: 'warning',
});
// The committed files generated from dist/ (bin/'s WAL fronts, completions/) are written by
// scripts/generate.mjs, never here: a build must not rewrite a committed file, or their drift
// check could never fail.

// Build: type-check with tsc, then bundle src/cli/run.ts with esbuild into dist/cli/ as ESM with
// code splitting. One file per lazily imported part (each provider driver, each codec, each
// command) keeps the hot path lean, and loading a few bundled files instead of ~35 small modules
// saves ~25 ms per process start (measured), which PostgreSQL pays once per WAL file.
// npm packages stay external: the SDKs are still loaded only when their provider is used.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
// The WAL commands' CommonJS bundle keeps packages external, but for small pure-JavaScript ES
// modules it uses on the WAL path: as part of the bundle they need no ES module loader (which a
// package's import() would start, ~20 ms per encrypted WAL call; docs/benchmarks-history.md).
const INLINED_IN_WAL_BUNDLE = ['@scure/base'];
// commander (CommonJS) too, in place of src/cli/commander.ts, which requires it at run time: Node
// compiled its ~100 KB source on every WAL call, and its top-level require('node:child_process')
// (for executable subcommands, which we never use) loaded net and dgram; inlined, it comes from
// the code cache and child_process is required on first use (below). ~20 ms of CPU per call.
const commanderInlined = {
  name: 'commander-inlined',
  setup(b) {
    b.onResolve({ filter: /^\.\/commander\.js$/ }, (args) => (args.importer === resolve(root, 'src/cli/parse.ts') ? { path: createRequire(import.meta.url).resolve('commander') } : undefined));
  },
};
// A builtin that an inlined package requires at load time but uses only on paths we never take:
// required on first property access instead.
const LAZY_BUILTINS_OF_INLINED = { commander: ['node:child_process'] };
const lazyBuiltins = {
  name: 'lazy-builtins-of-inlined',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => {
      const pkg = Object.keys(LAZY_BUILTINS_OF_INLINED).find((p) => args.importer.includes(`/node_modules/${p}/`));
      return pkg && LAZY_BUILTINS_OF_INLINED[pkg].includes(args.path) ? { path: args.path, namespace: 'lazy-builtin' } : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      contents: `let m; module.exports = new Proxy({}, { get: (_, k) => (m ??= require(${JSON.stringify(args.path)}))[k] });`,
      loader: 'js',
    }));
  },
};
// Builtins that a WAL call needs only for some stores or outcomes (https and tls: an https endpoint,
// never a plain http one as beside a local RGW or MinIO; crypto: signing, hashing, temp names, none
// of which a missing WAL on the file store needs): in the CommonJS bundle their module-level require
// becomes one on first property access, the only way esbuild's output uses them (a default import
// stays eager: __toESM copies the module). https + tls cost ~4-5 ms of CPU per call to load, crypto
// ~4 ms (docs/benchmarks-history.md, "One-shot WAL profile").
const LAZY_IN_WAL_BUNDLE = ['node:https', 'node:tls', 'node:crypto'];
const packagesExternalExcept = (inlined) => ({
  name: 'packages-external-except',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (inlined.some((p) => args.path === p || args.path.startsWith(`${p}/`)) ? undefined : { path: args.path, external: true }));
  },
});
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
// The same program as one CommonJS file, for the WAL commands only (src/cli/launch.ts): loading it
// needs no ES module loader and no chunk graph, and V8 can compile it from the code cache made
// below. import.meta.url, which CommonJS lacks, becomes this file's URL. Packages stay external
// (INLINED_IN_WAL_BUNDLE aside) and their import() stays import(), so the ESM-only ones load as
// in the ESM bundle.
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/run.ts'],
  outfile: 'dist/cli/run.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  plugins: [commanderInlined, lazyBuiltins, packagesExternalExcept(INLINED_IN_WAL_BUNDLE)],
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;\nconst __lazyBuiltin = (id) => { let m; return new Proxy({}, { get: (_, k) => (m ??= require(id))[k] }); };' },
  sourcemap: 'linked',
  logLevel: 'warning',
});
// Its import() calls (packages and builtins loaded on demand) call the launcher's instead
// (IMPORT_PARAMETER in src/cli/launch.ts says why); any other import( would be left broken.
{
  const file = resolve(root, 'dist/cli/run.cjs');
  const text = readFileSync(file, 'utf8');
  let lazy = 0;
  const deferred = text.replace(/^(\s+\w+ = )require\(("node:[a-z/]+")\);$/gm, (line, assign, id) => (LAZY_IN_WAL_BUNDLE.includes(JSON.parse(id)) ? (lazy++, `${assign}__lazyBuiltin(${id});`) : line));
  if (lazy === 0) throw new Error('dist/cli/run.cjs: no module-level require of LAZY_IN_WAL_BUNDLE found; has esbuild\'s output changed?');
  const renamed = deferred.replace(/\bimport\((?=")/g, '__importExternal(');
  if (/\bimport\(/.test(renamed)) throw new Error('dist/cli/run.cjs: an import() without a string literal; src/cli/launch.ts cannot serve it');
  // Pure ASCII: one character outside Latin-1 (an arrow or an ellipsis in a kept comment) made V8
  // hold the whole source, which a WAL call keeps for its lifetime, as a two-byte string: ~0.8 MB
  // more of its peak RSS (issue 14). esbuild already escapes strings and identifiers; an escape
  // means the same in a string, template, regular expression or identifier, and nothing in a comment.
  const ascii = renamed.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  writeFileSync(file, ascii);
}
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
// run.cjs becomes the function expression the launcher compiles as it is (WAL_BUNDLE_HEAD in
// src/cli/launch.ts says why), its first line kept so that the source map still fits.
{
  const file = resolve(root, 'dist/cli/run.cjs');
  const { WAL_BUNDLE_HEAD, WAL_BUNDLE_TAIL } = createRequire(import.meta.url)(resolve(root, 'dist/cli/launch.cjs'));
  writeFileSync(file, `${WAL_BUNDLE_HEAD}${readFileSync(file, 'latin1')}${WAL_BUNDLE_TAIL}`, 'latin1');
}
// V8's code cache of run.cjs, made by the Node that builds (the launcher ignores it under another
// Node, other flags or other source). A fresh process without NODE_OPTIONS: the cache records the
// V8 flags it was made under, and they must be those of a WAL call.
{
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const launcher = resolve(root, 'dist/cli/launch.cjs');
  const cache = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(launcher)}).makeWalCodeCache().then((cache) => process.stdout.write(cache));`], { cwd: root, env, maxBuffer: 64 << 20 });
  const { WAL_CODE_CACHE } = await import(launcher);
  const out = resolve(root, 'dist/cli', WAL_CODE_CACHE);
  writeFileSync(`${out}.tmp`, cache, { mode: 0o644 });
  renameSync(`${out}.tmp`, out);
}
// The committed files generated from dist/ (bin/'s WAL fronts, completions/) are written by
// scripts/generate.mjs, never here: a build must not rewrite a committed file, or their drift
// check could never fail.

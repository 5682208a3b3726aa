// Preload for tests: records every module a process loads (ESM resolutions and CommonJS requires)
// into the file named by BC_TRACE_MODULES, so a test can prove what a command did not load.
import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';

const out = process.env.BC_TRACE_MODULES;
if (out) {
  register('./trace-hooks.mjs', import.meta.url, { data: { out } });
  const require = createRequire(import.meta.url);
  process.on('exit', () => appendFileSync(out, `${Object.keys(require.cache).join('\n')}\n`));
}

// The napi-rs packages of the WAL codecs (lz4-napi, snappy, @node-rs/xxhash, @node-rs/crc32) pick
// their binding by telling glibc from musl, from the text of /usr/bin/ldd or, where that file is
// missing, from process.report.getReport(). Distroless images (the barman-cloud plugin's sidecar,
// docs/deploy.md) have no ldd: the report cost ~6 ms of CPU per package, ~11 ms per lz4 WAL call,
// measured in the root that test/integration/rootfs.test.ts builds. Where no musl loader exists we
// take the glibc binding package of this platform directly (what the package's own loader would
// load there); on any doubt or failure, the package's own loader decides.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';

const require = createRequire(import.meta.url);
const debug = require('node:util').debuglog('barman_cloud_native') as (message: string) => void;

/** The dynamic loader of musl for this architecture, where Linux has one. */
const MUSL_LOADER: Partial<Record<string, string>> = { x64: '/lib/ld-musl-x86_64.so.1', arm64: '/lib/ld-musl-aarch64.so.1' };

/**
 * `pkg`'s native binding. `glibcBinding` names its package for Linux with glibc on an architecture
 * (`x64`, `arm64`); that package's main file is the binding itself, which `pkg` re-exports.
 */
export function napiBinding<T>(pkg: string, glibcBinding: (arch: string) => string): T {
  const musl = MUSL_LOADER[process.arch];
  if (process.platform === 'linux' && musl && !existsSync(musl)) {
    const name = glibcBinding(process.arch);
    try {
      const binding = require(name) as T;
      debug(`${pkg}: ${name}`);
      return binding;
    } catch {
      debug(`${pkg}: ${name} did not load; the package's own loader decides`);
    }
  }
  return require(pkg) as T;
}

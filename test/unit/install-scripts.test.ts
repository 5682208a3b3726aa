// `npm install -g` of our tarball must not need a C/C++ toolchain (issue #13). The full proof,
// scripts/install-check.mjs (pack, install with compilers hidden, run), needs the registry and a
// minute; this is its fast guard: no production dependency may compile when installed (an
// optional one may: npm carries on when its build fails). A package compiles when it has a
// binding.gyp and no install script of its own (npm then runs `node-gyp rebuild`), or an install
// script that is not node-gyp-build finding a prebuild shipped in the package for this platform.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

interface LockEntry { dev?: boolean; devOptional?: boolean; optional?: boolean; hasInstallScript?: boolean }

/** Install behaviour of each production package with native code, keyed by name. */
function installBehaviour(): Map<string, { behaviour: 'prebuilt' | 'compiles'; optional: boolean }> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const out = new Map<string, { behaviour: 'prebuilt' | 'compiles'; optional: boolean }>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || entry.dev || entry.devOptional) continue;
    const dir = join(ROOT, path);
    if (!existsSync(dir)) continue; // another platform's optional package
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; scripts?: Record<string, string> };
    const scripts = ['preinstall', 'install', 'postinstall'].map((s) => pkg.scripts?.[s]).filter((s): s is string => Boolean(s));
    const gyp = existsSync(join(dir, 'binding.gyp'));
    if (!gyp && scripts.length === 0) continue;
    const shipped = join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
    const prebuilt =
      scripts.length > 0 &&
      scripts.every((s) => s.trim() === 'node-gyp-build') &&
      existsSync(shipped) &&
      readdirSync(shipped).some((f) => f.endsWith('.node'));
    out.set(pkg.name, { behaviour: prebuilt ? 'prebuilt' : 'compiles', optional: entry.optional === true });
  }
  return out;
}

describe('production dependencies at install time', () => {
  const found = installBehaviour();

  it('finds the native packages that have install scripts, and tells a shipped prebuild from a compile', () => {
    // lzma-native and @cloudpss/zstd ship their binaries in the package and load them with
    // node-gyp-build.
    expect(found.get('lzma-native')?.behaviour).toBe('prebuilt');
    expect(found.get('@cloudpss/zstd')?.behaviour).toBe('prebuilt');
  });

  it('compile nothing, optional packages aside', () => {
    const compiling = [...found].filter(([, b]) => b.behaviour === 'compiles' && !b.optional).map(([n]) => n).sort();
    expect(compiling).toEqual([]);
  });
});

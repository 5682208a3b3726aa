// `npm install -g` of our tarball must not need a C/C++ toolchain (issue #13). The full proof,
// scripts/install-check.mjs (pack, install with compilers hidden, run), needs the registry and a
// minute; this is its fast guard: no production dependency may compile when installed. A package
// compiles when it has a binding.gyp and no install script of its own (npm then runs
// `node-gyp rebuild`), or an install script that is not node-gyp-build finding a prebuild shipped
// in the package for this platform.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.ts';

// Known to compile today: zstd-napi builds from source when its prebuilt download cannot be
// fetched. No zstd binding with prebuilds inside npm packages was found that also streams and sets
// the frame content checksum (docs/deploy.md, "npm install -g without a toolchain"). Remove it from here when it is replaced.
const KNOWN_TO_COMPILE = ['zstd-napi'];

interface LockEntry { dev?: boolean; devOptional?: boolean; optional?: boolean; hasInstallScript?: boolean }

function installBehaviour(): Map<string, 'prebuilt' | 'compiles'> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const out = new Map<string, 'prebuilt' | 'compiles'>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || entry.dev || entry.devOptional) continue;
    const dir = join(ROOT, path);
    if (!existsSync(dir)) continue; // another platform's optional package
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; scripts?: Record<string, string> };
    const scripts = ['preinstall', 'install', 'postinstall'].map((s) => pkg.scripts?.[s]).filter((s): s is string => Boolean(s));
    const gyp = existsSync(join(dir, 'binding.gyp'));
    if (!gyp && scripts.length === 0) continue;
    const prebuilt =
      scripts.length > 0 &&
      scripts.every((s) => s.trim() === 'node-gyp-build') &&
      existsSync(join(dir, 'prebuilds', `${process.platform}-${process.arch}`));
    out.set(pkg.name, prebuilt ? 'prebuilt' : 'compiles');
  }
  return out;
}

describe('production dependencies at install time', () => {
  const found = installBehaviour();

  it('finds the native packages that have install scripts, and tells a shipped prebuild from a compile', () => {
    // lzma-native ships its binaries in the package and loads them with node-gyp-build.
    expect(found.get('lzma-native')).toBe('prebuilt');
  });

  it('compile nothing beyond the known list, and the list is not stale', () => {
    const compiling = [...found].filter(([, b]) => b === 'compiles').map(([n]) => n).sort();
    expect(compiling.filter((n) => !KNOWN_TO_COMPILE.includes(n))).toEqual([]);
    // When a listed package is replaced or gains prebuilds, drop it from KNOWN_TO_COMPILE.
    expect(KNOWN_TO_COMPILE.filter((n) => !compiling.includes(n))).toEqual([]);
  });
});

// `npm run rootfs -- DIR`: lays out in DIR what a container image needs to run the drop-in
// commands with no /bin/sh and no /usr/bin/env (the barman-cloud plugin's distroless sidecar starts
// them with Go's exec and a PATH lookup):
//   DIR/usr/local/bin/barman-cloud*          one launcher per drop-in name (package.json "bin")
//   DIR/usr/local/lib/barman-cloud-ts/node   the Node runtime running this script
//   DIR/usr/local/lib/barman-cloud-ts/{package.json,dist,node_modules}   our bundle, production deps
// Each launcher names the runtime by its absolute path in its "#!" line, so the kernel starts Node
// directly: no shell, no interpreter lookup. The base libraries (glibc, libgcc_s, libstdc++, CA
// certificates) are the base image's, not ours: the distroless `cc` image has them.
// Build first (`npm ci` does, through "prepare").
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const out = process.argv[2];
if (!out || process.argv.length > 3) {
  process.stderr.write('usage: npm run rootfs -- DIR\n');
  process.exit(2);
}
if (!existsSync(join(root, 'dist/cli/launch.cjs'))) {
  process.stderr.write('rootfs: dist/ is missing: run `node scripts/build.mjs` (or `npm ci`) first\n');
  process.exit(1);
}

const PREFIX = '/usr/local/lib/barman-cloud-ts';
const dest = resolve(out);
const lib = join(dest, PREFIX);
mkdirSync(join(dest, 'usr/local/bin'), { recursive: true });
mkdirSync(lib, { recursive: true });

// The runtime: the very binary running this script, so the image gets the Node that built it.
copyFileSync(realpathSync(process.execPath), join(lib, 'node'));
chmodSync(join(lib, 'node'), 0o755);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
writeFileSync(join(lib, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: pkg.type, dependencies: pkg.dependencies }, null, 2) + '\n');
cpSync(join(root, 'dist/cli'), join(lib, 'dist/cli'), { recursive: true });

// Production packages, as the lockfile lists them (dev-only ones skipped; optional ones for other
// platforms are absent from node_modules and skipped too). Each package is copied without its own
// nested node_modules: those are lockfile entries of their own, and may be dev-only.
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
let copied = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  if (!path.startsWith('node_modules/') || entry.dev || entry.devOptional || entry.link) continue;
  const from = join(root, path);
  if (!existsSync(from)) {
    if (entry.optional) continue;
    process.stderr.write(`rootfs: ${path} is in the lockfile but not installed: run \`npm ci\` first\n`);
    process.exit(1);
  }
  cpSync(from, join(lib, path), {
    recursive: true,
    filter: (src) => {
      const parts = src.slice(from.length + 1).split('/');
      // Prebuilt addons for other platforms (node-gyp-build's prebuilds/<platform>-<arch>) are dead weight.
      const i = parts.indexOf('prebuilds');
      if (i >= 0 && parts.length > i + 1 && parts[i + 1] !== `${process.platform}-${process.arch}`) return false;
      return !parts.includes('node_modules');
    },
  });
  copied++;
}

// The launchers: the same CommonJS entry as bin/, with the runtime's absolute path in "#!".
const names = Object.keys(pkg.bin);
for (const name of names) {
  const text = readFileSync(join(root, pkg.bin[name]), 'utf8');
  const command = /\.launch\('([a-z-]+)'\)/.exec(text)?.[1];
  if (!command) throw new Error(`rootfs: cannot find the command launched by ${pkg.bin[name]}`);
  const file = join(dest, 'usr/local/bin', name);
  writeFileSync(file, `#!${PREFIX}/node\nrequire('${PREFIX}/dist/cli/launch.cjs').launch('${command}');\n`);
  chmodSync(file, 0o755);
}
process.stdout.write(`rootfs: ${names.length} executables in ${join(dest, 'usr/local/bin')}, Node ${process.version} and ${copied} packages in ${lib}\n`);

// The committed generated files: the shell fronts of the two WAL commands (bin/, from
// src/cli/fast-path.ts) and the completion scripts (completions/, from `barman-cloud completion`).
// Both are produced from the built dist/, so run `node scripts/build.mjs` first (`npm run generate`
// does both). `--check` writes nothing: it exits 1 with one line naming the first stale file, so
// pretest (and CI) catch a table change whose generated files were not regenerated and committed.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Shell → file under completions/ (the names each shell's loader looks for). */
export const COMPLETION_FILES = { bash: 'barman-cloud.bash', zsh: '_barman-cloud', fish: 'barman-cloud.fish' };

/** Every generated file: path relative to the root, its expected text, whether it must be executable. */
export async function generatedFiles(root) {
  const fronts = await import(pathToFileURL(resolve(root, 'dist/fast-path.mjs')).href);
  const files = [
    { path: 'bin/barman-cloud-wal-archive', text: fronts.walArchiveScript(), executable: true },
    { path: 'bin/barman-cloud-wal-restore', text: fronts.walRestoreScript(), executable: true },
  ];
  for (const [shell, file] of Object.entries(COMPLETION_FILES)) {
    const text = execFileSync(process.execPath, [resolve(root, 'bin/barman-cloud'), 'completion', shell], { encoding: 'utf8' });
    files.push({ path: `completions/${file}`, text, executable: false });
  }
  return files;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = resolve(import.meta.dirname, '..');
  const check = process.argv.includes('--check');
  if (!existsSync(resolve(root, 'dist/fast-path.mjs'))) {
    process.stderr.write('generate: dist/ is missing: run `node scripts/build.mjs` first\n');
    process.exit(1);
  }
  for (const { path, text, executable } of await generatedFiles(root)) {
    const file = resolve(root, path);
    const old = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    if (check) {
      const modeOk = !executable || (old !== undefined && (statSync(file).mode & 0o111) !== 0);
      if (old !== text || !modeOk) {
        process.stderr.write(`generate: ${path} is stale (not what the generator writes): run \`npm run generate\` and commit it\n`);
        process.exit(1);
      }
      continue;
    }
    if (old !== text) {
      writeFileSync(file, text);
      console.log(path);
    }
    if (executable) chmodSync(file, 0o755);
  }
}

// Writes the committed completion scripts (completions/) from `barman-cloud completion <shell>`,
// i.e. from the built dist/: `npm run completions` builds first. test/cli/completion.test.ts fails
// when a committed file differs from what the command prints.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Shell → file under completions/ (the names each shell's loader looks for). */
export const COMPLETION_FILES = { bash: 'barman-cloud.bash', zsh: '_barman-cloud', fish: 'barman-cloud.fish' };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = resolve(import.meta.dirname, '..');
  mkdirSync(resolve(root, 'completions'), { recursive: true });
  for (const [shell, file] of Object.entries(COMPLETION_FILES)) {
    const script = execFileSync(process.execPath, [resolve(root, 'bin/barman-cloud'), 'completion', shell], { encoding: 'utf8' });
    writeFileSync(resolve(root, 'completions', file), script);
    console.log(`completions/${file}`);
  }
}

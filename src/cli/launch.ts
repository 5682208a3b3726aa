// The executables' first step, built as CommonJS (dist/cli/launch.cjs): `--version` is answered
// here without starting Node's ES module loader (~10 ms per process, measured), because the
// operator probes `--version` before every call (cnpg-usage §2.6). Everything else goes on to the
// ESM bundle (run.js).
import { earlyAction } from './early.js';
import { BARMAN_CONTRACT_VERSION, commandByName, type CommandName } from './spec.js';

export function launch(name: CommandName | 'umbrella'): void {
  const argv = process.argv.slice(2);
  if (name !== 'umbrella' && earlyAction(commandByName(name)!, argv) === 'version') {
    process.stdout.write(`${commandByName(name)!.prog} ${BARMAN_CONTRACT_VERSION}\n`);
    process.exitCode = 0;
    return;
  }
  // The ESM bundle sits beside this file once built.
  const run = import(`${__dirname}/run.js`) as Promise<typeof import('./run.js')>;
  void run.then((m) => (name === 'umbrella' ? m.runUmbrella() : m.runCommand(name)));
}

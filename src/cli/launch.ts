// The executables' first step, built as CommonJS (dist/cli/launch.cjs): `--version` is answered
// here without starting Node's ES module loader (~10 ms per process, measured), because the
// operator probes `--version` before every call (cnpg-usage §2.6). Everything else goes on to the
// ESM bundle (run.js).
import { earlyAction } from './early.js';
import { BARMAN_CONTRACT_VERSION, commandByName, type CommandName } from './spec.js';

/**
 * A one-shot WAL call lives well under a second and runs its bulk work in native code (hashing,
 * codecs, sockets), yet V8's optimizing compiler still started on Node's module loading code, and
 * on the WebAssembly xxHash of lz4 and zstd: its code pages cost ~4 MB (JavaScript) and ~2.7 MB
 * (WebAssembly, Liftoff's code is kept instead) of a call's 64 MB peak RSS budget (issue 14;
 * measured on Node 20). Set before the bundle loads; the --async worker, which runs for long,
 * keeps every tier.
 */
function limitTiersOfWalCall(name: CommandName | 'umbrella'): void {
  if ((name !== 'wal-archive' && name !== 'wal-restore') || process.env.BARMAN_CLOUD_ASYNC_WORKER) return;
  // Flags of V8 versions we know (an unknown flag would be an error line on stderr).
  if (['11', '12'].includes(process.versions.v8.split('.')[0]!)) require('node:v8').setFlagsFromString('--max-opt=1 --liftoff-only');
}

export function launch(name: CommandName | 'umbrella'): void {
  limitTiersOfWalCall(name);
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

// Process wrapper for the executables: run a command, let stdout/stderr drain, exit with its code.
// `--version` is answered here without loading the parser or any command code.
import { earlyAction } from './early.js';
import { BARMAN_CONTRACT_VERSION, commandByName, type CommandName } from './spec.js';

const GENERAL_ERROR = 4;

function drain(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));
}

async function finish(code: number): Promise<never> {
  await Promise.all([drain(process.stdout), drain(process.stderr)]);
  // Exit explicitly: keep-alive sockets of an SDK must not hold the process open.
  process.exit(code);
}

/**
 * What escaped main()'s own mapping (a bug, a module that failed to load): its stack, secrets
 * masked, as Node would print it, and exit 4. Not a log record: the logger itself may have failed.
 */
async function crash(e: unknown): Promise<never> {
  const { redact } = await import('../log.js');
  process.stderr.write(`${redact((e as Error)?.stack ?? String(e))}\n`);
  return finish(GENERAL_ERROR);
}

/**
 * A reader that stops early (`backup-list | head`) closes our stdout: stop quietly, as a program
 * killed by SIGPIPE does, instead of crashing with a stack trace. Nothing is lost: only output.
 */
function quietOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

export async function runCommand(name: CommandName): Promise<never> {
  quietOnClosedStdout();
  try {
    const argv = process.argv.slice(2);
    const spec = commandByName(name)!;
    if (earlyAction(spec, argv) === 'version') {
      process.stdout.write(`${spec.prog} ${BARMAN_CONTRACT_VERSION}\n`);
      return finish(0);
    }
    const { main } = await import('./main.js');
    return finish(await main(name, argv));
  } catch (e) {
    return crash(e);
  }
}

export async function runUmbrella(): Promise<never> {
  quietOnClosedStdout();
  try {
    const { umbrella } = await import('./umbrella.js');
    return finish(await umbrella(process.argv.slice(2)));
  } catch (e) {
    return crash(e);
  }
}

/**
 * For the build's code cache only (src/cli/launch.ts): the encryption code runs once, in memory, so
 * that its functions are compiled into the cache; plain calls never run it.
 */
export async function exerciseForCodeCache(): Promise<void> {
  await (await import('./encryption.js')).exerciseForCodeCache();
  await (await import('../encryption/age.js')).exerciseForCodeCache();
}

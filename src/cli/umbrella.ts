// `barman-cloud <command> …`: one executable for every command, including the umbrella-only ones.
import { readFileSync } from 'node:fs';
import { EXIT } from '../errors.js';
import { main, type Io } from './main.js';
import { BARMAN_CONTRACT_VERSION, COMMANDS, commandByName } from './spec.js';

const PROG = 'barman-cloud';

function ownVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function usageLine(): string {
  return `usage: ${PROG} [-V] [--help] {${COMMANDS.map((c) => c.name).join(',')}} ...`;
}

function help(): string {
  const umbrellaOnly = COMMANDS.filter((c) => c.umbrellaOnly).map((c) => c.name);
  const but = umbrellaOnly.length ? ` except ${umbrellaOnly.join(', ').replace(/, ([^,]*)$/, ' and $1')}` : '';
  const lines = [
    usageLine(),
    '',
    'PostgreSQL WAL archiving and base backups to object storage (S3, Azure Blob, Google Cloud Storage,',
    'or a local directory), compatible with barman-cloud.',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(20)}${c.description}`),
    '',
    `Every command${but} is also installed under its barman-cloud-<command> name.`,
    `Run '${PROG} <command> --help' for the options of a command.`,
  ];
  return `${lines.join('\n')}\n`;
}

// As main.ts's: output on stdout, argparse-style usage errors on stderr; log lines go through src/log.ts.
const defaultIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

export async function umbrella(argv: string[], env = process.env, io: Io = defaultIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help') {
    (first === undefined ? io.stderr : io.stdout)(help());
    return first === undefined ? EXIT.CLI : EXIT.OK;
  }
  if (first === '-V' || first === '--version') {
    io.stdout(`${PROG} ${ownVersion()} (barman-cloud ${BARMAN_CONTRACT_VERSION} compatible)\n`);
    return EXIT.OK;
  }
  const spec = commandByName(first);
  if (!spec) {
    io.stderr(
      `${usageLine()}\n${PROG}: error: argument command: invalid choice: '${first}' ` +
        `(choose from ${COMMANDS.map((c) => `'${c.name}'`).join(', ')})\n`,
    );
    return EXIT.CLI;
  }
  return main(spec.name, rest, env, io);
}

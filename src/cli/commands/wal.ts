// barman-cloud-wal-archive and barman-cloud-wal-restore (spec §2.1, §2.2, §6, §7).
import { basename } from 'node:path';
import { CliError, NotImplementedError, OperationError } from '../../errors.js';
import { isWalName } from '../../wal/names.js';
import type { CommandModule } from '../context.js';

export const walArchive: CommandModule = {
  errorPrefix: 'Barman cloud WAL archiver exception',
  validate(ctx) {
    const walPath = ctx.args.positionals.wal_path;
    // barman makes wal_path optional for its hook mode and then fails with exit 1 (spec §1.3).
    if (walPath === undefined) throw new OperationError('the following arguments are required: wal_path');
    if (!isWalName(basename(walPath))) throw new CliError(`${walPath} is an invalid name for a WAL file`);
  },
  async run(ctx) {
    throw new NotImplementedError(`${ctx.spec.prog} is not implemented yet`);
  },
};

export const walRestore: CommandModule = {
  errorPrefix: 'Barman cloud WAL restore exception',
  validate(ctx) {
    const walName = ctx.args.positionals.wal_name as string;
    if (!isWalName(walName)) throw new CliError(`${walName} is an invalid name for a WAL file`);
  },
  async run(ctx) {
    throw new NotImplementedError(`${ctx.spec.prog} is not implemented yet`);
  },
};

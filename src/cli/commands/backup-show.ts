// barman-cloud-backup-show (docs/format.md#backup-show, #show): one backup, found by ID, shortcut or name.
import { EXIT, OperationError } from '../../errors.js';
import { BackupCatalog } from '../../catalog/catalog.js';
import { formatBackupShowConsole, formatBackupShowJson } from '../../catalog/format.js';
import { ServerLayout } from '../../catalog/layout.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

const backupShow: CommandModule<'backup-show'> = {
  errorPrefix: 'Barman cloud backup show exception',
  async run(ctx) {
    const { server_name: serverName, backup_id: requested } = ctx.args.positionals;
    const { store, resolved } = await openContextStore(ctx);
    try {
      const catalog = new BackupCatalog(store, new ServerLayout(resolved.url.path, serverName));
      // An unknown name is an exception (exit 4); a well-formed ID without backup.info is exit 1.
      const backupId = await catalog.resolve(requested);
      const info = await catalog.getBackupInfo(backupId);
      if (!info) throw new OperationError(`Backup ${backupId} for server ${serverName} does not exist`);
      if (ctx.args.options.format === 'console') ctx.stdout(formatBackupShowConsole(info));
      else ctx.stdout(`${formatBackupShowJson(info)}\n`);
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

export default backupShow;

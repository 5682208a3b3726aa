// barman-cloud-backup-list (docs/format.md#backup-list, #list-console, #list-json): the console table of DONE backups, or the
// JSON document of every readable backup (the operator parses the JSON, cnpg-usage §3.1).
import { EXIT } from '../../errors.js';
import { BackupCatalog } from '../../catalog/catalog.js';
import { backupListHeader, backupListRow, formatBackupListJson, listedInConsole } from '../../catalog/format.js';
import { ServerLayout } from '../../catalog/layout.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

const backupList: CommandModule = {
  errorPrefix: 'Barman cloud backup list exception',
  async run(ctx) {
    const { store, resolved } = await openContextStore(ctx);
    try {
      const catalog = new BackupCatalog(store, new ServerLayout(resolved.url.path, ctx.args.positionals.server_name!));
      const backups = await catalog.getBackupList();
      // barman prints "console" as a table and any other --format value as JSON.
      if (ctx.args.options.format === 'console') {
        // Line by line like barman's print(): a row that fails leaves the lines before it printed.
        ctx.stdout(backupListHeader());
        for (const info of backups.values()) {
          if (!listedInConsole(info)) continue;
          ctx.stdout(backupListRow(info, await catalog.getKeepTarget(info.backup_id)));
        }
      } else {
        ctx.stdout(`${formatBackupListJson(backups.values())}\n`);
      }
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

export default backupList;

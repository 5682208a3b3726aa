// barman-cloud-backup-list (docs/format.md#backup-list, #list-console, #list-json): the console table of DONE backups, or the
// JSON document of every readable backup (the operator parses the JSON, docs/compatibility.md#cloudnativepg-plugin-or-in-tree).
import { EXIT } from '../../errors.js';
import { BackupCatalog } from '../../catalog/catalog.js';
import {
  backupListHeader, backupListJsonEntry, backupListRow, listRowFields, listedInConsole, writeBackupListJson,
} from '../../catalog/format.js';
import { ServerLayout } from '../../catalog/layout.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

const backupList: CommandModule<'backup-list'> = {
  errorPrefix: 'Barman cloud backup list exception',
  async run(ctx) {
    const { store, resolved } = await openContextStore(ctx);
    try {
      const catalog = new BackupCatalog(store, new ServerLayout(resolved.url.path, ctx.args.positionals.server_name));
      // Each backup.info is formatted as soon as it is read and the parsed object dropped: 5,000
      // backups stay a few MB of text. Nothing is written before every backup.info has been read,
      // since barman prints nothing when one of them aborts the listing.
      // barman prints "console" as a table and any other --format value as JSON.
      if (ctx.args.options.format === 'console') {
        const rows = await catalog.mapBackupList((info) => (listedInConsole(info) ? listRowFields(info) : null));
        // Line by line like barman's print(): a row that fails leaves the lines before it printed.
        ctx.stdout(backupListHeader());
        for (const fields of rows.values()) {
          if (fields) ctx.stdout(backupListRow(fields, await catalog.getKeepTarget(fields.backup_id)));
        }
      } else {
        const entries = await catalog.mapBackupList(backupListJsonEntry);
        writeBackupListJson(entries.values(), ctx.stdout);
        ctx.stdout('\n');
      }
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

export default backupList;

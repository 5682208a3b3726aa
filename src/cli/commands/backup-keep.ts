// barman-cloud-backup-keep (docs/format.md#backup-keep): add, show or release the keep annotation of a backup, which
// retention policies honour (KEEP:FULL / KEEP:STANDALONE) and backup-delete -b refuses to override.
import { EXIT, GeneralError, OperationError } from '../../errors.js';
import { BackupCatalog, KEEP_ANNOTATION } from '../../catalog/catalog.js';
import { STATUS } from '../../catalog/backup-info.js';
import { ServerLayout } from '../../catalog/layout.js';
import { escapeControl } from '../../log.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

const backupKeep: CommandModule<'backup-keep'> = {
  errorPrefix: 'Barman cloud keep exception',
  async run(ctx) {
    const o = ctx.args.options;
    const { server_name: serverName, backup_id: requested } = ctx.args.positionals;
    const { store, resolved } = await openContextStore(ctx);
    try {
      const catalog = new BackupCatalog(store, new ServerLayout(resolved.url.path, serverName));
      // An unknown name is an exception (exit 4); an ID-shaped string is taken as is.
      const backupId = await catalog.resolve(requested);
      if (o.release) {
        // Deleting a missing annotation is not an error.
        await catalog.deleteAnnotation(backupId, KEEP_ANNOTATION);
      } else if (o.status) {
        // The annotation's first line, its newline included (barman prints it: an empty line
        // follows); the rest escaped, for whoever writes the store chose it (docs/format.md#untrusted-text).
        const target = await catalog.getKeepTarget(backupId);
        const shown = target ? `${escapeControl(target.replace(/\n$/, ''))}${target.endsWith('\n') ? '\n' : ''}` : 'nokeep';
        ctx.stdout(`Keep: ${shown}\n`);
      } else {
        // One of -r, -s, --target is required (requiredGroups): here it is --target.
        const target = o.target!;
        const info = await catalog.getBackupInfo(backupId);
        // barman fails with an AttributeError here (exit 4): keep the exit code, say why.
        if (!info) throw new GeneralError(`Backup ${backupId} for server ${serverName} does not exist`);
        const notDone = (status: string | null) =>
          new OperationError(`Cannot add keep to backup ${backupId} because it has status ${status}. Only backups with status DONE can be kept.`);
        if (info.status !== STATUS.DONE) throw notDone(info.status);
        await catalog.putAnnotation(backupId, KEEP_ANNOTATION, target);
        // keep's half of the handshake with backup-delete (docs/format.md#keep-handshake): written
        // first, then backup.info read again. A deletion that marked the backup before our keep was
        // there may not have seen it: the keep is withdrawn and the call fails, never exit 0 for a
        // backup on its way out.
        const now = await catalog.readBackupInfo(backupId);
        if (now?.status !== STATUS.DONE) {
          await catalog.deleteAnnotation(backupId, KEEP_ANNOTATION);
          throw notDone(now ? now.status : 'deleted');
        }
      }
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

export default backupKeep;

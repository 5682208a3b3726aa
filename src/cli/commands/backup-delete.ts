// barman-cloud-backup-delete (docs/format.md#backup-delete, #retention): one backup (-b) or every backup a retention policy
// reports OBSOLETE (-r), with the WAL files no remaining backup needs. Beyond barman: one summary
// line (or JSON object, --format json) on stdout after a real run. WAL deletions the store refuses
// are logged and counted but exit 0, as barman.
import { AccessDeniedError, BarmanCloudError, EXIT, GeneralError, OperationError } from '../../errors.js';
import { escapeControl, log } from '../../log.js';
import { BackupCatalog } from '../../catalog/catalog.js';
import { isInterruptedDeletion, pyDatetimeStr, timestampFromDate } from '../../catalog/backup-info.js';
import { ServerLayout } from '../../catalog/layout.js';
import type { ObjectLockState, ObjectStore } from '../../storage/types.js';
import { BackupDeleter, formatSummary, keptBackupRefusal, pyListRepr } from '../../retention/delete.js';
import { evaluateRetention, parseRetentionPolicy, retentionDeletions } from '../../retention/policy.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

/**
 * --check-object-lock (barman 3.17) on a store with Object Lock: read each base-backup object's lock
 * and refuse the backup's deletion if any has a retention date in the future or a legal hold ON.
 * Checked for every object before the first delete, so a locked backup keeps all of its files.
 */
function lockChecker(objectLock: (key: string) => Promise<ObjectLockState>): (keys: string[]) => Promise<void> {
  return async (keys) => {
    for (const key of keys) {
      let lock;
      try {
        lock = await objectLock(key);
      } catch (e) {
        const denied = e instanceof AccessDeniedError;
        throw new GeneralError(`${denied ? 'Access denied when checking' : 'Error checking'} Object Lock for ${key}: ${(e as Error).message}`, { cause: e });
      }
      let reason: string | undefined;
      if (lock.retainUntil && lock.retainUntil.getTime() > Date.now()) {
        reason = `Object is locked and can't be deleted until ${pyDatetimeStr(timestampFromDate(lock.retainUntil, 0))}`;
      } else if (lock.legalHold) {
        reason = "Object has a legal hold and can't be deleted until the legal hold is removed";
      }
      if (reason) {
        log.error(`Cannot delete locked object ${key}: ${reason}`);
        throw new GeneralError(`Deletion aborted: object ${key} is locked: ${reason}`);
      }
    }
  };
}

/** Keep annotations of the given backups, through the catalog's one-listing annotation cache. */
async function keepTargetsOf(catalog: BackupCatalog, ids: Iterable<string>): Promise<Map<string, string | null>> {
  const keeps = new Map<string, string | null>();
  for (const id of ids) keeps.set(id, await catalog.getKeepTarget(id));
  return keeps;
}

/** --batch-size clamped to [1, provider maximum] (docs/format.md#backup-delete); the maximum when not given. */
function batchSize(store: ObjectStore, requested: number | undefined): number {
  if (requested === undefined) return store.maxDeleteBatch;
  return Math.max(1, Math.min(requested, store.maxDeleteBatch));
}

const backupDelete: CommandModule<'backup-delete'> = {
  errorPrefix: 'Barman cloud backup delete exception',
  async run(ctx) {
    const o = ctx.args.options;
    const serverName = ctx.args.positionals.server_name;
    const dryRun = o['dry-run'];
    const minimumRedundancy = o['minimum-redundancy'];
    const { store, resolved } = await openContextStore(ctx);
    try {
      if (o['check-object-lock'] && !store.objectLock) {
        log.warning(
          'The --check-object-lock option is currently only supported for aws-s3. ' +
            `Object lock checks will not be performed for cloud provider: ${store.provider}`,
        );
      }
      const layout = new ServerLayout(resolved.url.path, serverName);
      const catalog = new BackupCatalog(store, layout);
      // Read the whole catalog first: deleting with part of it unreadable could remove WAL files
      // that an unseen backup needs.
      const backups = await catalog.getBackupList();
      const { unreadable } = await catalog.load();
      if (unreadable.length > 0) {
        throw new OperationError(`Cannot read the following backups: ${pyListRepr(unreadable.map((u) => u.backupId))}`, {
          continuation: ['Unsafe to proceed with deletion due to failure reading backup catalog'],
        });
      }

      // Keep targets of every backup (one listing of base/, then a GET per annotation): for the
      // retention report and for the WAL cleanup's walk over older backups.
      const keepTargets = await keepTargetsOf(catalog, backups.keys());
      let toDelete: string[];
      let fromRetentionPolicy: boolean;
      const requested = o['backup-id'];
      if (requested !== undefined) {
        const backupId = await catalog.resolve(requested);
        // Checked without the annotation cache: only one backup matters here.
        if ((await catalog.getKeepTarget(backupId, false)) !== null) throw keptBackupRefusal(backupId, serverName);
        if (minimumRedundancy > 0 && minimumRedundancy >= backups.size) {
          throw new OperationError(
            `Skipping delete of backup ${backupId} for server ${serverName} due to minimum redundancy requirements ` +
              `(minimum redundancy = ${minimumRedundancy}, current redundancy = ${backups.size})`,
          );
        }
        toDelete = [backupId];
        fromRetentionPolicy = false;
      } else {
        // -b or -r is required (requiredGroups): without -b, -r was given.
        const policy = parseRetentionPolicy(o['retention-policy']!);
        const report = evaluateRetention(policy, {
          backups, keepTarget: (id) => keepTargets.get(id) ?? null, minimumRedundancy, now: new Date(), serverName,
        });
        for (const m of report.messages) log[m.level](m.text);
        // Beyond barman: deletions begun and interrupted (FAILED with our error) are finished too;
        // nothing else ever deletes them (docs/format.md#delete-backup).
        for (const b of backups.values()) {
          if (isInterruptedDeletion(b)) log.info(`Finishing the interrupted deletion of backup ${b.backup_id} for server ${serverName}`);
        }
        toDelete = retentionDeletions(report, backups.values());
        fromRetentionPolicy = true;
      }


      const objectLock = store.objectLock?.bind(store);
      const checkLocks = o['check-object-lock'] && objectLock && !dryRun ? lockChecker(objectLock) : undefined;
      const deleter = new BackupDeleter(store, catalog, layout, keepTargets, {
        dryRun,
        batchSize: batchSize(store, o['batch-size']),
        // the dry run's lines name listed keys: one line each, inert (docs/format.md#untrusted-text)
        print: (line) => ctx.stdout(`${escapeControl(line)}\n`),
        ...(checkLocks ? { checkLocks } : {}),
      });
      const summary = await deleter.deleteAll(toDelete, fromRetentionPolicy);
      if (!dryRun) ctx.stdout(`${formatSummary(summary, o.format)}\n`);
      // A failure that stopped the run: its class's exit code (1 for barman's "cannot delete"), else 4.
      if (summary.failure === undefined) return EXIT.OK;
      return summary.failure instanceof BarmanCloudError ? summary.failure.exitCode : EXIT.GENERAL;
    } finally {
      await store.close();
    }
  },
};

export default backupDelete;

// barman-cloud-restore (docs/format.md#restore), plus parallel extraction (-J) and --write-recovery-conf.
import { CliError, EXIT, GeneralError } from '../../errors.js';
import { ServerLayout } from '../../catalog/layout.js';
import { restoreBackup, type RestoreTargets } from '../../backup/restore.js';
import type { CommandContext, CommandModule } from '../context.js';
import type { CommandOptions } from '../spec.js';
import { openContextStore, storeUrl } from '../open-store.js';
import { startProgress, transferText } from '../progress.js';
import { collectWhileReadingTars } from '../young-generation.js';

function parseTablespaceRules(rules: readonly string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const rule of rules ?? []) {
    const colon = rule.indexOf(':');
    if (colon <= 0 || colon === rule.length - 1) throw new CliError(`Invalid tablespace relocation rule '${rule}'`);
    out.set(rule.slice(0, colon), rule.slice(colon + 1));
  }
  return out;
}

function targets(ctx: CommandContext<'restore'>): RestoreTargets {
  const o = ctx.args.options;
  const time = o['target-time'];
  let timeMs: number | undefined;
  if (time !== undefined) {
    // dateutil-like: a space or T, and offsets written +HH, +HHMM or +HH:MM (PostgreSQL prints +00).
    let iso = time.trim().replace(' ', 'T');
    if (/T\d{2}:\d{2}/.test(iso)) iso = iso.replace(/([+-]\d{2})(\d{2})?$/, (_m, h: string, mm?: string) => `${h}:${mm ?? '00'}`);
    timeMs = Date.parse(iso);
    if (Number.isNaN(timeMs)) throw new GeneralError(`Invalid target time: ${time}`);
  }
  const lsn = o['target-lsn'];
  if (lsn !== undefined && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(lsn)) throw new GeneralError(`Invalid target LSN: ${lsn}`);
  return { tli: o['target-tli'], lsn, timeMs };
}

type RestoreOptions = CommandOptions<'restore'>;
/** The names of restore's switches (boolean options): a value option in FLAGS, or a switch in CARRIED, fails tsc. */
type Switch = { [K in keyof RestoreOptions]: RestoreOptions[K] extends boolean ? K : never }[keyof RestoreOptions];

/** Store options that a restore_command must repeat to reach the same archive. */
const CARRIED: readonly Exclude<keyof RestoreOptions, Switch>[] = ['cloud-provider', 'endpoint-url', 'aws-profile', 'read-timeout', 'azure-credential', 'endpoint-ca', 's3-region',
  's3-access-key-id-file', 's3-secret-access-key-file', 's3-session-token-file', 'azure-storage-account', 'azure-storage-key-file',
  'azure-storage-sas-token-file', 'azure-connection-string-file', 'google-application-credentials',
  // the customer-provided key's file (its path, never the key): without it every WAL read fails
  'sse-customer-key-file', 'azure-customer-key-file', 'google-customer-key-file'];
const FLAGS: readonly Switch[] = ['s3-inherit-from-iam-role', 'azure-inherit-from-azure-ad', 'azure-use-default-azure-credentials', 'google-gke-environment', 'allow-unencrypted'];

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A string value of postgresql.auto.conf. PostgreSQL's configuration parser reads backslash escapes
 * inside quotes (`\t`, `\047`, `\'`…) besides doubled quotes, and a string cannot span lines: so
 * backslashes are doubled and line breaks written as escapes, or the shell quoting of
 * restore_command (`'\''`) ended the string early and PostgreSQL refused to start.
 */
const confString = (s: string) =>
  `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, '\\n').replace(/\r/g, '\\r')}'`;

function restoreCommand(ctx: CommandContext<'restore'>): string {
  const o = ctx.args.options;
  const args: string[] = [];
  for (const k of CARRIED) {
    const v = o[k];
    if (v !== undefined && !(k === 'cloud-provider' && v === 'aws-s3')) args.push(`--${k}`, String(v));
  }
  for (const k of FLAGS) if (o[k] === true) args.push(`--${k}`);
  // the identity file's path (never its content), also when it came from the environment
  const identities = o['encryption-identity-file'] ?? ctx.env.BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE;
  if (identities) args.push('--encryption-identity-file', String(identities));
  const bin = process.argv[1]?.replace(/barman-cloud(-restore)?$/, 'barman-cloud-wal-restore') ?? 'barman-cloud-wal-restore';
  const prefix = process.argv[1]?.endsWith('barman-cloud') ? [process.execPath, process.argv[1], 'wal-restore'] : [process.execPath, bin];
  // PostgreSQL expands %f, %p, %r and %% in restore_command before the shell sees it: a % of ours is written %%.
  return [...prefix, ...args, storeUrl(ctx), ctx.args.positionals.server_name].map((a) => quote(a).replace(/%/g, '%%')).join(' ') + ' %f %p';
}

const restore: CommandModule<'restore'> = {
  errorPrefix: 'Barman cloud restore exception',
  async run(ctx) {
    collectWhileReadingTars();
    const o = ctx.args.options;
    const identities = await (await import('../encryption.js')).loadIdentities(ctx);
    const { store, resolved } = await openContextStore(ctx);
    const progress = await startProgress(o.quiet, 'starting restore');
    const startedAt = Date.now();
    try {
      const t = targets(ctx);
      await restoreBackup(store, new ServerLayout(resolved.url.path, ctx.args.positionals.server_name), ctx.args.positionals.backup_id,
        ctx.args.positionals.recovery_dir, {
          tablespaces: parseTablespaceRules(o.tablespace),
          jobs: o.jobs,
          targets: t,
          identities,
          onProgress: progress && ((bytes, totalBytes) => progress.update(`restoring: ${transferText(bytes, startedAt, totalBytes)} read`)),
          recoveryConf: o['write-recovery-conf']
            ? () => {
                const lines = [`restore_command = ${confString(restoreCommand(ctx))}`];
                // as parsed by targets(): surrounding blanks (a trailing newline) are not part of it
                if (o['target-time'] !== undefined) lines.push(`recovery_target_time = ${confString(o['target-time'].trim())}`);
                if (t.lsn !== undefined) lines.push(`recovery_target_lsn = '${t.lsn}'`);
                if (t.tli !== undefined && t.tli !== 'current') lines.push(`recovery_target_timeline = '${t.tli}'`);
                if (o['target-time'] !== undefined || t.lsn !== undefined) lines.push("recovery_target_action = 'promote'");
                return lines;
              }
            : undefined,
        });
      return EXIT.OK;
    } finally {
      progress?.stop();
      await store.close();
    }
  },
};

export default restore;

// `barman-cloud verify` (umbrella only): read and check backups and their WAL without restoring.
// Exit 0 nothing found, 1 a problem found; store failures propagate (4, or 0/1/2 under -t).
import { EXIT, GeneralError } from '../../errors.js';
import { ServerLayout } from '../../catalog/layout.js';
import { formatConsole, formatJson } from '../../verify/report.js';
import { verify } from '../../verify/verify.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

const MB = 1e6;

const verifyCommand: CommandModule<'verify'> = {
  errorPrefix: 'Verification failed',
  async run(ctx) {
    const opts = ctx.args.options;
    const { store, resolved } = await openContextStore(ctx);
    const controller = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => controller.abort(new GeneralError(`interrupted by ${sig}`));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // Progress on a terminal only: scripts reading stdout or stderr see nothing of it.
    let spinner: { text: string; stop(): void } | undefined;
    if (process.stderr.isTTY && opts.quiet === 0) {
      const { default: ora } = await import('ora');
      spinner = ora({ stream: process.stderr, text: 'listing backups' }).start();
    }
    const started = Date.now();
    try {
      const report = await verify(store, new ServerLayout(resolved.url.path, ctx.args.positionals.server_name), {
        backup: ctx.args.positionals.backup_id ?? 'all',
        jobs: opts.jobs,
        signal: controller.signal,
        identities: await (await import('../encryption.js')).loadIdentities(ctx),
        onProgress: spinner
          ? ({ backupId, part, bytes, totalBytes }) => {
              const secs = Math.max(0.001, (Date.now() - started) / 1000);
              spinner!.text = `${backupId} ${part}: ${(bytes / MB).toFixed(0)}/${(totalBytes / MB).toFixed(0)} MB, ${(bytes / MB / secs).toFixed(0)} MB/s`;
            }
          : undefined,
      });
      spinner?.stop();
      spinner = undefined;
      ctx.stdout(opts.format === 'json' ? formatJson(report) : formatConsole(report));
      return report.ok ? EXIT.OK : EXIT.OPERATION;
    } finally {
      spinner?.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await store.close();
    }
  },
};

export default verifyCommand;

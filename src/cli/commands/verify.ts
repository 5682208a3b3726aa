// `barman-cloud verify` (umbrella only): read and check backups and their WAL without restoring.
// Exit 0 nothing found, 1 a problem found; store failures propagate (4, or 0/1/2 under -t).
import { EXIT } from '../../errors.js';
import { ServerLayout } from '../../catalog/layout.js';
import { formatConsole, formatJson } from '../../verify/report.js';
import { verify } from '../../verify/verify.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';
import { interruptOnSignals, startProgress, transferText } from '../progress.js';
import { collectWhileReadingTars } from '../young-generation.js';

const verifyCommand: CommandModule<'verify'> = {
  errorPrefix: 'Verification failed',
  async run(ctx) {
    const opts = ctx.args.options;
    collectWhileReadingTars(); // it reads as restore does, with nothing written
    const { store, resolved } = await openContextStore(ctx);
    const interrupt = interruptOnSignals();
    const progress = await startProgress(opts.quiet, 'listing backups');
    const started = Date.now();
    try {
      const report = await verify(store, new ServerLayout(resolved.url.path, ctx.args.positionals.server_name), {
        backup: ctx.args.positionals.backup_id ?? 'all',
        jobs: opts.jobs,
        signal: interrupt.signal,
        identities: await (await import('../encryption.js')).loadIdentities(ctx),
        onProgress: progress && (({ backupId, part, bytes, totalBytes }) => progress.update(`${backupId} ${part}: ${transferText(bytes, started, totalBytes)}`)),
      });
      progress?.stop();
      ctx.stdout(opts.format === 'json' ? formatJson(report) : formatConsole(report));
      return report.ok ? EXIT.OK : EXIT.OPERATION;
    } finally {
      progress?.stop();
      interrupt.release();
      await store.close();
    }
  },
};

export default verifyCommand;

// barman-cloud-check-wal-archive (docs/format.md#check-wal-archive): always tests connectivity first (exit 2 when the
// store is unreachable); with -t that is all it does. Otherwise it creates a missing bucket and
// checks the archive.
import { EXIT, NetworkError } from '../../errors.js';
import { log } from '../../log.js';
import { ServerLayout } from '../../catalog/layout.js';
import { checkWalArchive } from '../../wal/check.js';
import type { CommandContext, CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

async function run(ctx: CommandContext<'check-wal-archive'>, testOnly: boolean): Promise<number> {
  const { store, resolved } = await openContextStore(ctx);
  try {
    let connectivity;
    try {
      connectivity = await store.testConnectivity();
    } catch (e) {
      if (e instanceof NetworkError) {
        log.error(`Can't connect to cloud provider: ${e.message}`);
        return EXIT.NETWORK;
      }
      throw e;
    }
    if (testOnly) return EXIT.OK;
    if (connectivity === 'bucket-missing') {
      log.info(`Bucket ${store.bucket} does not exist, creating it`);
      await store.createBucket();
    }
    const serverName = ctx.args.positionals.server_name;
    const reason = await checkWalArchive(store, new ServerLayout(resolved.url.path, serverName), ctx.args.options.timeline);
    if (reason) {
      log.error(`WAL archive check failed for server ${serverName}: ${reason}`);
      return EXIT.OPERATION;
    }
    return EXIT.OK;
  } finally {
    await store.close();
  }
}

const check: CommandModule<'check-wal-archive'> = {
  errorPrefix: 'Barman cloud WAL archive check exception',
  test: (ctx) => run(ctx, true),
  run: (ctx) => run(ctx, false),
};

export default check;

// barman-cloud-check-wal-archive (spec §2.9): always tests connectivity first (exit 2 when the
// store is unreachable); with -t that is all it does.
import { EXIT, NetworkError, NotImplementedError } from '../../errors.js';
import { log } from '../../log.js';
import type { CommandModule } from '../context.js';
import { openContextStore } from '../open-store.js';

const check: CommandModule = {
  errorPrefix: 'Barman cloud WAL archive check exception',
  async test(ctx) {
    const { store } = await openContextStore(ctx);
    try {
      await store.testConnectivity();
      return EXIT.OK;
    } catch (e) {
      if (e instanceof NetworkError) {
        log.error(`Can't connect to cloud provider: ${e.message}`);
        return EXIT.NETWORK;
      }
      throw e;
    } finally {
      await store.close();
    }
  },
  async run(ctx) {
    throw new NotImplementedError(`${ctx.spec.prog} is not implemented yet`);
  },
};

export default check;

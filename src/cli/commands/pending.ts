// Commands whose behaviour is not built yet: they parse their arguments, honour -t, and then
// refuse with exit 4 instead of pretending to work.
import { NotImplementedError } from '../../errors.js';
import type { CommandModule } from '../context.js';
import type { CommandName } from '../spec.js';

const PREFIX: Partial<Record<CommandName, string>> = {
  backup: 'Barman cloud backup exception',
  'backup-list': 'Barman cloud backup list exception',
  'backup-show': 'Barman cloud backup show exception',
  'backup-delete': 'Barman cloud backup delete exception',
  'backup-keep': 'Barman cloud keep exception',
  restore: 'Barman cloud restore exception',
};

export function pendingCommand(name: CommandName): CommandModule {
  return {
    errorPrefix: PREFIX[name] ?? 'Barman cloud exception',
    async run(ctx) {
      throw new NotImplementedError(`${ctx.spec.prog} is not implemented yet`);
    },
  };
}

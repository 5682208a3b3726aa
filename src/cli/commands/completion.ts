// `barman-cloud completion bash|zsh|fish` (umbrella only): print the completion script on stdout.
// The generator is imported here, so only this command's bundle chunk carries it.
import { EXIT } from '../../errors.js';
import { completionScript } from '../completion.js';
import type { CommandModule } from '../context.js';

const completion: CommandModule<'completion'> = {
  errorPrefix: 'Barman cloud completion exception',
  async run(ctx) {
    ctx.stdout(completionScript(ctx.args.positionals.shell));
    return EXIT.OK;
  },
};

export default completion;

// `barman-cloud completion bash|zsh|fish` (umbrella only): print the completion script on stdout.
// The generator is imported here, so only this command's bundle chunk carries it.
import { EXIT } from '../../errors.js';
import { completionScript, type Shell } from '../completion.js';
import type { CommandModule } from '../context.js';

const completion: CommandModule<'completion'> = {
  errorPrefix: 'Barman cloud completion exception',
  async run(ctx) {
    // The parser has already checked the shell against the positional's choices.
    ctx.stdout(completionScript(ctx.args.positionals.shell as Shell));
    return EXIT.OK;
  },
};

export default completion;

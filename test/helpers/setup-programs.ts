// What src/cli/main.ts does for a real run: codecs that run a program (bzip2) look for it on this
// process's PATH. Tests that load codecs in-process get the same programs as the executables.
import { setProgramSearchPath } from '../../src/compression/index.ts';

setProgramSearchPath(process.env.PATH);

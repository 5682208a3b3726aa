// commander, required rather than imported: Node then loads the CommonJS package directly instead
// of translating it for the ES module loader (which parses its source for export names first).
// The WAL commands' CommonJS bundle does not use this file: its build puts the package itself in
// its place (scripts/build.mjs), so commander is compiled from the code cache with the rest.
import { createRequire } from 'node:module';

export const { Command, Option } = createRequire(import.meta.url)('commander') as typeof import('commander');

// The local directory store, as the CLI sees it: chosen by its URL form (file:///dir, /dir)
// whatever --cloud-provider says, with no flags of its own. Data only, like every options.ts.
import type { ProviderDeclaration } from '../provider.js';
import type { FileOptions } from './config.js';

export const file = {
  name: 'file',
  cloudProvider: false,
  claims: (url: string) => url.startsWith('file://') || url.startsWith('/'),
  options: [],
  flags: [],
} as const satisfies ProviderDeclaration<FileOptions>;

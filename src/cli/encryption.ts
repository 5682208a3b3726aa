// --encryption-recipient-file / --encryption-identity-file (and their environment variables, which
// name a file too: keys never travel in argv or the environment) → parsed age keys. Imported only
// when one of them is set, so plain runs never load the encryption code.
import { readFileSync } from 'node:fs';
import { EncryptionKeyError } from '../errors.js';
import { registerSecret } from '../log.js';
import type { AgeIdentities } from '../encryption/age.js';
import type { IdentityOptions, RecipientOptions } from './spec.js';
import type { Env } from './store.js';

const RECIPIENT_ENV = 'BARMAN_CLOUD_ENCRYPTION_RECIPIENT_FILE';
const IDENTITY_ENV = 'BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE';

/** The part of a command's context read here: only commands that have the option can pass theirs. */
interface KeyFileContext<O> {
  args: { options: O };
  env: Env;
}

function recipientFile(ctx: KeyFileContext<RecipientOptions>): string | undefined {
  return ctx.args.options['encryption-recipient-file'] ?? (ctx.env[RECIPIENT_ENV] || undefined);
}

function identityFile(ctx: KeyFileContext<IdentityOptions>): string | undefined {
  return ctx.args.options['encryption-identity-file'] ?? (ctx.env[IDENTITY_ENV] || undefined);
}

function readKeyFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new EncryptionKeyError(`cannot read the age ${what} file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function loadRecipients(ctx: KeyFileContext<RecipientOptions>): Promise<string[] | undefined> {
  const path = recipientFile(ctx);
  if (!path) return undefined;
  const { parseRecipients } = await import('../encryption/age.js');
  return parseRecipients(readKeyFile(path, 'recipient'), path);
}

export async function loadIdentities(ctx: KeyFileContext<IdentityOptions>): Promise<AgeIdentities | undefined> {
  const path = identityFile(ctx);
  if (!path) return undefined;
  const text = readKeyFile(path, 'identity');
  for (const line of text.split(/\r?\n/)) if (line.trim().startsWith('AGE-SECRET-KEY-')) registerSecret(line.trim());
  const { parseIdentities } = await import('../encryption/age.js');
  return parseIdentities(text, path, ctx.args.options['allow-unencrypted'] === true);
}

/**
 * For the build's code cache only (src/cli/run.ts): compiles the loaders above by calling them on
 * `/`, a directory, which the read refuses before anything is parsed or registered as a secret.
 */
export async function exerciseForCodeCache(): Promise<void> {
  const ctx = { args: { options: { 'encryption-recipient-file': '/', 'encryption-identity-file': '/' } }, env: {} };
  for (const load of [loadRecipients, loadIdentities]) {
    const refused = await load(ctx).then(() => false, (e: unknown) => e instanceof EncryptionKeyError);
    if (!refused) throw new Error('the key file loaders accepted a directory');
  }
}

// Names of encrypted objects: barman's name plus `.age` (docs/encryption.md, "Object names"). Kept
// apart from the cipher code so that listings and the plain WAL path load nothing else.
import { EncryptedDataError } from '../errors.js';

/** Appended to barman's object name: `…0001.lz4.age`, `data.tar.gz.age`, `…0001.age`. */
export const AGE_SUFFIX = '.age';

export function isEncryptedName(name: string): boolean {
  return name.endsWith(AGE_SUFFIX);
}

/** The name without `.age`, and whether it had it. */
export function stripAgeSuffix(name: string): { name: string; encrypted: boolean } {
  return isEncryptedName(name) ? { name: name.slice(0, -AGE_SUFFIX.length), encrypted: true } : { name, encrypted: false };
}

/**
 * A plain object read with an identity: refused (exit 4) unless --allow-unencrypted. Whoever can
 * write the bucket cannot forge an age object for our recipients, but can plant a plain one in its
 * place (docs/encryption.md#plain-objects).
 */
export function unencryptedRefused(what: string): EncryptedDataError {
  return new EncryptedDataError(
    `${what} is not encrypted, and an identity was given: refused, as a plain object may have been planted in the bucket (--allow-unencrypted accepts objects stored before encryption was switched on)`,
  );
}

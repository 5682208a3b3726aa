// Names of encrypted objects: barman's name plus `.age` (docs/encryption.md, "Object names"). Kept
// apart from the cipher code so that listings and the plain WAL path load nothing else.

/** Appended to barman's object name: `…0001.lz4.age`, `data.tar.gz.age`, `…0001.age`. */
export const AGE_SUFFIX = '.age';

export function isEncryptedName(name: string): boolean {
  return name.endsWith(AGE_SUFFIX);
}

/** The name without `.age`, and whether it had it. */
export function stripAgeSuffix(name: string): { name: string; encrypted: boolean } {
  return isEncryptedName(name) ? { name: name.slice(0, -AGE_SUFFIX.length), encrypted: true } : { name, encrypted: false };
}

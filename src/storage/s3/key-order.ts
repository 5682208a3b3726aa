// S3 lists keys in the order of their UTF-8 bytes; the check after a quiet DeleteObjects
// (docs/format.md#result-answers) lists from just before a key, within the keys' common prefix.

/** The longest common start of `keys`, never ending inside a surrogate pair (a prefix of each in UTF-8 too). */
export function commonPrefix(keys: string[]): string {
  let end = keys[0]!.length;
  for (const key of keys) {
    let i = 0;
    while (i < end && i < key.length && key.charCodeAt(i) === keys[0]!.charCodeAt(i)) i++;
    end = i;
  }
  const code = keys[0]!.charCodeAt(end - 1);
  return keys[0]!.slice(0, code >= 0xd800 && code <= 0xdbff ? end - 1 : end);
}

/**
 * A string that sorts (in UTF-8 bytes) before `key` and after nearly every key before it: the
 * last character one lower, then the highest one there is. Keys between the two are possible and
 * harmless (the check reads past them); '' where there is none to give.
 */
export function justBefore(key: string): string {
  const chars = [...key];
  const lastChar = chars.pop();
  if (lastChar === undefined) return '';
  let code = lastChar.codePointAt(0)! - 1;
  if (code < 0) return chars.join('');
  if (code >= 0xd800 && code <= 0xdfff) code = 0xd7ff;
  return chars.join('') + String.fromCodePoint(code, 0x10ffff);
}

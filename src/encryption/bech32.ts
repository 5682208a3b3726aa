// Bech32 (BIP 173), the text form of age keys: `age1…` recipients and `AGE-SECRET-KEY-1…`
// identities. Written here rather than imported: loading @scure/base cost each one-shot WAL call
// ~5 ms of CPU (measured, docs/benchmarks.md), more than decrypting a compressed segment's worth of
// chunks, for the few lines below. Checked against BIP 173's test vectors and age-keygen's keys.

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: Iterable<number>): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i]!;
  }
  return chk >>> 0;
}

function* checksummed(prefix: string, words: readonly number[]): Generator<number> {
  for (let i = 0; i < prefix.length; i++) yield prefix.charCodeAt(i) >> 5;
  yield 0;
  for (let i = 0; i < prefix.length; i++) yield prefix.charCodeAt(i) & 31;
  yield* words;
}

/** Regroups bits (8 → 5 with zero padding to encode; 5 → 8, refusing leftover bits, to decode). */
function regroup(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] | undefined {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i]!;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & ((1 << to) - 1));
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & ((1 << to) - 1));
  } else if (bits >= from || acc !== 0) {
    return undefined;
  }
  return out;
}

/** Prefix and bytes of a Bech32 string; undefined for anything malformed (case mix, checksum, padding). */
export function bech32Decode(text: string): { prefix: string; bytes: Buffer } | undefined {
  const lower = text.toLowerCase();
  if (text !== lower && text !== text.toUpperCase()) return undefined;
  const sep = lower.lastIndexOf('1');
  if (sep < 1 || lower.length - sep - 1 < 6) return undefined;
  const prefix = lower.slice(0, sep);
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    if (c < 33 || c > 126) return undefined;
  }
  const words: number[] = [];
  for (let i = sep + 1; i < lower.length; i++) {
    const w = CHARSET.indexOf(lower[i]!);
    if (w < 0) return undefined;
    words.push(w);
  }
  if (polymod(checksummed(prefix, words)) !== 1) return undefined;
  const bytes = regroup(words.slice(0, -6), 5, 8, false);
  return bytes && { prefix, bytes: Buffer.from(bytes) };
}

/** Lower-case Bech32 of `bytes` under `prefix`. */
export function bech32Encode(prefix: string, bytes: Uint8Array): string {
  const words = regroup(bytes, 8, 5, true)!;
  const mod = polymod(checksummed(prefix, [...words, 0, 0, 0, 0, 0, 0])) ^ 1;
  for (let i = 0; i < 6; i++) words.push((mod >>> (5 * (5 - i))) & 31);
  return `${prefix}1${words.map((w) => CHARSET[w]).join('')}`;
}

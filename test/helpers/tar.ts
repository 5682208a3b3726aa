// Hand-made tar archives for the restore tests: any member type, owner and mode, so a test can build
// the hostile or minimal archives no real backup contains. Fixed mtime: the same members give the
// same bytes.
import tarStream from 'tar-stream';

export interface TarMember {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device';
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
}

/** An uncompressed tar of `members`, in order (files 0600, directories 0700 unless given). */
export function tarOf(members: TarMember[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const m of members) {
    const type = m.type ?? 'file';
    const mode = m.mode ?? (type === 'directory' ? 0o700 : 0o600);
    const header = {
      name: m.name, type, mode, mtime: new Date(1_700_000_000_000), linkname: m.linkname, uid: m.uid ?? 0, gid: m.uid ?? 0, devmajor: 1, devminor: 3,
    };
    if (type === 'file') pack.entry(header, m.data ?? '');
    else pack.entry(header, '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
}

/** A member of an uncompressed tar as its header states it; `offset` is where its data starts. */
export interface TarHeader { name: string; type: string; mode: number; mtime: number; offset: number; size: number }

/**
 * The members of an uncompressed tar, read from the headers (PAX path and mtime applied, ustar
 * prefix joined, a leading './' and trailing '/' dropped), up to the end-of-archive block: for tests
 * that change bytes at a member's place in a real part.
 */
export function tarHeaders(tar: Buffer): TarHeader[] {
  const out: TarHeader[] = [];
  let off = 0;
  let pax: Record<string, string> = {};
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, b: number) => h.toString('latin1', a, b).replace(/\0[\s\S]*$/, '');
    const size = Number.parseInt(field(124, 136).trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    const data = off + 512;
    if (type === 'x') {
      for (const m of tar.toString('utf8', data, data + size).matchAll(/\d+ ([^=]+)=([^\n]*)\n/g)) pax[m[1]!] = m[2]!;
    } else {
      const prefix = field(345, 500);
      const name = (pax.path ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100))).replace(/^\.\//, '').replace(/\/$/, '');
      const mtime = pax.mtime !== undefined ? Number(pax.mtime) : Number.parseInt(field(136, 148).trim(), 8);
      out.push({ name, type, mode: Number.parseInt(field(100, 108).trim(), 8), mtime, offset: data, size });
      pax = {};
    }
    off = data + Math.ceil(size / 512) * 512;
  }
  return out;
}

// Hand-made tar archives for the restore tests: any member type, owner and mode, so a test can build
// the hostile or minimal archives no real backup contains. Fixed mtime: the same members give the
// same bytes.
import tarStream from 'tar-stream';

export interface TarMember {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device';
  data?: string;
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

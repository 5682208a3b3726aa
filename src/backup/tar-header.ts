// Tar headers as Python's tarfile writes them in PAX_FORMAT, the format of barman's backups
// (docs/format.md#tar-members), byte for byte:
//   * one 512-byte ustar header per member ("ustar\0" "00" magic), preceded by a `././@PaxHeader`
//     extended header when a value does not fit: always for lstat members (their float mtime goes to
//     a `mtime=<python repr>` record, the ustar field holds the rounded value), and for non-ASCII or
//     over-long names/link names/user or group names and over-large ids and sizes;
//   * directories are named with a trailing '/', the root is './';
//   * each part ends with two zero blocks, padded to a 10240-byte record.
// tar-stream's packer cannot produce that layout (it renames the member 'PaxHeader', keeps no
// fractional mtime and writes no record padding), so headers are encoded here; tar-stream is used by
// the reading side (extract.ts). The owner names come from /etc/passwd and /etc/group, as Python's
// pwd and grp modules give them; restore maps them back (extract.ts).
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { floatRepr } from '../catalog/python-literal.js';

export const BLOCK_SIZE = 512;
const RECORD_SIZE = 20 * BLOCK_SIZE;

// ---- user and group names ------------------------------------------------------------------------

interface IdTables {
  userById: Map<number, string>;
  groupById: Map<number, string>;
  userByName: Map<string, number>;
  groupByName: Map<string, number>;
}

let idTables: IdTables | undefined;

function parseIdFile(path: string, byId: Map<number, string>, byName: Map<string, number>): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    if (fields.length < 3) continue;
    const name = fields[0]!;
    const id = Number(fields[2]);
    if (!Number.isInteger(id) || name === '') continue;
    // getpwuid / getgrgid return the first entry of the file
    if (!byId.has(id)) byId.set(id, name);
    if (!byName.has(name)) byName.set(name, id);
  }
}

function tables(): IdTables {
  if (!idTables) {
    idTables = { userById: new Map(), groupById: new Map(), userByName: new Map(), groupByName: new Map() };
    parseIdFile('/etc/passwd', idTables.userById, idTables.userByName);
    parseIdFile('/etc/group', idTables.groupById, idTables.groupByName);
    try {
      // the current user may come from NSS (LDAP, …) rather than /etc/passwd
      const me = userInfo();
      if (me.uid >= 0 && !idTables.userById.has(me.uid)) idTables.userById.set(me.uid, me.username);
      if (me.uid >= 0 && !idTables.userByName.has(me.username)) idTables.userByName.set(me.username, me.uid);
    } catch {
      // no passwd entry for the current uid
    }
  }
  return idTables;
}

/** pwd.getpwuid(uid).pw_name, or '' when unknown (as tarfile leaves uname empty). */
export function userName(uid: number): string {
  return tables().userById.get(uid) ?? '';
}

/** grp.getgrgid(gid).gr_name, or ''. */
export function groupName(gid: number): string {
  return tables().groupById.get(gid) ?? '';
}

/** pwd.getpwnam(name).pw_uid, or undefined. */
export function userId(name: string): number | undefined {
  return tables().userByName.get(name);
}

/** grp.getgrnam(name).gr_gid, or undefined. */
export function groupId(name: string): number | undefined {
  return tables().groupByName.get(name);
}

// ---- header encoding (Python tarfile, PAX_FORMAT) -------------------------------------------------

/** ustar type flags. */
export const TarType = {
  FILE: '0',
  HARDLINK: '1',
  SYMLINK: '2',
  CHAR: '3',
  BLOCK: '4',
  DIRECTORY: '5',
  FIFO: '6',
} as const;
export type TarTypeFlag = (typeof TarType)[keyof typeof TarType];

export interface TarHeader {
  /** Member name; a directory gets a trailing '/' when encoded. */
  name: string;
  type: TarTypeFlag;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Python stores lstat mtimes as floats: a PAX `mtime` record with the full value is written. */
  mtimeIsFloat?: boolean;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** Python's round() of a float: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Python stn(s, length, 'ascii', 'replace'): NUL-padded, truncated, non-ASCII code points → '?'. */
function putAscii(buf: Buffer, offset: number, length: number, s: string): void {
  let ascii = '';
  for (const ch of s) ascii += ch.codePointAt(0)! < 0x80 ? ch : '?';
  buf.write(ascii.slice(0, length), offset, length, 'latin1');
}

/** Python itn(n, digits): zero-padded octal of digits-1 characters followed by NUL. */
function putOctal(buf: Buffer, offset: number, digits: number, n: number): void {
  buf.write(`${n.toString(8).padStart(digits - 1, '0')}\0`, offset, digits, 'latin1');
}

function ustarBlock(h: {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor?: number;
  devminor?: number;
}): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  putAscii(b, 0, 100, h.name);
  putOctal(b, 100, 8, h.mode & 0o7777);
  putOctal(b, 108, 8, h.uid);
  putOctal(b, 116, 8, h.gid);
  putOctal(b, 124, 12, h.size);
  putOctal(b, 136, 12, h.mtime);
  b.write('        ', 148, 8, 'latin1');
  b.write(h.type, 156, 1, 'latin1');
  putAscii(b, 157, 100, h.linkname);
  b.write('ustar\u000000', 257, 8, 'latin1');
  putAscii(b, 265, 32, h.uname);
  putAscii(b, 297, 32, h.gname);
  if (h.type === TarType.CHAR || h.type === TarType.BLOCK) {
    putOctal(b, 329, 8, h.devmajor ?? 0);
    putOctal(b, 337, 8, h.devminor ?? 0);
  }
  // prefix (345..500) stays empty: the PAX format never splits names
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 7, 'latin1'); // byte 155 keeps its space
  return b;
}

function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`, 'utf8');
  let len = body.length;
  for (;;) {
    const total = body.length + String(len).length;
    if (total === len) break;
    len = total;
  }
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/**
 * Header block(s) of one member exactly as Python's tarfile writes them in PAX_FORMAT: an optional
 * `././@PaxHeader` (type 'x') record block sequence followed by the ustar block.
 */
export function encodeTarHeader(h: TarHeader): Buffer {
  let name = h.name;
  if (h.type === TarType.DIRECTORY && !name.endsWith('/')) name += '/';
  const linkname = h.linkname ?? '';
  const uname = h.uname ?? '';
  const gname = h.gname ?? '';
  const pax: [string, string][] = [];
  for (const [value, key, length] of [
    [name, 'path', 100],
    [linkname, 'linkpath', 100],
    [uname, 'uname', 32],
    [gname, 'gname', 32],
  ] as const) {
    if (NON_ASCII.test(value) || value.length > length) pax.push([key, value]);
  }
  const numeric = { uid: h.uid, gid: h.gid, size: h.size, mtime: h.mtime };
  for (const [key, digits] of [
    ['uid', 8],
    ['gid', 8],
    ['size', 12],
    ['mtime', 12],
  ] as const) {
    const value = numeric[key];
    const isFloat = key === 'mtime' && h.mtimeIsFloat === true;
    const intValue = isFloat ? roundHalfEven(value) : value;
    let needsPax = false;
    if (!(intValue >= 0 && intValue < 8 ** (digits - 1))) {
      numeric[key] = 0;
      needsPax = true;
    } else if (isFloat) {
      numeric[key] = intValue;
      needsPax = true;
    }
    if (needsPax) pax.push([key, isFloat ? floatRepr(value) : String(value)]);
  }
  const main = ustarBlock({
    name,
    type: h.type,
    mode: h.mode,
    uid: numeric.uid,
    gid: numeric.gid,
    size: numeric.size,
    mtime: numeric.mtime,
    linkname,
    uname,
    gname,
    devmajor: h.devmajor,
    devminor: h.devminor,
  });
  if (pax.length === 0) return main;
  const records = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const paxHead = ustarBlock({
    name: '././@PaxHeader',
    type: 'x',
    mode: 0,
    uid: 0,
    gid: 0,
    size: records.length,
    mtime: 0,
    linkname: '',
    uname: '',
    gname: '',
  });
  const padding = (BLOCK_SIZE - (records.length % BLOCK_SIZE)) % BLOCK_SIZE;
  return Buffer.concat([paxHead, records, Buffer.alloc(padding), main]);
}

/** End of archive: two zero blocks, then zeros up to the next 10240-byte record boundary. */
export function tarTrailer(offset: number): Buffer {
  const end = offset + 2 * BLOCK_SIZE;
  const pad = (RECORD_SIZE - (end % RECORD_SIZE)) % RECORD_SIZE;
  return Buffer.alloc(2 * BLOCK_SIZE + pad);
}

// ---- lstat → header fields ----------------------------------------------------------------------

const NS_PER_S = 1_000_000_000n;

/** Python's st_mtime float: sec + nsec * 1e-9 (timespec with a floored second). */
export function pythonMtime(mtimeNs: bigint): number {
  let sec = mtimeNs / NS_PER_S;
  let nsec = mtimeNs % NS_PER_S;
  if (nsec < 0n) {
    nsec += NS_PER_S;
    sec -= 1n;
  }
  return Number(sec) + Number(nsec) * 1e-9;
}

export function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}

export function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

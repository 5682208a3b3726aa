// barman's bucket layout (docs/format.md#layout): where WAL files, base backups and annotations live.
import { log } from '../log.js';
import { hex8, isHistoryFile, parseSegmentName } from '../xlog.js';

/** Python's os.path.join for '/'-separated keys: an empty part adds nothing, a trailing '/' is not doubled. */
export function joinKey(...parts: string[]): string {
  let out = '';
  for (const part of parts) {
    if (part === '') {
      if (out !== '' && !out.endsWith('/')) out += '/';
      continue;
    }
    if (part.startsWith('/')) out = part;
    else out = out === '' || out.endsWith('/') ? out + part : `${out}/${part}`;
  }
  return out;
}

/**
 * A filter for the keys a listing of `prefix` returned: true for those below it. The others are
 * another server's or backup's and must not steer what we do with ours; the first is named in a
 * WARNING (docs/format.md#listed-keys).
 */
export function listedBelow(prefix: string): (key: string) => boolean {
  let warned = false;
  return (key) => {
    if (key.startsWith(prefix)) return true;
    if (!warned) log.warning(`Ignoring ${key}: the store listed it under ${prefix}, where it does not belong`);
    warned = true;
    return false;
  };
}

/** The keys of one server's archive under a URL path `P` (docs/format.md#layout). */
export class ServerLayout {
  /** `P/S` */
  readonly root: string;

  constructor(readonly path: string, readonly serverName: string) {
    this.root = joinKey(path, serverName);
  }

  /** `P/S/wals/` */
  get walsPrefix(): string {
    return joinKey(this.root, 'wals', '');
  }

  /** `P/S/base/` */
  get basePrefix(): string {
    return joinKey(this.root, 'base', '');
  }

  /**
   * The directory of a WAL file: `<TLI8><LOG8>` re-encoded upper-case from the first 16 characters
   * (docs/format.md#layout), except history files, which live directly under `wals/`.
   */
  walDirectory(walName: string): string {
    if (isHistoryFile(walName)) return this.walsPrefix;
    return joinKey(this.walsPrefix, hashDir(walName), '');
  }

  /** Key of a WAL file without its compression suffix; the base name keeps its original case. */
  walKey(walName: string): string {
    return this.walDirectory(walName) + walName;
  }

  backupPrefix(backupId: string): string {
    return joinKey(this.basePrefix, backupId, '');
  }

  backupInfoKey(backupId: string): string {
    return joinKey(this.backupPrefix(backupId), 'backup.info');
  }

  /**
   * Annotation keys are built as "%s/" % P + … in barman, so a P with a trailing '/' gives a double
   * slash here only (docs/format.md#layout, a quirk kept for compatibility: reads and writes agree).
   */
  annotationKey(backupId: string, name: string): string {
    const head = this.path === '' ? '' : `${this.path}/`;
    return `${head}${this.serverName}/base/${backupId}/annotations/${name}`;
  }
}

/** `"%08X%08X" % (tli, log)` from a WAL file name. */
export function hashDir(walName: string): string {
  const { timeline, log } = parseSegmentName(walName);
  return hex8(timeline) + hex8(log);
}

/** `<TLI8><LOG8>` → timeline and log, or null when malformed (barman's decode_hash_dir): hashDir's inverse. */
export function decodeHashDir(dir: string): { tli: number; log: number } | null {
  const m = /^([0-9A-Fa-f]{8})([0-9A-Fa-f]{8})$/.exec(dir);
  if (!m) return null;
  return { tli: Number.parseInt(m[1]!, 16), log: Number.parseInt(m[2]!, 16) };
}

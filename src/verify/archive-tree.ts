// The names one archive's members leave, in archive order, as restore's extraction treats them
// (src/backup/extract.ts), worked out without writing anything: why restore cannot extract a
// member whose name it accepts (a file where a directory is, a member below a file, a hard link
// to anything but a regular file extracted earlier from the same archive, a link target it
// refuses), and the first member written through each link member, whose place the names alone
// cannot tell (docs/commands/verify.md#as-on-disk).
import { memberPathComponents, notExtractedFile, refuseUndecodable, SKIPPED_TYPES, UnsafeArchiveMemberError } from '../backup/extract.js';
import type { MemberRecord } from './archive.js';
import type { ProblemKind } from './report.js';

/** What a member leaves at its name: a hard link is a regular file as restore sees it. */
type Kind = 'directory' | 'file' | 'symlink';

export interface Refusal {
  kind: Extract<ProblemKind, 'unsafe-member' | 'unextractable-member'>;
  message: string;
}

const cannot = (message: string): Refusal => ({ kind: 'unextractable-member', message });

/** restore's words when one of its name checks (src/backup/extract.ts) refuses; undefined when it accepts. */
export function unsafeRefusal(check: () => void): string | undefined {
  try {
    check();
    return undefined;
  } catch (e) {
    if (e instanceof UnsafeArchiveMemberError) return e.message;
    throw e;
  }
}

/** restore's refusal of a link target as a problem; undefined when it accepts the name. */
function refusedTarget(check: () => void): Refusal | undefined {
  const message = unsafeRefusal(check);
  return message === undefined ? undefined : { kind: 'unsafe-member', message };
}

export class ArchiveTree {
  private readonly kinds = new Map<string, Kind>();
  /** The first member written through each link member, by the link's path. */
  readonly through = new Map<string, string>();

  /** `held`: the regular-file member restore keeps in memory until the end, not on disk (docs/format.md#restore-control-file). */
  constructor(private readonly held?: string) {}

  /**
   * One member whose name restore accepts (the caller checks memberPathComponents first), in
   * archive order, in restore's order of checks: why restore stops at it, if it does.
   */
  add(member: MemberRecord): Refusal | undefined {
    const { name, type } = member;
    const parts = memberPathComponents(name);
    if (parts.length === 0) return type === 'directory' ? undefined : cannot(`Cannot extract '${name}' as a ${type}: it names the destination`);
    if (SKIPPED_TYPES.has(type)) return undefined;
    for (let i = 1; i < parts.length; i++) {
      const above = parts.slice(0, i).join('/');
      const kind = this.kinds.get(above);
      if (kind === 'symlink') {
        if (!this.through.has(above)) this.through.set(above, name);
        return undefined;
      }
      if (kind === 'file') return cannot(`Cannot extract '${name}': '${above}' is not a directory`);
      if (kind === undefined) this.kinds.set(above, 'directory');
    }
    const path = parts.join('/');
    const here = this.kinds.get(path);
    if (type === 'directory') {
      if (here !== undefined && here !== 'directory') return cannot(`Cannot extract directory '${name}': '${path}' exists and is not a directory`);
      this.kinds.set(path, 'directory');
      return undefined;
    }
    if (type === 'symlink') {
      const refused = refusedTarget(() => refuseUndecodable(name, 'link target', member.linkname ?? ''));
      if (refused) return refused;
    } else if (type === 'link') {
      const linkname = member.linkname ?? '';
      let target: string[] = [];
      const refused = refusedTarget(() => (target = memberPathComponents(linkname)));
      if (refused) return refused;
      if (target.length === 0) return cannot(`Cannot extract hard link '${name}': empty link target`);
      // a target reached through a link member is refused here: stricter than restore, never more lenient
      if (this.kinds.get(target.join('/')) !== 'file') return { kind: 'unsafe-member', message: notExtractedFile(name, linkname).message };
    }
    if (here === 'directory') return cannot(`Cannot extract '${name}': a directory is in the way`);
    // what was at the held name is removed, and the held file is no hard link's target
    if (path === this.held && type !== 'symlink' && type !== 'link') this.kinds.delete(path);
    else this.kinds.set(path, type === 'symlink' ? 'symlink' : 'file');
    return undefined;
  }
}

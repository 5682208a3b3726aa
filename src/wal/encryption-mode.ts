// Whether a server's WAL archive holds age-encrypted or plain WAL, recorded in a small object
// `<path>/<server>/wal-encryption` ("age", or "none" after a switch back) so that wal-archive can
// refuse to mix the two (issue #16) with one small GET, sent alongside the listing it makes anyway.
// The record is written only once encryption is involved: a plain archive keeps barman's layout.
import { basename } from 'node:path';
import { AccessDeniedError, NotFoundError, OperationError, PreconditionFailedError } from '../errors.js';
import { log } from '../log.js';
import { joinKey, type ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { codecFromSuffix, WAL_SUFFIX } from '../compression/index.js';
import { stripAgeSuffix } from '../encryption/names.js';
import { isWalName } from '../xlog.js';

export type WalEncryptionMode = 'age' | 'none';

function walEncryptionKey(layout: ServerLayout): string {
  return joinKey(layout.root, 'wal-encryption');
}

const describe = (m: string): string => (m === 'age' ? 'age-encrypted' : m === 'none' ? 'plain (unencrypted)' : `'${m}'`);

/** The recorded mode, undefined when none is recorded, null when this credential may not read it. */
export async function recordedWalEncryption(store: ObjectStore, layout: ServerLayout): Promise<string | undefined | null> {
  try {
    // a word ('age', 'none'): 64 KiB is plenty (docs/format.md#metadata-limits)
    return (await store.getBuffer(walEncryptionKey(layout), { maxBytes: 64 << 10 })).toString('utf8').trim();
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    if (e instanceof AccessDeniedError) return null;
    throw e;
  }
}

/** The mode of the first WAL object listed, undefined for an archive without WAL. */
async function heldMode(store: ObjectStore, layout: ServerLayout): Promise<WalEncryptionMode | undefined> {
  for await (const e of store.list(layout.walsPrefix)) {
    if (e.kind !== 'object') continue;
    const { name, encrypted } = stripAgeSuffix(basename(e.key));
    const codec = codecFromSuffix(name);
    if (isWalName(codec ? name.slice(0, -WAL_SUFFIX[codec].length) : name)) return encrypted ? 'age' : 'none';
  }
  return undefined;
}

/**
 * Refuse (exit 1) to archive `mode` WAL into an archive recorded, or found, to hold the other kind,
 * unless `allowMixed`; then the record is switched to `mode`, so that a migration needs the flag
 * once. The first encrypted call into an archive without a record looks at the WAL already there
 * (one listing) and records "age".
 */
export async function settleWalEncryption(
  store: ObjectStore,
  layout: ServerLayout,
  mode: WalEncryptionMode,
  recorded: string | undefined | null,
  allowMixed: boolean,
): Promise<void> {
  if (recorded === mode) return;
  // never encrypted (or written before the record existed and checked by the first encrypted call)
  if (recorded === undefined && mode === 'none') return;
  if (recorded === null) {
    log.debug('Cannot read the WAL encryption record of this archive (access denied); not checking for mixed WAL');
    return;
  }
  const key = walEncryptionKey(layout);
  const held = recorded ?? (await heldMode(store, layout).catch((e: unknown) => {
    if (e instanceof AccessDeniedError) return undefined;
    throw e;
  }));
  if (held !== undefined && held !== mode) {
    if (!allowMixed) {
      throw new OperationError(
        `the WAL archive of server ${layout.serverName} holds ${describe(held)} WAL and this WAL file would be ` +
          `${describe(mode)}; refusing to mix them (use --allow-mixed-encryption to switch the archive to ${describe(mode)} WAL)`,
      );
    }
    log.warning(`Switching the WAL archive of server ${layout.serverName} from ${describe(held)} to ${describe(mode)} WAL`);
  }
  try {
    await store.put(key, Buffer.from(`${mode}\n`), { ifNoneMatch: recorded === undefined });
  } catch (e) {
    if (e instanceof AccessDeniedError) return;
    if (!(e instanceof PreconditionFailedError)) throw e;
    // another archiver recorded first: judge against what it recorded
    await settleWalEncryption(store, layout, mode, await recordedWalEncryption(store, layout), allowMixed);
  }
}

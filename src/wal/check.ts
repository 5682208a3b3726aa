// Whether a WAL archive is safe for a new server (docs/format.md#check-wal-archive): empty, or with --timeline only
// files of older timelines.
import { basename } from 'node:path';
import { listedBelow, type ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { codecFromSuffix, WAL_SUFFIX } from '../compression/index.js';
import { isWalName, walTimeline } from '../xlog.js';
import { stripAgeSuffix } from '../encryption/names.js';

/** null when the archive passes, else the reason it fails. */
export async function checkWalArchive(store: ObjectStore, layout: ServerLayout, timeline?: number): Promise<string | null> {
  let newer = 0;
  const ours = listedBelow(layout.walsPrefix);
  for await (const entry of store.list(layout.walsPrefix)) {
    if (entry.kind !== 'object' || !ours(entry.key)) continue;
    const key = stripAgeSuffix(entry.key).name;
    const codec = codecFromSuffix(key);
    const name = basename(codec ? key.slice(0, -WAL_SUFFIX[codec].length) : key);
    if (!isWalName(name)) continue;
    if (timeline === undefined) return 'Expected empty archive';
    if (walTimeline(name) >= timeline) newer++;
  }
  if (newer > 0) {
    return `Found ${newer} file${newer === 1 ? '' : 's'} in WAL archive equal to or newer than timeline ${timeline}`;
  }
  return null;
}

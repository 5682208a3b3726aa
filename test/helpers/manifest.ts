// A whole backup_manifest in memory, for tests that build small ones: the builder itself only hands
// out bounded pieces (src/backup/manifest.ts).
import type { BackupManifestBuilder, WalRange } from '../../src/backup/manifest.ts';

export function renderManifest(builder: BackupManifestBuilder, walRanges: readonly WalRange[]): Buffer {
  return Buffer.concat([...builder.render(walRanges).chunks]);
}

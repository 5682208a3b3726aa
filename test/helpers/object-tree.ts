// Synthetic catalogs are maps of object key → body. These write them to a store and read back which
// keys are left: as files below a directory (the file:// store's layout) or as objects of any
// ObjectStore below a path.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ObjectStore } from '../../src/storage/types.ts';

/** Write every object as a file below `root` (under `path` when given). */
export function writeTree(root: string, objects: ReadonlyMap<string, string | Buffer>, path = ''): void {
  for (const [key, body] of objects) {
    const file = join(root, path, key);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, body);
  }
}

/**
 * Every file below `dir` as a sorted list of relative keys, hidden files included (a temp file a
 * killed run left behind must show); [] when `dir` does not exist.
 */
export function treeKeys(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  try {
    if (!statSync(dir).isDirectory()) return [];
  } catch {
    return [];
  }
  walk(dir, '');
  return out.sort();
}

/** Put every object under `<path>/`, 32 at a time (seeding a few thousand objects one by one is slow). */
export async function uploadObjects(store: ObjectStore, path: string, objects: ReadonlyMap<string, string | Buffer>): Promise<void> {
  const entries = [...objects];
  for (let i = 0; i < entries.length; i += 32) {
    await Promise.all(entries.slice(i, i + 32).map(([k, v]) => store.put(`${path}/${k}`, Buffer.from(v))));
  }
}

/** The keys of the objects under `<path>/`, relative to it and sorted. */
export async function objectKeys(store: ObjectStore, path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(`${path}/`)) if (e.kind === 'object') out.push(e.key.slice(path.length + 1));
  return out.sort();
}

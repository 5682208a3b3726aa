// A store seen as a faulty endpoint answers it: every listing under server a's prefix (`pfx/a/`)
// also returns the same listing under server b's (`pfx/b/`), keys a correct store never returns.
// For the tests of the rule that a listed key is used only below the prefix asked for
// (docs/format.md#listed-keys).
import type { ListEntry, ListOptions, ObjectStore } from '../../src/storage/types.ts';

export function straying(inner: ObjectStore): ObjectStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'list') {
        return async function* (prefix: string, options?: ListOptions): AsyncIterable<ListEntry> {
          yield* target.list(prefix, options);
          if (prefix.startsWith('pfx/a/')) yield* target.list(`pfx/b/${prefix.slice('pfx/a/'.length)}`, options);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

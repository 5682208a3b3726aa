// Opening the object store named by a command's first positional, with its flags and environment.
import { openObjectStore } from '../storage/config.js';
import type { ObjectStore } from '../storage/types.js';
import type { CommandContext } from './context.js';
import type { StoreCommandName } from './spec.js';
import { resolveStore, type ResolvedStore } from './store.js';

/** The first positional names the store for every command (destination_url or source_url). */
export function storeUrl(ctx: CommandContext<StoreCommandName>): string {
  const p = ctx.args.positionals;
  return 'destination_url' in p ? p.destination_url : p.source_url;
}

export function resolveContextStore(ctx: CommandContext<StoreCommandName>): Promise<ResolvedStore> {
  return resolveStore(storeUrl(ctx), ctx.args.options, ctx.env);
}

export async function openContextStore(ctx: CommandContext<StoreCommandName>): Promise<{ store: ObjectStore; resolved: ResolvedStore }> {
  const resolved = await resolveContextStore(ctx);
  return { store: await openObjectStore(resolved.config), resolved };
}


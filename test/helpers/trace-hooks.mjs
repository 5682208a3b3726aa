// Module resolution hook used by trace-modules.mjs (runs on the loader thread).
import { appendFileSync } from 'node:fs';

let out;
export async function initialize(data) {
  out = data.out;
}
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(out, `${result.url}\n`);
  return result;
}

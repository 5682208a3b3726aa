// `barman-cloud doctor`: what one check found, how the findings are printed, and the exit code
// they add up to. Pure: no I/O.
import { EXIT } from '../../errors.js';
import { escapeControl, redact } from '../../log.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** The finding in plain words, with the fix when something is wrong. Never a secret. */
  detail: string;
}

export const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });
export const warn = (name: string, detail: string): CheckResult => ({ name, status: 'warn', detail });
export const fail = (name: string, detail: string): CheckResult => ({ name, status: 'fail', detail });

const LABEL: Record<CheckStatus, string> = { ok: 'ok', warn: 'warn', fail: 'FAIL' };

/** One `ok|warn|FAIL  <check>: <finding>` line per check; details are kept on one line. */
export function formatConsole(results: readonly CheckResult[]): string {
  return results
    .map((r) => `${LABEL[r.status].padEnd(4)}  ${r.name}: ${oneLine(redact(r.detail))}\n`)
    .join('');
}

/** `{"checks": [{"name", "status", "detail"}], "ok": bool}` followed by a newline. */
export function formatJson(results: readonly CheckResult[]): string {
  const checks = results.map((r) => ({ name: r.name, status: r.status, detail: oneLine(redact(r.detail)) }));
  return `${JSON.stringify({ checks, ok: !results.some((r) => r.status === 'fail') }, null, 2)}\n`;
}

/**
 * 0 when nothing failed (warnings allowed); 2 when the object store could not be used at all
 * (configuration, connection, TLS, credentials), whatever else failed; otherwise 1 per FAIL.
 */
export function exitCode(results: readonly CheckResult[], storeUnusable: boolean): number {
  if (storeUnusable) return EXIT.NETWORK;
  return results.some((r) => r.status === 'fail') ? EXIT.OPERATION : EXIT.OK;
}

/**
 * A detail on one line and inert: it may quote keys, backup ids, error messages or settings that
 * whoever writes the store or configures PostgreSQL chose, and a line break, carriage return or
 * terminal escape in one must not forge or hide a finding (docs/format.md#untrusted-text).
 */
function oneLine(text: string): string {
  return escapeControl(text.replace(/\s*\n\s*/g, ' ').trim());
}

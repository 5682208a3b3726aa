// The one logger. barman's format on stderr (docs/format.md#arguments):
//   2026-11-29 05:05:40,079 [21652] ERROR: message
// Level = max(WARNING - 10*(verbose - quiet), DEBUG). stdout is never written here.

const LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 } as const;
export type LevelName = keyof typeof LEVELS;

let threshold: number = LEVELS.WARNING;
const secrets = new Set<string>();
let sink: (line: string) => void = (line) => process.stderr.write(line);

/** Set the threshold from counted -v / -q, as barman does. */
export function setVerbosity(verbose: number, quiet: number): void {
  threshold = Math.max(LEVELS.WARNING - 10 * (verbose - quiet), LEVELS.DEBUG);
}

export function isEnabled(level: LevelName): boolean {
  return LEVELS[level] >= threshold;
}

/** Values that must never be printed (keys, tokens, connection strings): replaced by '***'. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

// Secret-bearing fragments that may appear in SDK error texts even when we never saw the value.
const SECRET_PATTERNS: [RegExp, string][] = [
  [/(AccountKey=)[^;\s]+/gi, '$1***'],
  [/(SharedAccessSignature=)[^;\s]+/gi, '$1***'],
  [/([?&]sig=)[^&\s]+/gi, '$1***'],
  [/(Authorization:?\s*)(Bearer|AWS4-HMAC-SHA256|SharedKey)\s+\S+/gi, '$1$2 ***'],
  [/(X-Amz-Signature=|X-Amz-Security-Token=|X-Amz-Credential=)[^&\s]+/gi, '$1***'],
  // A URL's user name and password (`--endpoint-url http://user:pass@host`, STORAGE_EMULATOR_HOST,
  // a proxy): -vv lines and doctor name the endpoint as given (docs/configuration.md, rule 4).
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]+@/gi, '$1***@'],
  [/("?(?:access_token|private_key|client_secret)"?\s*[:=]\s*)"[^"]*"/gi, '$1"***"'],
  // age identities (client-side encryption keys)
  [/(AGE-SECRET-KEY-(?:PQ-)?1)[0-9A-Z]+/gi, '$1***'],
];

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  for (const [re, rep] of SECRET_PATTERNS) out = out.replace(re, rep);
  return out;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function timestamp(d = new Date()): string {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`
  );
}

// Control characters (C0, DEL, C1) and the Unicode line separators: an object key, tar member
// name, backup id or path we print may carry them, and a newline or terminal escape in one would
// let whoever named it forge or hide log lines (docs/format.md#untrusted-text).
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
const NAMED_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` with every control character written as an escape (`\n`, `\x1b`, `\u2028`): one line, inert. */
export function escapeControl(text: string): string {
  CONTROL.lastIndex = 0;
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROL, (c) => {
    const named = NAMED_ESCAPES[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code > 0xff ? `\\u${code.toString(16)}` : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}

function emit(level: LevelName, message: string, continuation: readonly string[] = []): void {
  if (LEVELS[level] < threshold) return;
  // One record per line: barman's callers grep stderr line by line. Continuation lines are our own
  // text (a two-line message of barman's), escaped all the same.
  const more = continuation.map((l) => `\n${escapeControl(redact(l))}`).join('');
  sink(`${timestamp()} [${process.pid}] ${level}: ${escapeControl(redact(message))}${more}\n`);
}

/** A stack trace at DEBUG, one record per line of it (each line escaped as any message is). */
export function debugStack(e: unknown): void {
  if (!isEnabled('DEBUG') || !(e instanceof Error) || !e.stack) return;
  for (const line of e.stack.split('\n')) emit('DEBUG', line);
}

export const log = {
  debug: (m: string) => emit('DEBUG', m),
  info: (m: string) => emit('INFO', m),
  warning: (m: string) => emit('WARNING', m),
  error: (m: string, continuation?: readonly string[]) => emit('ERROR', m, continuation),
  critical: (m: string) => emit('CRITICAL', m),
};

/** For unit tests: capture log lines instead of writing to stderr. */
export function setLogSink(fn: (line: string) => void): void {
  sink = fn;
}

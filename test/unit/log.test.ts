import { describe, it, expect, afterEach } from 'vitest';
import { debugStack, log, setLogSink, setVerbosity, redact, registerSecret } from '../../src/log.ts';

describe('logger', () => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  afterEach(() => {
    lines.length = 0;
    setVerbosity(0, 0);
  });

  it("writes barman's line format and honours -v/-q levels", () => {
    setVerbosity(0, 0);
    log.info('hidden');
    log.warning('shown');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] WARNING: shown\n$/);
    setVerbosity(2, 0);
    log.debug('debug');
    expect(lines).toHaveLength(2);
    setVerbosity(0, 2);
    log.error('error hidden at -qq');
    log.critical('critical');
    expect(lines.at(-1)).toMatch(/CRITICAL: critical/);
    expect(lines).toHaveLength(3);
  });

  it('redacts registered secrets and secret-shaped fragments', () => {
    registerSecret('hunter2-secret');
    expect(redact('password hunter2-secret here')).toBe('password *** here');
    expect(redact('DefaultEndpointsProtocol=http;AccountName=a;AccountKey=abc/def==;')).toBe('DefaultEndpointsProtocol=http;AccountName=a;AccountKey=***;');
    expect(redact('https://a.blob.core.windows.net/c?sv=2020&sig=abc%2Fdef&se=1')).toBe('https://a.blob.core.windows.net/c?sv=2020&sig=***&se=1');
    expect(redact('Authorization: Bearer eyJabc.def')).toBe('Authorization: Bearer ***');
  });

  it('writes control characters as escapes, so one call is one line (docs/format.md#untrusted-text)', () => {
    log.warning('key a\nb\r\tc\x1b[31md\x00\x7f\x9b\u2028e\\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARNING: key a\\nb\\r\\tc\\x1b\[31md\\x00\\x7f\\x9b\\u2028e\\n\n$/);
    expect(lines[0].slice(0, -1)).not.toMatch(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/);
  });

  it("prints an error's own continuation lines under it, unprefixed, each escaped", () => {
    log.error('Cannot read the following backups: [\'a\\nb\']', ['Unsafe to proceed\nforged']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ERROR: Cannot read the following backups: \['a\\nb'\]\nUnsafe to proceed\\nforged\n$/);
  });

  it('logs a stack trace one line per record at DEBUG, nothing below it', () => {
    const e = new Error('boom\nforged');
    debugStack(e);
    expect(lines).toHaveLength(0);
    setVerbosity(2, 0);
    debugStack(e);
    expect(lines.length).toBe(e.stack!.split('\n').length);
    for (const l of lines) expect(l).toMatch(/^\S+ \S+ \[\d+\] DEBUG: [^\n]*\n$/);
  });
});

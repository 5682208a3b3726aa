import { describe, it, expect, afterEach } from 'vitest';
import { log, setLogSink, setVerbosity, redact, registerSecret } from '../../src/log.ts';

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
});

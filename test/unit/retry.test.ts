// The one retry policy (src/storage/retry.ts), as pure logic: how many attempts, the back-off bounds
// (full jitter under a doubling cap) and which failures are retried at all (a stall never is).
import { describe, expect, it } from 'vitest';
import { backoffDelayMs, mayRetry, mayRetryAfter, pauseBeforeRetry } from '../../src/storage/retry.ts';

const policy = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 350 };

describe('retry policy', () => {
  it('allows maxAttempts attempts in all, the first included, and at least one', () => {
    expect([1, 2, 3].map((n) => mayRetry(policy, n))).toEqual([true, true, false]);
    expect(mayRetry({ maxAttempts: 0 }, 1)).toBe(false);
    expect(mayRetry({ maxAttempts: 1 }, 1)).toBe(false);
  });

  it('draws each delay in [0, min(max, base × 2^(retry-1))): doubling, capped, jittered', () => {
    const top = (retry: number) => backoffDelayMs(policy, retry, () => 0.999999);
    expect([1, 2, 3, 4, 40].map(top)).toEqual([99, 199, 349, 349, 349]);
    expect(backoffDelayMs(policy, 3, () => 0)).toBe(0);
    expect(backoffDelayMs(policy, 2, () => 0.5)).toBe(100);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelayMs(policy, 2);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(200);
    }
  });

  it('retries transient failures per the policy and never a stall', () => {
    expect(mayRetryAfter(policy, 1, 'transient')).toBe(true);
    expect(mayRetryAfter(policy, 3, 'transient')).toBe(false);
    expect(mayRetryAfter(policy, 1, 'stall')).toBe(false);
  });

  it('pauseBeforeRetry waits the drawn delay when another attempt is allowed, and says no at once otherwise', async () => {
    let t = Date.now();
    expect(await pauseBeforeRetry(policy, 2, 'transient', () => 0.75)).toBe(true); // 150 ms
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    t = Date.now();
    expect(await pauseBeforeRetry(policy, 3, 'transient', () => 0.999)).toBe(false);
    expect(await pauseBeforeRetry(policy, 1, 'stall', () => 0.999)).toBe(false);
    expect(Date.now() - t).toBeLessThan(50);
  });
});

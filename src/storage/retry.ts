// Provider-neutral helpers for our one RetryPolicy (config.ts). The SDK drivers map the policy onto
// their SDK's own retry hooks with these functions; our own request loops (the lean S3 client, GCS
// resumable uploads) wait with pauseBeforeRetry. Either way the arithmetic is the same everywhere.
import { setTimeout as sleep } from 'node:timers/promises';
import type { RetryPolicy } from './config.js';

/**
 * Delay before retry number `retry` (1 = the first retry): exponential back-off from baseDelayMs,
 * doubling each time, capped at maxDelayMs, with full jitter (a uniform draw in [0, cap)).
 */
export function backoffDelayMs(
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  retry: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.min(retry - 1, 30));
  const cap = Math.max(0, Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exponent));
  return Math.floor(random() * cap);
}

/** Whether another attempt is allowed after `attemptsMade` attempts (the first one included). */
export function mayRetry(policy: Pick<RetryPolicy, 'maxAttempts'>, attemptsMade: number): boolean {
  return attemptsMade < Math.max(1, policy.maxAttempts);
}

/** How an attempt failed, as far as retrying is concerned. */
export type AttemptFailure = 'stall' | 'transient';

/**
 * Whether another attempt is allowed after a failed one. A stall — the server took the connection
 * and then moved no byte for the read timeout — is final: it has already cost one read timeout (two
 * while an upload was pending: Node restarts a socket's timeout once when its write queue moved),
 * and a server that stalls mostly stalls again, so retrying would multiply the wait (3 attempts
 * took 6 × --read-timeout). Refused, reset or dropped connections and 5xx answers are retried per
 * the policy.
 */
export function mayRetryAfter(policy: Pick<RetryPolicy, 'maxAttempts'>, attemptsMade: number, failure: AttemptFailure): boolean {
  return failure !== 'stall' && mayRetry(policy, attemptsMade);
}

/**
 * After failed attempt number `attemptsMade`: false when the policy allows no other (attempts spent,
 * or a stall), else waits the back-off delay and returns true.
 */
export async function pauseBeforeRetry(
  policy: Pick<RetryPolicy, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'>,
  attemptsMade: number,
  failure: AttemptFailure = 'transient',
  random: () => number = Math.random,
): Promise<boolean> {
  if (!mayRetryAfter(policy, attemptsMade, failure)) return false;
  await sleep(backoffDelayMs(policy, attemptsMade, random));
  return true;
}

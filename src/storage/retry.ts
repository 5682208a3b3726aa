// Provider-neutral helpers for our one RetryPolicy (config.ts). Each driver maps the policy onto its
// SDK's own retry hooks; these functions keep the arithmetic identical everywhere.
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

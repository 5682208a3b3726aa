// The progress line of the long commands (backup, restore, verify) and their interruption: one
// place for what each of them did alike (docs/architecture.md#layers).
import { GeneralError } from '../errors.js';
import { escapeControl } from '../log.js';

export interface Progress {
  /** Replace the line's text. Names in it may come from the store: escaped (docs/format.md#untrusted-text). */
  update(text: string): void;
  stop(): void;
}

/**
 * A spinner on stderr, only when stderr is a terminal and no -q was given: scripts reading stdout
 * or stderr see nothing of it. ora clears its line around anything else written to stderr meanwhile,
 * so a log record is never glued to the spinner's text (progress-line.test.ts checks it).
 */
export async function startProgress(quiet: number, text: string): Promise<Progress | undefined> {
  // A terminal of unknown width (0 columns: a pseudo-terminal nobody sized, as `kubectl exec -t`
  // can give) made ora's line count infinite and its clearing loop endless: no spinner there.
  if (!process.stderr.isTTY || !(process.stderr.columns > 0) || quiet > 0) return undefined;
  const { default: ora } = await import('ora');
  const spinner = ora({ stream: process.stderr, text: escapeControl(text) }).start();
  let stopped = false;
  return {
    update(t) {
      spinner.text = escapeControl(t);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      spinner.stop();
    },
  };
}

/**
 * An abort signal fired by SIGINT or SIGTERM, so a long command stops its transfers and cleans up
 * (a backup is marked FAILED, its uploads aborted) instead of dying mid-request.
 */
export function interruptOnSignals(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => controller.abort(new GeneralError(`interrupted by ${sig}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

const MiB = 1024 * 1024;

/** "12.3/456.7 MiB, 89.0 MiB/s" (or without the total when it is not known). */
export function transferText(bytes: number, startedAt: number, totalBytes?: number): string {
  const secs = Math.max(0.001, (Date.now() - startedAt) / 1000);
  const done = (bytes / MiB).toFixed(1);
  const total = totalBytes === undefined ? '' : `/${(totalBytes / MiB).toFixed(1)}`;
  return `${done}${total} MiB, ${(bytes / MiB / secs).toFixed(1)} MiB/s`;
}

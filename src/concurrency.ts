// The one way we run requests side by side with a bound: over a list known up front (mapBounded) or
// over work that arrives as a listing is read (TaskWindow). A leaf module, used from the storage
// drivers up to the commands.

/**
 * Runs `fn` over `items` with at most `limit` calls in flight (at least one), started in input
 * order; the results keep that order. After a call fails no further call starts, and the first
 * failure is thrown at once: calls already running are not waited for, as with Promise.all.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const width = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  await Promise.all(Array.from({ length: items.length === 0 ? 0 : width }, worker));
  return results;
}

/**
 * Tasks started as their input arrives, at most `limit` at once: add() returns once the task is
 * started and a slot is free for the next one; drain() waits for all. The first failure of a task
 * is thrown by the next add() or drain() (tasks that must not stop the caller catch their own).
 */
export class TaskWindow {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  async add(task: () => Promise<void>): Promise<void> {
    this.throwFailure();
    const p: Promise<void> = task()
      .catch((error: unknown) => void (this.failure ??= { error }))
      .finally(() => this.running.delete(p));
    this.running.add(p);
    while (this.running.size >= Math.max(1, this.limit)) await Promise.race(this.running);
    this.throwFailure();
  }

  async drain(): Promise<void> {
    await Promise.all(this.running);
    this.throwFailure();
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }
}

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
 * Tasks started as their input arrives, at most `limit` at once and, when a budget is given, with
 * their costs (bytes held, say) summed within it. add() starts a task and returns once a slot is
 * free for the next one; a caller that must size the next task first uses room(cost) then start().
 * Tasks may carry a key (a WAL name) to find the ones still running. drain() waits for all. The
 * first failure of a task is kept and thrown by the next add(), room(), check() or drain() (drain
 * after the others settled; tasks that must not stop the caller catch their own).
 */
export class TaskWindow<K = never> {
  private readonly running = new Map<Promise<void>, number>();
  private readonly keyed = new Map<K, Promise<void>>();
  private load = 0;
  private failure: { error: unknown } | undefined;

  /** `budget`: the most the costs of running tasks may add up to (one task runs whatever its cost). */
  constructor(
    private readonly limit: number,
    private readonly budget = Infinity,
  ) {}

  /** Tasks running now. */
  get size(): number {
    return this.running.size;
  }

  /** Whether `limit` tasks are running: room() would wait. */
  get full(): boolean {
    return this.running.size >= Math.max(1, this.limit);
  }

  /** Whether a task started with `key` is still running. */
  has(key: K): boolean {
    return this.keyed.has(key);
  }

  /** Keys of the tasks still running. */
  keys(): K[] {
    return [...this.keyed.keys()];
  }

  /** Start `task` now, whatever the window holds; its cost counts until it settles. */
  start(task: () => Promise<void>, options: { key?: K; cost?: number } = {}): void {
    const cost = options.cost ?? 0;
    let started: Promise<void>;
    try {
      started = task(); // at once, as the caller expects its synchronous part to have run
    } catch (error) {
      started = Promise.reject(error);
    }
    const p: Promise<void> = started
      .catch((error: unknown) => void (this.failure ??= { error }))
      .finally(() => {
        this.running.delete(p);
        if (options.key !== undefined && this.keyed.get(options.key) === p) this.keyed.delete(options.key);
        this.load -= cost;
      });
    this.running.set(p, cost);
    if (options.key !== undefined) this.keyed.set(options.key, p);
    this.load += cost;
  }

  /** Wait until a task costing `cost` may start: a slot free and the cost within the budget. */
  async room(cost = 0): Promise<void> {
    this.check();
    while (this.running.size > 0 && (this.full || this.load + cost > this.budget)) {
      await this.next();
    }
    this.check();
  }

  async add(task: () => Promise<void>, options: { key?: K; cost?: number } = {}): Promise<void> {
    this.check();
    this.start(task, options);
    await this.room();
  }

  /** Settles when one of the running tasks does; never while none runs (race it with a timer). */
  next(): Promise<void> {
    return Promise.race(this.running.keys());
  }

  /** Throw the first failure of a task, if any. */
  check(): void {
    if (this.failure) throw this.failure.error;
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running.keys());
    this.check();
  }
}

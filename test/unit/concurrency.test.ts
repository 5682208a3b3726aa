// src/concurrency.ts, the one bounded pool: how many calls run at once, in which order they start,
// what a failure stops, and the window over work that arrives while it runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapBounded, TaskWindow } from '../../src/concurrency.ts';

/** A task body that records how many run at once. */
function meter() {
  let running = 0;
  const m = {
    peak: 0,
    started: [] as number[],
    async run(i: number, ms: number): Promise<number> {
      m.started.push(i);
      running++;
      m.peak = Math.max(m.peak, running);
      await sleep(ms);
      running--;
      return i * 10;
    },
  };
  return m;
}

describe('mapBounded', () => {
  it('keeps at most `limit` calls in flight, starts them in input order and returns results in that order', async () => {
    const m = meter();
    const items = [5, 1, 4, 1, 3, 2, 6, 1];
    const out = await mapBounded(items, 3, (ms, i) => m.run(i, ms));
    expect(out).toEqual(items.map((_, i) => i * 10));
    expect(m.started).toEqual(items.map((_, i) => i));
    expect(m.peak).toBe(3);
  });

  it('runs one at a time for a limit below 1 and nothing for no items', async () => {
    const m = meter();
    expect(await mapBounded([1, 1, 1], 0, (ms, i) => m.run(i, ms))).toEqual([0, 10, 20]);
    expect(m.peak).toBe(1);
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
  });

  it('throws the first failure at once and starts no call after it', async () => {
    const started: number[] = [];
    const failure = mapBounded([0, 1, 2, 3, 4, 5], 2, async (x) => {
      started.push(x);
      await sleep(x === 1 ? 5 : 30);
      if (x === 1) throw new Error('boom 1');
      return x;
    });
    await expect(failure).rejects.toThrow('boom 1');
    await sleep(80); // what is still running ends; nothing new may start
    expect(started).toEqual([0, 1]);
  });
});

describe('TaskWindow', () => {
  it('bounds the tasks in flight while work arrives, and drain() waits for the last ones', async () => {
    const m = meter();
    const window = new TaskWindow(2);
    const done: number[] = [];
    for (let i = 0; i < 6; i++) await window.add(() => m.run(i, 10).then(() => void done.push(i)));
    expect(m.peak).toBe(2);
    await window.drain();
    expect(done.sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("keeps a task's failure for the next add() or drain(), even when it settled while nobody waited", async () => {
    const window = new TaskWindow(4);
    await window.add(() => sleep(5).then(() => Promise.reject(new Error('late'))));
    await sleep(20); // settled while nobody waits on it
    await expect(window.drain()).rejects.toThrow('late');
  });
});

describe('TaskWindow: room(), costs and keys', () => {
  it('room(cost) waits until the costs in flight plus the next one fit the budget, one task at least', async () => {
    const window = new TaskWindow(8, 100);
    const log: string[] = [];
    const task = (name: string, ms: number) => () => sleep(ms).then(() => void log.push(`end ${name}`));
    await window.room(60);
    window.start(task('a', 20), { cost: 60 });
    await window.room(60); // 60 + 60 > 100: waits for a
    log.push('room for b');
    window.start(task('b', 5), { cost: 60 });
    await window.room(500); // over the budget on its own: allowed once nothing runs
    log.push('room for c');
    await window.drain();
    expect(log).toEqual(['end a', 'room for b', 'end b', 'room for c']);
  });

  it('room() also keeps the count under the limit and throws a failure as soon as it is known; drain() throws it after the others settled', async () => {
    const window = new TaskWindow(2);
    let running = 0;
    let peak = 0;
    let ended = 0;
    const body = (ms: number, fail = false) => async () => {
      running++;
      peak = Math.max(peak, running);
      await sleep(ms);
      running--;
      ended++;
      if (fail) throw new Error('part 2 failed');
    };
    await window.room();
    window.start(body(30));
    await window.room();
    window.start(body(5, true));
    await expect(window.room()).rejects.toThrow('part 2 failed');
    expect(peak).toBe(2);
    expect(() => window.check()).toThrow('part 2 failed');
    await expect(window.drain()).rejects.toThrow('part 2 failed');
    expect(ended).toBe(2); // drain waited for the slow one before throwing
  });

  it('knows the keys of the tasks still running; next() settles when one ends', async () => {
    const window = new TaskWindow<string>(2);
    window.start(() => sleep(5), { key: 'A' });
    expect(window.full).toBe(false);
    window.start(() => sleep(40), { key: 'B' });
    expect(window.size).toBe(2);
    expect(window.full).toBe(true);
    expect(window.has('A') && window.has('B')).toBe(true);
    await window.next();
    expect(window.keys()).toEqual(['B']);
    expect(window.has('A')).toBe(false);
    await window.drain();
    expect(window.size).toBe(0);
  });

  it('a task that throws before its first await is a failure of the window, not of start()', async () => {
    const window = new TaskWindow(1);
    expect(() => window.start(() => { throw new Error('sync'); })).not.toThrow();
    await expect(window.drain()).rejects.toThrow('sync');
  });
});

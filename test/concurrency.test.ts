import { describe, expect, it } from 'vitest';
import { groupCommit, mapWithConcurrency } from '../lib/concurrency.js';

/** One turn of the event loop: lets other writers and flushes run, without a clock. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('mapWithConcurrency', () => {
  it('keeps the input order and never runs more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const results = await mapWithConcurrency([5, 1, 4, 2, 3], 2, async (value) => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => setImmediate(resolve));
      running -= 1;
      return value * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
  });
});

describe('groupCommit', () => {
  /** A flush that records its batches and finishes only when the test says so. */
  function recordingFlush() {
    const batches: { key: string; items: number[] }[] = [];
    const release: (() => void)[] = [];
    const flush = async (key: string, items: readonly number[]): Promise<number> => {
      batches.push({ key, items: [...items] });
      await new Promise<void>((resolve) => release.push(resolve));
      return items.length;
    };
    return { batches, release, flush };
  }
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('flushes the first item at once and everything submitted meanwhile in one next flush; nothing lost or doubled', async () => {
    const { batches, release, flush } = recordingFlush();
    const submit = groupCommit(flush);
    const first = submit('w', 1);
    await tick();
    expect(batches).toEqual([{ key: 'w', items: [1] }]);
    const rest = [2, 3, 4, 5].map((item) => submit('w', item));
    release.shift()!();
    await first;
    await tick();
    expect(batches).toEqual([
      { key: 'w', items: [1] },
      { key: 'w', items: [2, 3, 4, 5] },
    ]);
    release.shift()!();
    // Each submit settles with the flush that carried it.
    expect(await Promise.all([first, ...rest])).toEqual([1, 4, 4, 4, 4]);
    const flushed = batches.flatMap((batch) => batch.items);
    expect(flushed.sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('1,000 submits from concurrent writers: each item flushed exactly once, in far fewer flushes', async () => {
    const seen: number[] = [];
    let flushes = 0;
    const submit = groupCommit(async (_key, items: readonly number[]) => {
      flushes += 1;
      await nextTurn();
      seen.push(...items);
    });
    await Promise.all(
      Array.from({ length: 1000 }, async (_, item) => {
        // Writers arrive over seven turns of the event loop, while flushes run.
        for (let turn = 0; turn < item % 7; turn += 1) await nextTurn();
        await submit('wave', item);
      }),
    );
    expect(seen).toHaveLength(1000);
    expect(new Set(seen).size).toBe(1000);
    expect(flushes).toBeLessThan(100);
  });

  it('a failed flush rejects only the items it carried; the next batch is flushed', async () => {
    let calls = 0;
    const submit = groupCommit(async (_key, items: readonly string[]) => {
      calls += 1;
      await new Promise((resolve) => setImmediate(resolve));
      if (calls === 1) throw new Error(`lost the race with ${items.join(',')}`);
      return items.join(',');
    });
    const first = submit('k', 'a');
    const second = submit('k', 'b');
    const third = submit('k', 'c');
    await expect(first).rejects.toThrow('lost the race with a');
    expect(await second).toBe('b,c');
    expect(await third).toBe('b,c');
  });

  it('keys flush independently', async () => {
    const { batches, release, flush } = recordingFlush();
    const submit = groupCommit(flush);
    const a = submit('a', 1);
    const b = submit('b', 2);
    await tick();
    expect(batches).toEqual([
      { key: 'a', items: [1] },
      { key: 'b', items: [2] },
    ]);
    for (const resolve of release.splice(0)) resolve();
    expect(await Promise.all([a, b])).toEqual([1, 1]);
  });
});

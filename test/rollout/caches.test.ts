import { describe, expect, it } from 'vitest';
import { BoundedCache, createRolloutCaches } from '../../lib/rollout/caches.js';

describe('BoundedCache', () => {
  it.each([
    { name: 'keeps up to its size', size: 2, writes: ['a', 'b'], reads: [], kept: ['a', 'b'] },
    { name: 'drops the oldest past its size', size: 2, writes: ['a', 'b', 'c'], reads: [], kept: ['b', 'c'] },
    { name: 'a read makes an entry the newest', size: 2, writes: ['a', 'b'], reads: ['a'], kept: ['a', 'c'] },
  ])('$name', ({ size, writes, reads, kept }) => {
    const cache = new BoundedCache<string>(size);
    for (const key of writes) cache.set(key, key.toUpperCase());
    for (const key of reads) cache.get(key);
    if (reads.length > 0) cache.set('c', 'C');
    expect(['a', 'b', 'c'].filter((key) => cache.get(key) !== undefined)).toEqual(kept);
  });

  it('forgets a promise that rejects, so the next caller reads again', async () => {
    const cache = new BoundedCache<Promise<string>>(4);
    const failing = cache.set('p', Promise.reject(new Error('Tables down')));
    await expect(failing).rejects.toThrow('Tables down');
    expect(cache.get('p')).toBeUndefined();
  });
});

describe('createRolloutCaches', () => {
  it('two deployments share nothing', async () => {
    const one = createRolloutCaches();
    const two = createRolloutCaches();
    await one.packages.set('microsoft/1', Promise.resolve('AAAA'));
    expect(two.packages.get('microsoft/1')).toBeUndefined();
  });

  it('callers that come while a flush is under way go together in the next, served by its first flush', async () => {
    const { waveCounts } = createRolloutCaches();
    const flushed: number[][] = [];
    const flush = async (items: readonly number[]): Promise<number> => {
      flushed.push([...items]);
      return items.length;
    };
    const results = await Promise.all([1, 2, 3].map((item) => waveCounts('r|0|0', item, flush)));
    expect(flushed).toEqual([[1], [2, 3]]);
    expect(results).toEqual([1, 2, 2]);
  });
});

/**
 * Runs `work` over `items` with at most `limit` in flight; results keep the input order.
 * The first failure rejects after the work already started has settled.
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`concurrency limit must be a positive integer, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

/**
 * Group commit: the first item submitted under a key is flushed at once; items submitted while
 * that flush runs wait and go together in the next one. Each submit settles with the flush that
 * carried its item (its result, or its error). Keys flush independently of each other.
 * For many writers of one hot row: one read-modify-write per batch instead of one per writer.
 */
export function groupCommit<T, R>(
  flush: (key: string, items: readonly T[]) => Promise<R>,
): (key: string, item: T) => Promise<R> {
  const queues = new Map<
    string,
    { item: T; resolve: (result: R) => void; reject: (error: unknown) => void }[]
  >();
  const drain = async (key: string): Promise<void> => {
    for (let batch = queues.get(key); batch && batch.length > 0; batch = queues.get(key)) {
      queues.set(key, []);
      try {
        const result = await flush(
          key,
          batch.map((entry) => entry.item),
        );
        for (const entry of batch) entry.resolve(result);
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
    queues.delete(key);
  };
  return (key, item) =>
    new Promise<R>((resolve, reject) => {
      const waiting = queues.get(key);
      if (waiting) return void waiting.push({ item, resolve, reject });
      queues.set(key, [{ item, resolve, reject }]);
      void drain(key);
    });
}

import { groupCommit } from '../concurrency.js';
import type { PlanRowEntity } from '../fleet/schemas.js';

/**
 * What a worker keeps between the rollout steps it runs: one object per deployment (the app
 * context owns it, beside the storage clients it belongs to), passed in the steps' deps. Rows that
 * never change are read once, and concurrent deliveries share their reads and writes.
 */
export interface RolloutCaches {
  /** Stored packages as base64, by feed and sequence: a stored package never changes. */
  readonly packages: BoundedCache<Promise<string>>;
  /** Pages of plan rows, by rollout, wave and first index: plan rows never change once the rollout exists. */
  readonly planPages: BoundedCache<Promise<Map<number, PlanRowEntity>>>;
  /** Reads of a state row that start together, shared (see steps/reads.ts). */
  readonly stateReads: Grouped;
  /** Counts of one wave's servers that finish together, written together (see steps/account-wave.ts). */
  readonly waveCounts: Grouped;
}

/** A few recent packages; 200 pages of 100 plan rows (20,000 servers). */
export function createRolloutCaches(options: { packages?: number; planPages?: number } = {}): RolloutCaches {
  return {
    packages: new BoundedCache(options.packages ?? 4),
    planPages: new BoundedCache(options.planPages ?? 200),
    stateReads: grouped(),
    waveCounts: grouped(),
  };
}

/**
 * Callers with the same key that come while one flush is under way go together in the next (group
 * commit, lib/concurrency.ts); the first caller's `flush` serves the whole group.
 */
export type Grouped = <T, R>(key: string, item: T, flush: (items: readonly T[]) => Promise<R>) => Promise<R>;

function grouped(): Grouped {
  const join = groupCommit(
    (
      _key: string,
      entries: readonly { item: unknown; flush: (items: readonly unknown[]) => Promise<unknown> }[],
    ) => entries[0]!.flush(entries.map((entry) => entry.item)),
  );
  return <T, R>(key: string, item: T, flush: (items: readonly T[]) => Promise<R>) =>
    join(key, { item, flush: flush as (items: readonly unknown[]) => Promise<unknown> }) as Promise<R>;
}

/** A map that keeps its `size` most recently used entries; a rejected promise is dropped at once. */
export class BoundedCache<V> {
  readonly #entries = new Map<string, V>();

  constructor(readonly size: number) {}

  get(key: string): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      // Most recently used last, so the oldest entries go first.
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): V {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (value instanceof Promise)
      value.catch(() => this.#entries.get(key) === value && this.#entries.delete(key));
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.size) break;
      this.#entries.delete(oldest);
    }
    return value;
  }
}

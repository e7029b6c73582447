import type { TableClient, TableEntity } from '@azure/data-tables';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmfleetError } from '../errors.js';
import { isStatus } from './rows.js';

const baseBackoffInMs = 5;
const maxBackoffInMs = 1_000;

export type StoredEntity = TableEntity<Record<string, unknown>> & { etag: string };

/** Another writer won every attempt; the caller may retry later. Carries the row it last saw. */
export class ConcurrencyConflictError extends EmfleetError {
  override readonly name = 'ConcurrencyConflictError';
  readonly current: StoredEntity | undefined;

  constructor(
    table: string,
    partitionKey: string,
    rowKey: string,
    attempts: number,
    current: StoredEntity | undefined,
  ) {
    super('Conflict', `${table} row (${partitionKey}, ${rowKey}) kept changing under ${attempts} attempts`, {
      context: { table, partitionKey, rowKey, attempts },
    });
    this.current = current;
  }
}

/** What a mutation wants: keep the row as it is, write this entity, or delete the row. */
export type Mutation =
  | { readonly kind: 'keep' }
  | { readonly kind: 'write'; readonly entity: TableEntity<Record<string, unknown>> }
  | { readonly kind: 'delete' };

export interface MutationResult {
  readonly before: StoredEntity | undefined;
  readonly mutation: Mutation;
}

/**
 * Read, compute the next state in memory, write it only if it changed, conditional on the ETag
 * that was read (412 → read again and recompute). Never a blind last-writer-wins write.
 */
export async function mutateEntity(
  client: TableClient,
  partitionKey: string,
  rowKey: string,
  mutate: (current: StoredEntity | undefined) => Mutation,
  options: { maxAttempts?: number } = {},
): Promise<MutationResult> {
  const maxAttempts = options.maxAttempts ?? 25;
  let current: StoredEntity | undefined;
  return retryConflicts(
    async () => {
      current = await getEntityOrUndefined(client, partitionKey, rowKey);
      const mutation = mutate(current);
      if (mutation.kind === 'keep') return { before: current, mutation };
      if (mutation.kind === 'delete') {
        if (current) await client.deleteEntity(partitionKey, rowKey, { etag: current.etag });
      } else if (current) {
        await client.updateEntity({ ...mutation.entity, partitionKey, rowKey }, 'Replace', {
          etag: current.etag,
        });
      } else {
        await client.createEntity({ ...mutation.entity, partitionKey, rowKey });
      }
      return { before: current, mutation };
    },
    {
      maxAttempts,
      // 412: changed since read; 409: created by someone else since read; 404: deleted since read.
      statuses: [412, 409, 404],
      exhausted: () =>
        new ConcurrencyConflictError(client.tableName, partitionKey, rowKey, maxAttempts, current),
    },
  );
}

/**
 * The retry loop of every conditional write: `attempt` reads, decides and writes; when the write
 * loses a race (one of `statuses`, 412 by default) it runs again after a backoff, and after
 * `maxAttempts` (25 by default) the `exhausted` error is thrown.
 */
export async function retryConflicts<T>(
  attempt: (round: number) => Promise<T>,
  options: { maxAttempts?: number; statuses?: readonly number[]; exhausted: () => Error },
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 25;
  const statuses = options.statuses ?? [412];
  for (let round = 1; round <= maxAttempts; round++) {
    try {
      return await attempt(round);
    } catch (error) {
      if (!isStatus(error, ...statuses)) throw error;
      // Full jitter, exponential, capped: many writers on one hot row (a wave's counters) spread out.
      await sleep(Math.random() * Math.min(maxBackoffInMs, baseBackoffInMs * 2 ** round));
    }
  }
  throw options.exhausted();
}

export async function getEntityOrUndefined(
  client: TableClient,
  partitionKey: string,
  rowKey: string,
): Promise<StoredEntity | undefined> {
  try {
    return (await client.getEntity<Record<string, unknown>>(partitionKey, rowKey)) as StoredEntity;
  } catch (error) {
    if (isStatus(error, 404)) return undefined;
    throw error;
  }
}

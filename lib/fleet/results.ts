import { odata } from '@azure/data-tables';
import type { Logger } from '../log.js';
import { upsertAction, writeInTransactions } from './batch.js';
import { getEntityOrUndefined, mutateEntity, type Mutation } from './optimistic.js';
import { readRows, validateRow, type ReadResult } from './rows.js';
import { resultRow, type ResultRow } from './schemas.js';
import type { FleetTables } from './storage.js';

export type ResultRecord = Omit<ResultRow, 'partitionKey' | 'rowKey'> & {
  readonly server: string;
  readonly operationId: string;
};

/**
 * Upserts results keyed by (server, operation id): a redelivered message rewrites the same row
 * instead of adding one. Rows of one server go in one transaction (100 at most).
 */
export async function upsertResults(
  tables: FleetTables,
  results: readonly ResultRecord[],
  options: { concurrency?: number } = {},
): Promise<number> {
  const client = await tables.client('Results');
  return writeInTransactions(
    client,
    results.map(({ server, operationId, outcomes, expiresAt, ...rest }) =>
      upsertAction({
        partitionKey: server.toLowerCase(),
        rowKey: operationId,
        ...rest,
        outcomes: JSON.stringify(outcomes),
        ...(expiresAt === undefined ? {} : { expiresAt }),
      }),
    ),
    options,
  );
}

export async function readResults(
  tables: FleetTables,
  server: string,
  options: { logger?: Logger } = {},
): Promise<ReadResult<ResultRow>> {
  const client = await tables.client('Results');
  return readRows(client, 'Results', resultRow, {
    filter: odata`PartitionKey eq ${server.toLowerCase()}`,
    ...options,
  });
}

/** A result as stored: Completed (counted) or InProgress (a failed attempt's outcomes, for the poison handler). */
export interface StoredResult {
  readonly status: ResultRow['status'];
  readonly outcomes: ResultRow['outcomes'];
}

/** One operation's stored result; undefined when there is none or its row is invalid. */
export async function readResult(
  tables: FleetTables,
  server: string,
  operationId: string,
): Promise<StoredResult | undefined> {
  const client = await tables.client('Results');
  const entity = await getEntityOrUndefined(client, server, operationId);
  if (!entity) return undefined;
  const checked = validateRow('Results', resultRow, entity);
  return checked.ok ? { status: checked.row.status, outcomes: checked.row.outcomes } : undefined;
}

/**
 * A failed attempt's outcomes, InProgress: not a result (nothing counts it), only what the poison
 * handler reports. Conditional on the row read: a Completed result (another delivery of the same
 * message got through) is never replaced by it.
 */
export async function recordAttempt(
  tables: FleetTables,
  attempt: Omit<ResultRecord, 'status' | 'expiresAt'>,
): Promise<void> {
  const client = await tables.client('Results');
  const { server, operationId, outcomes, ...rest } = attempt;
  await mutateEntity(client, server, operationId, (current): Mutation => {
    if (current?.['status'] === 'Completed') return { kind: 'keep' };
    return {
      kind: 'write',
      entity: {
        partitionKey: server,
        rowKey: operationId,
        ...rest,
        status: 'InProgress',
        outcomes: JSON.stringify(outcomes),
      },
    };
  });
}

import { odata } from '@azure/data-tables';
import type { Logger } from '../log.js';
import { upsertAction, writeInTransactions } from './batch.js';
import { readRows, type ReadResult } from './rows.js';
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

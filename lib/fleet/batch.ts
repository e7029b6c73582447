import type { TableClient, TableEntity, TransactionAction } from '@azure/data-tables';
import { mapWithConcurrency } from '../concurrency.js';

/** Azure Tables accepts at most 100 operations in one transaction, all in one partition. */
export const maxTransactionSize = 100;

export type Entity = TableEntity<Record<string, unknown>>;

/**
 * Upserts (or deletes) rows in as few round trips as the service allows: grouped by partition,
 * 100 per transaction, a bounded number of transactions in flight. Each transaction is atomic.
 */
export async function writeInTransactions(
  client: TableClient,
  actions: readonly TransactionAction[],
  options: { concurrency?: number } = {},
): Promise<number> {
  const byPartition = new Map<string, TransactionAction[]>();
  for (const action of actions) {
    const partitionKey = action[1].partitionKey;
    const list = byPartition.get(partitionKey) ?? [];
    list.push(action);
    byPartition.set(partitionKey, list);
  }
  const transactions: TransactionAction[][] = [];
  for (const list of byPartition.values()) {
    for (let start = 0; start < list.length; start += maxTransactionSize)
      transactions.push(list.slice(start, start + maxTransactionSize));
  }
  await mapWithConcurrency(transactions, options.concurrency ?? 8, (transaction) =>
    client.submitTransaction(transaction),
  );
  return transactions.length;
}

export function upsertAction(entity: Entity): TransactionAction {
  return ['upsert', entity, 'Replace'];
}

import { StorageQueueSender } from './queues.js';
import { FleetTables, type StorageConnection } from './storage.js';

/** Tables and queues of one deployment, named with its prefixes; the CLI and the app build them alike. */
export function storageClients(
  connection: StorageConnection,
  prefixes: { readonly tablePrefix?: string | undefined; readonly queuePrefix?: string | undefined },
): { tables: FleetTables; queues: StorageQueueSender } {
  return {
    tables: new FleetTables(
      connection,
      prefixes.tablePrefix === undefined ? {} : { prefix: prefixes.tablePrefix },
    ),
    queues: new StorageQueueSender(
      connection,
      prefixes.queuePrefix === undefined ? {} : { prefix: prefixes.queuePrefix },
    ),
  };
}

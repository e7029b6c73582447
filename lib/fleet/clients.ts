import { StorageQueueSender } from './queues.js';
import { FleetTables, type StorageConnection } from './storage.js';

/** Tables and queues of one deployment, named with its prefixes; the CLI and the app build them alike. */
export function storageClients(
  connection: StorageConnection,
  settings: {
    readonly EMFLEET_TABLE_PREFIX?: string | undefined;
    readonly EMFLEET_QUEUE_PREFIX?: string | undefined;
  },
): { tables: FleetTables; queues: StorageQueueSender } {
  return {
    tables: new FleetTables(
      connection,
      settings.EMFLEET_TABLE_PREFIX === undefined ? {} : { prefix: settings.EMFLEET_TABLE_PREFIX },
    ),
    queues: new StorageQueueSender(
      connection,
      settings.EMFLEET_QUEUE_PREFIX === undefined ? {} : { prefix: settings.EMFLEET_QUEUE_PREFIX },
    ),
  };
}

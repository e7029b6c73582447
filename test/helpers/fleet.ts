import { randomBytes } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { inject } from 'vitest';
import { FleetTables } from '../../lib/fleet/storage.js';

export function azuriteConnectionString(): string {
  return inject('azuriteConnectionString');
}

/** Tables under a fresh prefix in the run's Azurite, so tests never see each other's rows. */
export function freshTables(): { tables: FleetTables; prefix: string } {
  const prefix = `t${randomBytes(5).toString('hex')}`;
  return {
    tables: new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix },
    ),
    prefix,
  };
}

/** A raw client on one of a prefix's tables, for planting and inspecting rows behind the code's back. */
export function rawTable(prefix: string, table: string): TableClient {
  return TableClient.fromConnectionString(azuriteConnectionString(), `${prefix}${table}`, {
    allowInsecureConnection: true,
  });
}

/** Every entity of a table, unvalidated; a table never created reads as empty. */
export async function allEntities(client: TableClient): Promise<Record<string, unknown>[]> {
  const entities: Record<string, unknown>[] = [];
  try {
    for await (const entity of client.listEntities<Record<string, unknown>>()) entities.push(entity);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return [];
    throw error;
  }
  return entities;
}

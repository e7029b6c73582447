import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { FleetTables } from '../../lib/fleet/storage.js';

export function azuriteConnectionString(): string {
  return inject('azuriteConnectionString');
}

/** Tables under a fresh prefix in the run's Azurite, so tests never see each other's rows. */
export function freshTables(): { tables: FleetTables; prefix: string } {
  const prefix = `t${randomBytes(5).toString('hex')}`;
  return { tables: new FleetTables({ kind: 'connectionString', connectionString: azuriteConnectionString() }, { prefix }), prefix };
}

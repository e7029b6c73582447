import { randomBytes } from 'node:crypto';
import { upsertAction, writeInTransactions } from './batch.js';
import type { FleetTables } from './storage.js';

/** One change, as the Audit table keeps it: who, what, on what, old → new, from where. */
export interface AuditEntry {
  readonly actor: string;
  /** e.g. policy.set, policy.block, policy.sync, server.add */
  readonly action: string;
  /** e.g. org:contoso, server:ex01 */
  readonly target: string;
  readonly source: string;
  readonly before: unknown;
  readonly after: unknown;
}

const maxTicks = 9_999_999_999_999;

/**
 * Partition = UTC day (yyyymmdd); row key = inverted milliseconds, so a day reads newest first,
 * plus a random suffix so entries in the same millisecond never collide.
 */
export function auditEntity(entry: AuditEntry, at: Date): Record<string, unknown> & { partitionKey: string; rowKey: string } {
  const day = at.toISOString().slice(0, 10).replace(/-/g, '');
  const inverted = String(maxTicks - at.getTime()).padStart(13, '0');
  return {
    partitionKey: day,
    rowKey: `${inverted}-${randomBytes(4).toString('hex')}`,
    at,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    source: entry.source,
    before: JSON.stringify(entry.before ?? null),
    after: JSON.stringify(entry.after ?? null),
  };
}

export async function writeAudit(tables: FleetTables, entries: readonly AuditEntry[], now: Date = new Date()): Promise<void> {
  if (entries.length === 0) return;
  const client = await tables.client('Audit');
  await writeInTransactions(client, entries.map((entry) => upsertAction(auditEntity(entry, now))));
}

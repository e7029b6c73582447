import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { writeInTransactions } from './batch.js';
import { isStatus } from './rows.js';
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
export function auditEntity(
  entry: AuditEntry,
  at: Date,
): Record<string, unknown> & { partitionKey: string; rowKey: string } {
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

/**
 * Appends entries (create, never update: operators may only add to the Audit table) with the
 * Microsoft Entra identity Storage sees beside the actor the caller names. With a logger (the
 * Functions app passes its invocation logger) each entry is logged too as `AuditRecorded`, which
 * Application Insights keeps as a second copy an operator cannot edit; writes made outside the app
 * (the CLI) are recorded by Storage's own resource logs (infra/app/storage.bicep).
 */
export async function writeAudit(
  tables: FleetTables,
  entries: readonly AuditEntry[],
  now: Date = new Date(),
  options: { logger?: Logger } = {},
): Promise<void> {
  if (entries.length === 0) return;
  const identity = await tables.identity();
  const client = await tables.client('Audit');
  const entities = entries.map((entry) => ({
    ...auditEntity(entry, now),
    ...(identity ? { identity } : {}),
  }));
  try {
    await writeInTransactions(
      client,
      entities.map((entity) => ['create', entity] as const),
    );
  } catch (error) {
    // Row keys are unique (time + random): a conflict is this very write, retried after a lost answer.
    if (!isStatus(error, 409)) throw error;
  }
  for (const entity of entities) options.logger?.info('AuditRecorded', { ...entity, at: now.toISOString() });
}

import { z } from 'zod';
import { mutateEntity, getEntityOrUndefined } from './optimistic.js';
import { validateRow } from './rows.js';
import { mitigationIdList } from './schemas.js';
import { tableKey } from '../model/names.js';
import type { FleetTables } from './storage.js';

/** What emfleet remembers about polling one feed: validators, connectivity, the last rejection. */
export const feedStateRow = z.object({
  partitionKey: tableKey,
  rowKey: z.literal('feed'),
  /**
   * The feed's own ETag for the next conditional GET. Not `etag`: the Tables SDK maps a property of
   * that name to the row's ETag (`odata.etag`) both ways, so it was never stored.
   */
  feedEtag: z.string().default(''),
  lastModified: z.string().default(''),
  lastPollAt: z.date().optional(),
  lastSuccessAt: z.date().optional(),
  lastErrorAt: z.date().optional(),
  lastError: z.string().default(''),
  lastRejectedAt: z.date().optional(),
  lastRejectedSha256: z.string().default(''),
  lastRejectedReason: z.string().default(''),
  /** Set while the feed is frozen (lib/rollout/frozen.ts): its current package no longer verifies, or it left the settings. */
  frozenAt: z.date().optional(),
  frozenReason: z.string().default(''),
  frozenDetail: z.string().default(''),
  /** A verified package whose age cannot be told and that would withdraw mitigations, held for an admin (lib/rollout/poll.ts). */
  heldSha256: z.string().default(''),
  heldAt: z.date().optional(),
  heldWithdrawn: mitigationIdList.default([]),
  /** What `emfleet feed accept SHA` (or the API) approved: the next poll that finds this package rolls it out. */
  approvedSha256: z.string().default(''),
  approvedBy: z.string().default(''),
});
export type FeedState = z.infer<typeof feedStateRow>;

/** Kept in the Packages table, in the feed's partition, beside its packages and `latest` pointer. */
export async function readFeedState(tables: FleetTables, feed: string): Promise<FeedState | undefined> {
  const client = await tables.client('Packages');
  const entity = await getEntityOrUndefined(client, feed, 'feed');
  if (!entity) return undefined;
  const checked = validateRow('Packages', feedStateRow, entity);
  return checked.ok ? checked.row : undefined;
}

export async function updateFeedState(
  tables: FleetTables,
  feed: string,
  change: (current: Partial<FeedState>) => Partial<FeedState>,
): Promise<void> {
  const client = await tables.client('Packages');
  await mutateEntity(client, feed, 'feed', (current) => {
    const checked = current ? validateRow('Packages', feedStateRow, current) : undefined;
    const base: Partial<FeedState> = checked?.ok ? checked.row : {};
    const next = { ...base, ...change(base), partitionKey: feed, rowKey: 'feed' };
    const defined = Object.fromEntries(
      Object.entries(next)
        .filter(([, value]) => value !== undefined)
        .map(([key, value]) => [key, Array.isArray(value) ? JSON.stringify(value) : value]),
    ) as Record<string, unknown> & { partitionKey: string; rowKey: string };
    return { kind: 'write', entity: defined };
  });
}

import { buildMismatch } from './agent-facts.js';
import { readFeedState, type FeedState } from './feeds.js';
import { latestPackage, listStoredFeeds, type StoredPackage } from './packages.js';
import { listRollouts } from './rollouts.js';
import { rolloutStates } from './schemas.js';
import { listServers } from './servers.js';
import type { FleetTables } from './storage.js';
import type { Settings } from '../config/index.js';
import type { Logger } from '../log.js';
import { microsoftFeedName } from '../ocs/client.js';
import { activeHolds, type Hold } from '../rollout/holds.js';

/** How many build mismatches `status` names; the count covers the rest. */
const namedMismatches = 20;

const iso = (date: Date | undefined): string | null => date?.toISOString() ?? null;

export interface FeedStatus {
  readonly name: string;
  readonly url: string;
  readonly lastPollAt: string | null;
  readonly lastSuccessAt: string | null;
  readonly lastErrorAt: string | null;
  readonly lastError: string | null;
  readonly lastRejected: { readonly at: string | null; readonly sha256: string; readonly reason: string } | null;
  readonly package: { readonly sequence: number; readonly sha256: string; readonly signingTime: string | null; readonly acceptedAt: string | null; readonly mitigationIds: readonly string[] } | null;
  /** Set while reconcile keeps the feed frozen (lib/rollout/frozen.ts): nothing of it is applied or removed. */
  readonly frozen: { readonly since: string | null; readonly reason: string; readonly detail: string } | null;
}

/** What `GET /api/status` and `emfleet status` show. */
export interface FleetStatus {
  readonly org: string;
  readonly feeds: readonly FeedStatus[];
  readonly servers: {
    readonly total: number;
    readonly invalidRows: number;
    readonly byRing: Record<string, number>;
    /** Servers whose agent reports another build than was registered; the first few named. */
    readonly buildMismatches: number;
    readonly buildMismatchServers: readonly { readonly server: string; readonly registered: string; readonly reported: string }[];
  };
  readonly rollouts: { readonly total: number; readonly byState: Record<string, number> };
  /** Mitigations a halted or aborted rollout holds: reconcile does not reapply them. */
  readonly holds: readonly Hold[];
}

/** Each feed's polling and current package, and how many servers and rollouts there are. */
export async function fleetStatus(deps: { tables: FleetTables; settings: Settings; logger: Logger }): Promise<FleetStatus> {
  const { tables, settings, logger } = deps;
  const feeds = [{ name: microsoftFeedName, url: settings.EMFLEET_OCS_URL }, ...settings.EMFLEET_FEEDS.map(({ name, url }) => ({ name, url }))];
  const packages = new Map<string, StoredPackage | undefined>();
  const [feedStates, servers, rollouts] = await Promise.all([
    Promise.all(feeds.map((feed) => feedStatus(tables, feed, packages))).then(async (configured) => [...configured, ...(await unconfiguredFrozenFeeds(tables, feeds))]),
    listServers(tables, settings.EMFLEET_ORG, { logger }),
    listRollouts(tables, { logger }),
  ]);
  // A ring name cannot hold parentheses, so "(none)" never collides with a real ring.
  const byRing = countBy(servers.rows, (row) => row.ring || '(none)');
  const mismatches = servers.rows.flatMap((row) => {
    const mismatch = buildMismatch(row);
    return mismatch ? [{ server: row.rowKey, ...mismatch }] : [];
  });
  const byState = { ...Object.fromEntries(rolloutStates.map((state) => [state, 0])), ...countBy(rollouts, (row) => row.state) };
  return {
    org: settings.EMFLEET_ORG,
    feeds: feedStates,
    servers: { total: servers.rows.length, invalidRows: servers.problems.length, byRing, buildMismatches: mismatches.length, buildMismatchServers: mismatches.slice(0, namedMismatches) },
    rollouts: { total: rollouts.length, byState },
    holds: activeHolds(rollouts, currentContent(feedStates.map((feed) => feed.name), packages)),
  };
}

async function feedStatus(tables: FleetTables, feed: { name: string; url: string }, packages: Map<string, StoredPackage | undefined>): Promise<FeedStatus> {
  const [state, current] = await Promise.all([readFeedState(tables, feed.name), latestPackage(tables, feed.name)]);
  packages.set(feed.name, current);
  return feedStatusOf(feed, state, current);
}

/** Each feed's current content as stored with its package; a feed without it (no package, an older row) keeps its holds. */
export function currentContent(feeds: readonly string[], packages: ReadonlyMap<string, StoredPackage | undefined>): Map<string, Readonly<Record<string, string>>> {
  return new Map(feeds.flatMap((feed) => {
    const content = packages.get(feed)?.content;
    return content ? [[feed, content] as const] : [];
  }));
}

/** Feeds gone from the settings that reconcile keeps frozen because servers still have their mitigations (no URL any more). */
async function unconfiguredFrozenFeeds(tables: FleetTables, configured: readonly { name: string }[]): Promise<FeedStatus[]> {
  const names = (await listStoredFeeds(tables)).filter((name) => !configured.some((feed) => feed.name === name));
  const found = await Promise.all(names.map((name) => feedStatus(tables, { name, url: '' }, new Map())));
  return found.filter((feed) => feed.frozen !== null);
}

/** A feed's record and current package as `emfleet status` shows them (the dashboard adds to it). */
export function feedStatusOf(feed: { name: string; url: string }, state: FeedState | undefined, current: StoredPackage | undefined): FeedStatus {
  return {
    name: feed.name,
    url: feed.url,
    lastPollAt: iso(state?.lastPollAt),
    lastSuccessAt: iso(state?.lastSuccessAt),
    lastErrorAt: iso(state?.lastErrorAt),
    lastError: state?.lastError || null,
    lastRejected: state?.lastRejectedSha256 ? { at: iso(state.lastRejectedAt), sha256: state.lastRejectedSha256, reason: state.lastRejectedReason } : null,
    package: current ? { sequence: current.sequence, sha256: current.sha256, signingTime: iso(current.signingTime), acceptedAt: iso(current.acceptedAt), mitigationIds: current.mitigationIds } : null,
    frozen: state?.frozenReason ? { since: iso(state.frozenAt), reason: state.frozenReason, detail: state.frozenDetail } : null,
  };
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}


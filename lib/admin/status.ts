import type { AppConfig } from '../config/index.js';
import { mapWithConcurrency } from '../concurrency.js';
import { feedView, readCurrentFeeds, type CurrentFeed } from '../dashboard/feeds.js';
import { rolloutView } from '../dashboard/overview.js';
import type { FeedView, RolloutView } from '../dashboard/types.js';
import { buildMismatch } from '../fleet/agent-facts.js';
import { readFeedState } from '../fleet/feeds.js';
import { latestPackage, listStoredFeeds } from '../fleet/packages.js';
import { listRollouts, readRollout } from '../fleet/rollouts.js';
import { readRows } from '../fleet/rows.js';
import { resultRow, serverRow, type RolloutStateRow } from '../fleet/schemas.js';
import { isActive, rolloutStates } from '../model/rollout.js';
import type { Outcome } from '../model/outcomes.js';
import type { FleetTables } from '../fleet/storage.js';
import { currentContent } from '../fleet/status.js';
import { activeHolds, type Hold } from '../rollout/holds.js';
import { nextOccurrence } from '../ncrontab.js';
import type { Logger } from '../log.js';
import { odata } from '@azure/data-tables';

/*
 * `emfleet status` and `GET /api/status`: the whole story on one page. Read with a fixed number
 * of paged queries whatever the fleet's size (Servers once, Results once, Rollouts once, plus one
 * partition query per rollout shown); the summary itself is a pure function over plain data.
 */

export interface FeedStatus extends FeedView {
  /** The feed's mitigations a halted or aborted rollout holds (lib/rollout/holds.ts): reconcile does not re-apply them. */
  readonly held: readonly Hold[];
}

export interface BuildMismatch {
  readonly server: string;
  readonly registered: string;
  readonly reported: string;
}

export interface SilentAgent {
  readonly server: string;
  readonly lastSeen: string | null;
}

export interface StatusServer {
  readonly name: string;
  readonly ring: string;
  /** As the agent reports it (lib/fleet/agent-facts.ts keeps it in step), else as registered. */
  readonly build: string;
  /** What `servers add --build` said, kept when the agent's report differs; '' when they agree. */
  readonly registeredBuild: string;
  readonly agentVersion: string;
  readonly lastSeen?: Date | undefined;
}

/** What `GET /api/status` and `emfleet status --json` answer. */
export interface FleetStatus {
  readonly org: string;
  readonly generatedAt: string;
  readonly feeds: readonly FeedStatus[];
  /** Rollouts not yet ended (Planned, Running, Baking, Paused), with each wave's progress. */
  readonly rolloutsInFlight: readonly RolloutView[];
  readonly rollouts: { readonly total: number; readonly byState: Record<string, number> };
  /** Every hold in force, one per feed and mitigation (as `feeds[].held`, in one list). */
  readonly holds: readonly Hold[];
  readonly servers: {
    readonly total: number;
    readonly invalidRows: number;
    readonly byRing: Record<string, number>;
    /** Each server's latest result per mitigation of the current packages, counted by outcome; `NoResult` where there is none yet. */
    readonly byOutcome: Record<string, number>;
    /** The first `maxListedServers` of `buildMismatchCount`. */
    readonly buildMismatches: readonly BuildMismatch[];
    readonly buildMismatchCount: number;
    /** Agents not heard from for more than two reconcile intervals (`silentAfterMs`), or never. */
    readonly silentAgents: readonly SilentAgent[];
    readonly silentAgentCount: number;
    readonly silentAfterMs: number;
  };
}

/** At most this many servers are named in a list (mismatches, silent agents); the count is always whole. */
export const maxListedServers = 100;

export interface StatusInput {
  readonly org: string;
  readonly now: Date;
  readonly feeds: readonly FeedView[];
  readonly rollouts: readonly RolloutStateRow[];
  readonly holds: readonly Hold[];
  readonly rolloutsInFlight: readonly RolloutView[];
  readonly servers: readonly StatusServer[];
  readonly invalidServerRows: number;
  /** Latest outcome by server, then by mitigation id. */
  readonly latestOutcomes: ReadonlyMap<string, ReadonlyMap<string, Outcome>>;
  readonly reconcileIntervalMs: number;
}

/** The summary (pure). */
export function summarizeStatus(input: StatusInput): FleetStatus {
  const currentIds = [...new Set(input.feeds.flatMap((feed) => feed.package?.mitigationIds ?? []))];
  const byOutcome: Record<string, number> = {};
  for (const server of input.servers) {
    const latest = input.latestOutcomes.get(server.name);
    for (const id of currentIds) {
      const outcome = latest?.get(id) ?? 'NoResult';
      byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
    }
  }
  const silentAfterMs = 2 * input.reconcileIntervalMs;
  const silent = input.servers.filter(
    (server) => !server.lastSeen || input.now.getTime() - server.lastSeen.getTime() > silentAfterMs,
  );
  const mismatched = input.servers.flatMap((server) => {
    const mismatch = buildMismatch(server);
    return mismatch ? [{ server: server.name, ...mismatch }] : [];
  });
  return {
    org: input.org,
    generatedAt: input.now.toISOString(),
    feeds: input.feeds.map((feed) => ({
      ...feed,
      held: input.holds.filter((hold) => hold.feed === feed.name),
    })),
    holds: input.holds,
    rolloutsInFlight: input.rolloutsInFlight,
    rollouts: {
      total: input.rollouts.length,
      byState: {
        ...Object.fromEntries(rolloutStates.map((state) => [state, 0])),
        ...countBy(input.rollouts, (rollout) => rollout.state),
      },
    },
    servers: {
      total: input.servers.length,
      invalidRows: input.invalidServerRows,
      // A ring name cannot hold parentheses, so "(none)" never collides with a real ring.
      byRing: countBy(input.servers, (server) => server.ring || '(none)'),
      byOutcome,
      buildMismatches: mismatched.slice(0, maxListedServers),
      buildMismatchCount: mismatched.length,
      silentAgents: silent
        .slice(0, maxListedServers)
        .map((server) => ({ server: server.name, lastSeen: server.lastSeen?.toISOString() ?? null })),
      silentAgentCount: silent.length,
      silentAfterMs,
    },
  };
}

/** Time between two reconciles: the gap between the schedule's next two occurrences. */
export function reconcileIntervalMs(schedule: string, now: Date): number {
  const next = nextOccurrence(schedule, now);
  return nextOccurrence(schedule, next).getTime() - next.getTime();
}

/** Reads everything the summary needs. */
export async function readStatus(
  deps: { tables: FleetTables; config: AppConfig; logger: Logger },
  options: { now?: Date } = {},
): Promise<FleetStatus> {
  const now = options.now ?? new Date();
  const { tables, config, logger } = deps;
  const [feeds, rollouts, servers, latestOutcomes] = await Promise.all([
    readCurrentFeeds(deps),
    listRollouts(tables, { logger }),
    readRows(await tables.client('Servers'), 'Servers', serverRow, {
      filter: odata`PartitionKey eq ${config.org}`,
      logger,
    }),
    readLatestOutcomes(tables, logger),
  ]);
  const running = rollouts.filter((rollout) => isActive(rollout.state));
  const [detailed, unconfigured] = await Promise.all([
    mapWithConcurrency(running, 8, (rollout) => readRollout(tables, rollout.partitionKey)),
    unconfiguredFrozenFeeds(tables, feeds),
  ]);
  return summarizeStatus({
    org: config.org,
    now,
    feeds: [...feeds.map(feedView), ...unconfigured],
    rollouts,
    holds: activeHolds(
      rollouts,
      currentContent(
        feeds.map((feed) => feed.name),
        new Map(feeds.map((feed) => [feed.name, feed.stored])),
      ),
    ),
    rolloutsInFlight: detailed.map(({ state, waves }) => rolloutView(state, waves)),
    servers: servers.rows.map((row) => ({
      name: row.rowKey,
      ring: row.ring,
      build: row.build,
      registeredBuild: row.registeredBuild,
      agentVersion: row.agentVersion,
      lastSeen: row.lastSeen,
    })),
    invalidServerRows: servers.problems.length,
    latestOutcomes,
    reconcileIntervalMs: reconcileIntervalMs(config.reconcileSchedule, now),
  });
}

/** Feeds gone from the settings that reconcile keeps frozen because servers still have their mitigations (no URL any more). */
async function unconfiguredFrozenFeeds(
  tables: FleetTables,
  configured: readonly CurrentFeed[],
): Promise<FeedView[]> {
  const names = (await listStoredFeeds(tables)).filter(
    (name) => !configured.some((feed) => feed.name === name),
  );
  const found = await Promise.all(
    names.map(async (name) => {
      const [state, stored] = await Promise.all([readFeedState(tables, name), latestPackage(tables, name)]);
      return feedView({ name, url: '', problem: 'not in the settings', state, stored, verified: undefined });
    }),
  );
  return found.filter((feed) => feed.frozen !== null);
}

/**
 * Each server's latest completed outcome per mitigation, from one paged scan of Results (the
 * table holds a row per server and operation, so the scan grows with history, not round trips).
 */
export async function readLatestOutcomes(
  tables: FleetTables,
  logger: Logger,
): Promise<Map<string, Map<string, Outcome>>> {
  const { rows } = await readRows(await tables.client('Results'), 'Results', resultRow, {
    filter: odata`status eq ${'Completed'}`,
    logger,
  });
  const latestAt = new Map<string, number>();
  const latest = new Map<string, Map<string, Outcome>>();
  for (const row of rows) {
    let byId = latest.get(row.partitionKey);
    if (!byId) latest.set(row.partitionKey, (byId = new Map()));
    for (const [id, { outcome }] of Object.entries(row.outcomes)) {
      const key = `${row.partitionKey}|${id}`;
      if ((latestAt.get(key) ?? -Infinity) > row.at.getTime()) continue;
      latestAt.set(key, row.at.getTime());
      byId.set(id, outcome);
    }
  }
  return latest;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

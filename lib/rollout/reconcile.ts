import { listRollouts } from '../fleet/rollouts.js';
import { isActive } from '../model/rollout.js';
import type { EocsPackage } from '../package/model.js';
import { findDrift, type LeftAlone } from './drift.js';
import { checkStoredFeeds, frozenFeeds, frozenIds, recordFrozenFeeds, type FrozenReason } from './frozen.js';
import { activeHolds, contentHashes, withoutHeld, type HeldOnServer, type Hold } from './holds.js';
import { assignWaves, type ServerWork } from './plan.js';
import type { Feed } from '../ocs/feeds.js';
import type { PollDeps } from './poll.js';
import { fleetSnapshot, startPlannedRollout } from './start.js';
import { sweepReportedState, type AgentStatusSource } from './sweep.js';

/**
 * What a poll needs, less the feed fetch (reconcile works from stored packages only), plus the
 * agents to ask what is in place. Without `agents`, the reported state is what rollouts recorded.
 */
export type ReconcileDeps = Omit<PollDeps, 'fetch'> & {
  readonly agents?: AgentStatusSource;
  /** Feeds whose settings cannot be used (lib/ocs/feeds.ts feedsOf): frozen as `Misconfigured`, with this error. */
  readonly feedProblems?: readonly { feed: string; error: string }[];
};

export interface ReconcileReport {
  readonly feed: string;
  readonly rolloutId?: string;
  readonly servers: number;
  readonly leftAlone: readonly LeftAlone[];
  readonly deferred?: string;
  /** Per server, what the fix-up reapplies and removes, and why. */
  readonly changes: readonly ServerChange[];
  /** Per server, the mitigations a halted or aborted rollout kept from it. */
  readonly held: readonly HeldOnServer[];
  /** The holds in force for this feed. */
  readonly holds: readonly Hold[];
  /** Nothing was written, sent or notified: this is what a reconcile would do now. */
  readonly dryRun: boolean;
  /** Set when the feed is frozen: nothing of it was applied or removed. */
  readonly frozen?: FrozenReason;
}

export interface ServerChange {
  readonly server: string;
  readonly reapply: readonly { readonly mitigation: string; readonly reason: string }[];
  readonly remove: readonly { readonly mitigation: string; readonly reason: string }[];
}

export interface ReconcileOptions {
  /** Read and decide only: the sweep's answers are not stored, no rollout starts, nothing is notified. */
  readonly dryRun?: boolean;
}

/**
 * The hourly fix-up (DESIGN §1, §7): per feed, the drift between the current package under
 * current policy and what servers report, rolled out through the same waves and brake. A feed
 * with a rollout still under way is left for the next hour, so fix-ups never pile up. What a
 * halted or aborted rollout holds is never reapplied (ReconcileHeld); removals go ahead.
 */
export async function reconcile(
  deps: ReconcileDeps,
  feeds: readonly Feed[],
  options: ReconcileOptions = {},
): Promise<ReconcileReport[]> {
  const dryRun = options.dryRun ?? false;
  const now = deps.now?.() ?? new Date();
  const checks = await checkStoredFeeds(deps.tables, feeds, deps.feedProblems ?? [], now);
  const current = new Map<string, { sequence: number; eocs: EocsPackage }>(
    checks.flatMap(({ feed, sequence, verdict }) =>
      verdict.ok ? [[feed, { sequence, eocs: verdict.package }] as const] : [],
    ),
  );
  const rollouts = await listRollouts(deps.tables, { logger: deps.logger });
  const running = rollouts.filter((rollout) => isActive(rollout.state));
  const snapshot = await freshSnapshot(
    deps,
    [...current.keys()].some((feed) => !running.some((rollout) => rollout.feed === feed)),
    dryRun,
  );
  const holds = activeHolds(
    rollouts,
    new Map([...current].map(([feed, { eocs }]) => [feed, contentHashes(eocs.mitigations)])),
  );
  // A frozen feed's ids stay known, so no other feed's fix-up withdraws them (DESIGN §4).
  const frozen = frozenFeeds(checks, new Set(snapshot.servers.flatMap((server) => server.reportedApplied)));
  await recordFrozenFeeds(deps, checks, frozen, now, { dryRun });
  const knownIds = new Set([
    ...[...current.values()].flatMap(({ eocs }) => eocs.mitigations.map((mitigation) => mitigation.id)),
    ...frozenIds(frozen),
  ]);
  const reports: ReconcileReport[] = frozen.map(({ feed, reason }) => ({
    feed,
    servers: 0,
    leftAlone: [],
    changes: [],
    held: [],
    holds: [],
    dryRun,
    frozen: reason,
  }));
  let withdrawnHandled = false;
  for (const [feed, { sequence, eocs }] of current) {
    const busy = running.find((rollout) => rollout.feed === feed);
    if (busy) {
      deps.logger.info('ReconcileDeferred', { feed, rolloutId: busy.partitionKey, state: busy.state });
      reports.push({
        feed,
        servers: 0,
        leftAlone: [],
        deferred: busy.partitionKey,
        changes: [],
        held: [],
        holds: holds.filter((hold) => hold.feed === feed),
        dryRun,
      });
      continue;
    }
    const drift = findDrift({
      ...snapshot,
      mitigations: eocs.mitigations,
      knownIds,
      removeWithdrawn: !withdrawnHandled,
    });
    const { leftAlone } = drift;
    withdrawnHandled = true;
    for (const server of leftAlone) deps.logger.warn('DriftLeftAlone', { feed, ...server });
    const { work, held } = withoutHeld(drift.work, holds, feed);
    await reportHeld(deps, feed, held, dryRun);
    const ids = [...new Set(work.flatMap((server) => [...server.apply, ...server.remove]))].sort();
    const plan = {
      operation: 'apply' as const,
      mitigationIds: ids,
      waves: assignWaves(work, deps.waves),
      leftOut: [],
    };
    const content = contentHashes(eocs.mitigations);
    const rolloutId =
      work.length > 0 && !dryRun
        ? await startPlannedRollout(
            deps,
            {
              id: reconcileRolloutId(
                feed,
                now,
                rollouts.map((rollout) => rollout.partitionKey),
              ),
              feed,
              packageSequence: sequence,
              plan,
              content,
            },
            now,
          )
        : undefined;
    if (rolloutId) {
      deps.logger.warn('DriftFound', {
        feed,
        rolloutId,
        servers: work.map((server) => ({
          server: server.server,
          apply: server.apply,
          remove: server.remove,
        })),
      });
      await deps.notify?.({ kind: 'DriftFound', servers: work.map((server) => server.server), rolloutId });
    }
    reports.push({
      feed,
      ...(rolloutId ? { rolloutId } : {}),
      servers: work.length,
      leftAlone,
      changes: work.map(changeOf),
      held,
      holds: holds.filter((hold) => hold.feed === feed),
      dryRun,
    });
  }
  return reports;
}

/** One line a holding rollout: which mitigations it kept from how many servers (and, for real, a notification). */
async function reportHeld(
  deps: ReconcileDeps,
  feed: string,
  held: readonly HeldOnServer[],
  dryRun: boolean,
): Promise<void> {
  const byRollout = new Map<string, { mitigations: Set<string>; servers: string[] }>();
  for (const server of held) {
    for (const { rolloutId, mitigation } of server.holds) {
      const entry = byRollout.get(rolloutId) ?? { mitigations: new Set<string>(), servers: [] };
      entry.mitigations.add(mitigation);
      if (entry.servers.at(-1) !== server.server) entry.servers.push(server.server);
      byRollout.set(rolloutId, entry);
    }
  }
  for (const [rolloutId, { mitigations, servers }] of byRollout) {
    const mitigationIds = [...mitigations].sort();
    deps.logger.warn('ReconcileHeld', {
      feed,
      rolloutId,
      mitigationIds,
      servers: servers.length,
      serverNames: servers.slice(0, namedInLog),
      dryRun,
    });
    if (!dryRun) await deps.notify?.({ kind: 'RolloutHeld', rolloutId, feed, mitigationIds, servers });
  }
}

/** How many servers a log line names; the count covers the rest. */
const namedInLog = 20;

/** What the fix-up does on one server, each with the policy's reason. */
function changeOf(server: ServerWork): ServerChange {
  const why = (id: string): string => {
    const decision = server.decisions.find((candidate) => candidate.mitigation === id);
    return decision ? `${decision.reason}: ${decision.detail}` : '';
  };
  return {
    server: server.server,
    reapply: server.apply.map((mitigation) => ({ mitigation, reason: `not in place; ${why(mitigation)}` })),
    remove: server.remove.map((mitigation) => ({ mitigation, reason: why(mitigation) })),
  };
}

/** The fleet as the planner needs it; when agents can be asked (and some feed is not busy), with what is really in place. */
async function freshSnapshot(
  deps: ReconcileDeps,
  sweep: boolean,
  dryRun: boolean,
): Promise<Awaited<ReturnType<typeof fleetSnapshot>>> {
  const snapshot = await fleetSnapshot(deps.tables, deps.org, deps.logger);
  if (!deps.agents || !sweep) return snapshot;
  const { applied, builds } = await sweepReportedState({ ...deps, agents: deps.agents }, snapshot.servers, {
    dryRun,
  });
  // A server whose agent reports a new build is planned on it now: a build past a fix gets the mitigation removed.
  return {
    ...snapshot,
    servers: snapshot.servers.map((server) => ({
      ...server,
      build: builds.get(server.name) ?? server.build,
      reportedApplied: applied.get(server.name) ?? server.reportedApplied,
    })),
  };
}

/**
 * One id per feed and hour, so a retried timer invocation finds the rollout it started
 * (startPlannedRollout is idempotent by id). A further reconcile in the same hour, after that
 * rollout ended, gets a numbered id instead of silently finding the finished one.
 */
export function reconcileRolloutId(feed: string, now: Date, existing: readonly string[]): string {
  const base = `${feed}-reconcile-${now.toISOString().slice(0, 13).replace(/[-T]/g, '')}`;
  const taken = new Set(existing);
  if (!taken.has(base)) return base;
  let attempt = 2;
  while (taken.has(`${base}-${attempt}`)) attempt += 1;
  return `${base}-${attempt}`;
}

import { latestPackage } from '../fleet/packages.js';
import { listRollouts } from '../fleet/rollouts.js';
import type { EocsPackage } from '../package/model.js';
import { verifyPackage } from '../package/verify.js';
import { findDrift, type LeftAlone } from './drift.js';
import { assignWaves } from './plan.js';
import type { Feed, PollDeps } from './poll.js';
import { fleetSnapshot, startPlannedRollout } from './start.js';

/** What a poll needs, less the feed fetch: reconcile works from stored packages only. */
export type ReconcileDeps = Omit<PollDeps, 'fetch'>;

export interface ReconcileReport {
  readonly feed: string;
  readonly rolloutId?: string;
  readonly servers: number;
  readonly leftAlone: readonly LeftAlone[];
  readonly deferred?: string;
}

const active = new Set(['Planned', 'Running', 'Baking', 'Paused']);

/**
 * The hourly fix-up (DESIGN §1, §7): per feed, the drift between the current package under
 * current policy and what servers report, rolled out through the same waves and brake. A feed
 * with a rollout still under way is left for the next hour, so fix-ups never pile up.
 */
export async function reconcile(deps: ReconcileDeps, feeds: readonly Feed[]): Promise<ReconcileReport[]> {
  const now = deps.now?.() ?? new Date();
  const current = new Map<string, { sequence: number; eocs: EocsPackage }>();
  for (const feed of feeds) {
    const stored = await latestPackage(deps.tables, feed.name);
    if (!stored) continue;
    const verified = verifyPackage(stored.bytes, { trust: feed.trust, now });
    if (verified.ok) current.set(feed.name, { sequence: stored.sequence, eocs: verified.package });
    else deps.logger.error('StoredPackageNoLongerVerifies', { feed: feed.name, sequence: stored.sequence, reason: verified.reason, detail: verified.detail });
  }
  const knownIds = new Set([...current.values()].flatMap(({ eocs }) => eocs.mitigations.map((mitigation) => mitigation.id)));
  const running = (await listRollouts(deps.tables, { logger: deps.logger })).filter((rollout) => active.has(rollout.state));
  const snapshot = await fleetSnapshot(deps.tables, deps.org, deps.logger);
  const reports: ReconcileReport[] = [];
  let withdrawnHandled = false;
  for (const [feed, { sequence, eocs }] of current) {
    const busy = running.find((rollout) => rollout.feed === feed);
    if (busy) {
      deps.logger.info('ReconcileDeferred', { feed, rolloutId: busy.partitionKey, state: busy.state });
      reports.push({ feed, servers: 0, leftAlone: [], deferred: busy.partitionKey });
      continue;
    }
    const { work, leftAlone } = findDrift({ ...snapshot, mitigations: eocs.mitigations, knownIds, removeWithdrawn: !withdrawnHandled });
    withdrawnHandled = true;
    for (const server of leftAlone) deps.logger.warn('DriftLeftAlone', { feed, ...server });
    const ids = [...new Set(work.flatMap((server) => [...server.apply, ...server.remove]))].sort();
    const plan = { operation: 'apply' as const, mitigationIds: ids, waves: assignWaves(work, deps.waves), leftOut: [] };
    const hour = now.toISOString().slice(0, 13).replace(/[-T]/g, '');
    const rolloutId = work.length > 0 ? await startPlannedRollout(deps, { id: `${feed}-reconcile-${hour}`, feed, packageSequence: sequence, plan }, now) : undefined;
    if (rolloutId) {
      deps.logger.warn('DriftFound', { feed, rolloutId, servers: work.map((server) => ({ server: server.server, apply: server.apply, remove: server.remove })) });
      await deps.notify?.({ kind: 'DriftFound', servers: work.map((server) => server.server), rolloutId });
    }
    reports.push({ feed, ...(rolloutId ? { rolloutId } : {}), servers: work.length, leftAlone });
  }
  return reports;
}

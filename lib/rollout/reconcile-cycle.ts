import type { FeedSet } from '../ocs/feeds.js';
import { reconcile, type ReconcileDeps, type ReconcileOptions, type ReconcileReport } from './reconcile.js';
import type { AgentStatusSource } from './sweep.js';

export type ReconcileCycleDeps = Omit<ReconcileDeps, 'agents' | 'feedProblems'> & {
  /** The relay client; it throws when no relay is configured. */
  readonly agents: () => Promise<AgentStatusSource>;
};

/**
 * The hourly drift check over every feed's current package (also on demand: `emfleet reconcile`,
 * `POST /api/reconcile`). A misconfigured feed is frozen, not skipped (lib/rollout/frozen.ts).
 */
export async function runReconcileCycle(
  deps: ReconcileCycleDeps,
  feeds: FeedSet,
  options: ReconcileOptions = {},
): Promise<ReconcileReport[]> {
  const { agents: agentClient, ...rest } = deps;
  for (const problem of feeds.problems) deps.logger.error('FeedMisconfigured', { ...problem });
  // Without a relay the agents cannot be asked; drift is then judged on what rollouts recorded.
  let agents: AgentStatusSource | undefined;
  try {
    agents = await agentClient();
  } catch (error) {
    deps.logger.warn('ReconcileWithoutStatusSweep', {
      error: error instanceof Error ? error.message : String(error),
    });
  }
  return reconcile(
    { ...rest, feedProblems: feeds.problems, ...(agents ? { agents } : {}) },
    feeds.feeds,
    options,
  );
}

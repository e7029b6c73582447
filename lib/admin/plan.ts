import type { AppConfig } from '../config/index.js';
import { getServer } from '../fleet/servers.js';
import { readPolicy } from '../fleet/policy.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { EocsPackage } from '../package/model.js';
import { explainPackage, type ExplainedDecision } from '../policy/explain.js';
import { planRollout, type RolloutPlan } from '../rollout/plan.js';
import { fleetSnapshot } from '../rollout/start.js';
import { currentPackage, NoPackageError, resolveFeed } from './feeds.js';
import { EmfleetError } from '../errors.js';

interface Deps {
  readonly tables: FleetTables;
  readonly config: AppConfig;
  readonly logger: Logger;
}

/** The feed's current package, verified today; one that no longer verifies is an error that says why. */
export async function currentModel(
  deps: Deps,
  feedName: string | undefined,
): Promise<{ feed: string; sequence: number; eocs: EocsPackage }> {
  const feed = resolveFeed(deps.config, feedName);
  const current = await currentPackage(deps.tables, feed);
  if (!current) throw new NoPackageError(feed.name);
  if (!current.verified.ok) {
    throw new EmfleetError(
      current.verified.reason,
      `the stored package ${current.stored.sequence} of feed ${feed.name} no longer verifies: ${current.verified.detail}`,
      { context: { feed: feed.name, sequence: current.stored.sequence } },
    );
  }
  return { feed: feed.name, sequence: current.stored.sequence, eocs: current.verified.package };
}

/** `rollout plan --latest` over HTTP: the dry run of the feed's current package on today's fleet and policy. */
export async function planCurrentPackage(
  deps: Deps,
  options: { feed?: string | undefined; emergency?: boolean },
): Promise<RolloutPlan & { feed: string; packageSequence: number }> {
  const { feed, sequence, eocs } = await currentModel(deps, options.feed);
  const snapshot = await fleetSnapshot(deps.tables, deps.config.org, deps.logger);
  const plan = planRollout({
    operation: 'apply',
    mitigationIds: eocs.mitigations.map((mitigation) => mitigation.id),
    mitigations: eocs.mitigations,
    ...snapshot,
    waves: options.emergency ? deps.config.emergencyWaves : deps.config.waves,
  });
  return { feed, packageSequence: sequence, ...plan };
}

/** `policy explain --latest` over HTTP: every server (or one) × the current package's mitigations. */
export async function explainCurrentPackage(
  deps: Deps,
  options: { feed?: string | undefined; server?: string | undefined },
): Promise<{ feed: string; packageSequence: number; decisions: ExplainedDecision[] }> {
  const { feed, sequence, eocs } = await currentModel(deps, options.feed);
  const org = deps.config.org;
  const servers =
    options.server === undefined
      ? (await fleetSnapshot(deps.tables, org, deps.logger)).servers
      : [await getServer(deps.tables, org, options.server)].map((row) => ({
          name: row.rowKey,
          build: row.build,
          reportedApplied: row.reportedApplied,
        }));
  const policy = await readPolicy(deps.tables, org, { logger: deps.logger });
  return {
    feed,
    packageSequence: sequence,
    decisions: explainPackage(policy.org, policy.servers, servers, eocs.mitigations),
  };
}

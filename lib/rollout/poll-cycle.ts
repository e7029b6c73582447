import { syncDeclaredPolicy } from '../fleet/policy.js';
import type { FeedSet } from '../ocs/feeds.js';
import { declaredLayers, type DeclaredPolicy } from '../policy/declared.js';
import { pollFeed, type PollDeps, type PollOutcome } from './poll.js';

/** A feed's outcome in a poll cycle: polled, or not polled because its settings are wrong. */
export type PollCycleOutcome = PollOutcome | { readonly kind: 'misconfigured'; readonly error: string };

export type PollCycleDeps = PollDeps & {
  /** The declared policy (policy as code), already parsed; a bad declaration is logged and left out. */
  readonly declaredPolicy?: { ok: true; policy: DeclaredPolicy } | { ok: false; error: string } | undefined;
};

/**
 * The hourly cycle: bring the declared policy into Tables, then poll every feed. Feeds are
 * independent: one that fails or is misconfigured is logged and the others still run.
 */
export async function runPollCycle(
  deps: PollCycleDeps,
  feeds: FeedSet,
): Promise<Record<string, PollCycleOutcome>> {
  const { declaredPolicy, ...pollDeps } = deps;
  if (declaredPolicy?.ok)
    await syncDeclaredPolicy(deps.tables, deps.org, declaredLayers(declaredPolicy.policy), {
      actor: 'bicep',
      logger: deps.logger,
    });
  else if (declaredPolicy) deps.logger.error('DeclaredPolicyInvalid', { error: declaredPolicy.error });
  const outcomes: Record<string, PollCycleOutcome> = {};
  for (const problem of feeds.problems) {
    deps.logger.error('FeedMisconfigured', { ...problem });
    outcomes[problem.feed] = { kind: 'misconfigured', error: problem.error };
  }
  for (const feed of feeds.feeds) outcomes[feed.name] = await pollFeed(pollDeps, feed);
  return outcomes;
}

import { latestPackage } from '../fleet/packages.js';
import { isActive, type RolloutProfile } from '../model/rollout.js';
import { listRollouts } from '../fleet/rollouts.js';
import type { Mitigation } from '../package/model.js';
import { verifyPackage } from '../package/verify.js';
import { findDrift } from './drift.js';
import { activeHolds, contentHashes, withoutHeld } from './holds.js';
import { assignWaves, type ServerWork } from './plan.js';
import type { Feed } from '../ocs/feeds.js';
import type { PollDeps } from './poll.js';
import { fleetSnapshot, startPlannedRollout } from './start.js';
import type { WaveProfile } from '../model/waves.js';

/** Which servers and mitigations a policy change touched: undefined means all of them. */
export interface FixUpScope {
  readonly servers?: readonly string[];
  readonly mitigationIds?: readonly string[];
}

export type FixUpDeps = Omit<PollDeps, 'fetch'> & {
  /** The profile removal-only fix-ups (a new block) run on; without it they use the normal waves. */
  readonly emergencyWaves?: WaveProfile;
};

export type FixUpOutcome =
  | {
      readonly feed: string;
      readonly kind: 'started';
      readonly rolloutId: string;
      readonly servers: number;
      readonly profile: RolloutProfile;
    }
  | { readonly feed: string; readonly kind: 'nothingToDo' }
  | { readonly feed: string; readonly kind: 'busy'; readonly busyRolloutId: string }
  | { readonly feed: string; readonly kind: 'held'; readonly heldBy: string }
  | { readonly feed: string; readonly kind: 'noPackage'; readonly detail: string };

/**
 * The work a policy change calls for (pure): the drift of the servers in scope, narrowed to the
 * mitigations in scope. Withdrawn ids are reconcile's business, not a policy change's.
 */
export function narrowDrift(work: readonly ServerWork[], scope: FixUpScope): ServerWork[] {
  const servers = scope.servers === undefined ? undefined : new Set(scope.servers);
  const ids = scope.mitigationIds === undefined ? undefined : new Set(scope.mitigationIds);
  const inScope = (id: string): boolean => ids === undefined || ids.has(id);
  return work
    .filter((server) => servers === undefined || servers.has(server.server))
    .map((server) => ({
      ...server,
      apply: server.apply.filter(inScope),
      remove: server.remove.filter(inScope),
      decisions: server.decisions.filter((decision) => inScope(decision.mitigation)),
    }))
    .filter((server) => server.apply.length + server.remove.length > 0);
}

/** Removals only (a block) may go at the emergency pace; anything that applies takes the normal waves. */
export function fixUpProfile(work: readonly ServerWork[], hasEmergency: boolean): RolloutProfile {
  return hasEmergency && work.length > 0 && work.every((server) => server.apply.length === 0)
    ? 'emergency'
    : 'default';
}

/**
 * `policy … --now`: reconcile at once for what a policy change touched, per feed, through the
 * rollout engine (waves, brake, audit). A feed with a rollout still under way is left to it and to
 * the next reconcile, as reconcile itself does, so two rollouts never work one server at once.
 */
export async function fixUpNow(
  deps: FixUpDeps,
  feeds: readonly Feed[],
  scope: FixUpScope,
): Promise<FixUpOutcome[]> {
  const now = deps.now?.() ?? new Date();
  const current: {
    feed: string;
    sequence: number;
    mitigations: readonly Mitigation[];
    content: Record<string, string>;
  }[] = [];
  const outcomes: FixUpOutcome[] = [];
  for (const feed of feeds) {
    const stored = await latestPackage(deps.tables, feed.name);
    if (!stored) {
      outcomes.push({ feed: feed.name, kind: 'noPackage', detail: 'no package accepted yet' });
      continue;
    }
    const verified = verifyPackage(stored.bytes, { trust: feed.trust, now });
    if (verified.ok)
      current.push({
        feed: feed.name,
        sequence: stored.sequence,
        mitigations: verified.package.mitigations,
        content: contentHashes(verified.package.mitigations),
      });
    else
      outcomes.push({
        feed: feed.name,
        kind: 'noPackage',
        detail: `the stored package ${stored.sequence} no longer verifies (${verified.reason}): nothing is changed`,
      });
  }
  if (current.length === 0) return outcomes;
  const knownIds = new Set(
    current.flatMap(({ mitigations }) => mitigations.map((mitigation) => mitigation.id)),
  );
  const [rollouts, snapshot] = await Promise.all([
    listRollouts(deps.tables, { logger: deps.logger }),
    fleetSnapshot(deps.tables, deps.org, deps.logger),
  ]);
  // A halt holds (DESIGN §7, lib/rollout/holds.ts): a fix-up re-applies nothing a halted or aborted rollout holds.
  const holds = activeHolds(rollouts, new Map(current.map(({ feed, content }) => [feed, content])));
  for (const { feed, sequence, mitigations, content } of current) {
    const { work: drift } = findDrift({ ...snapshot, mitigations, knownIds, removeWithdrawn: false });
    const { work, held } = withoutHeld(narrowDrift(drift, scope), holds, feed);
    if (work.length === 0) {
      outcomes.push(
        held.length > 0
          ? { feed, kind: 'held', heldBy: held[0]!.holds[0]!.rolloutId }
          : { feed, kind: 'nothingToDo' },
      );
      continue;
    }
    const busy = rollouts.find((rollout) => rollout.feed === feed && isActive(rollout.state));
    if (busy) {
      deps.logger.info('FixUpDeferred', { feed, rolloutId: busy.partitionKey, state: busy.state });
      outcomes.push({ feed, kind: 'busy', busyRolloutId: busy.partitionKey });
      continue;
    }
    const profile = fixUpProfile(work, deps.emergencyWaves !== undefined);
    const waves = profile === 'emergency' ? deps.emergencyWaves! : deps.waves;
    const ids = [...new Set(work.flatMap((server) => [...server.apply, ...server.remove]))].sort();
    const id = fixUpRolloutId(
      feed,
      now,
      rollouts.map((rollout) => rollout.partitionKey),
    );
    const rolloutId = await startPlannedRollout(
      deps,
      {
        id,
        feed,
        packageSequence: sequence,
        plan: { operation: 'apply', mitigationIds: ids, waves: assignWaves(work, waves), leftOut: [] },
        content,
      },
      now,
    );
    if (rolloutId) {
      deps.logger.warn('FixUpStarted', {
        feed,
        rolloutId,
        profile,
        servers: work.map((server) => ({
          server: server.server,
          apply: server.apply,
          remove: server.remove,
        })),
      });
      outcomes.push({ feed, kind: 'started', rolloutId, servers: work.length, profile });
    } else {
      outcomes.push({ feed, kind: 'nothingToDo' });
    }
  }
  return outcomes;
}

/** `<feed>-now-<UTC second>`, numbered when that id is taken: each fix-up is a rollout of its own. */
export function fixUpRolloutId(feed: string, now: Date, existing: readonly string[]): string {
  const base = `${feed}-now-${now.toISOString().slice(0, 19).replace(/[-T:]/g, '')}`;
  const taken = new Set(existing);
  let id = base;
  for (let attempt = 2; taken.has(id); attempt++) id = `${base}-${attempt}`;
  return id;
}

/** When a policy change takes effect: now (the fix-up's outcome per feed), or at the next reconcile. */
export type PolicyEffect =
  | { readonly takesEffect: 'now'; readonly fixUps: readonly FixUpOutcome[] }
  | { readonly takesEffect: 'nextReconcile'; readonly at: string };

/** The words for it, the same in the CLI and the API's `detail`. */
export function describePolicyEffect(effect: PolicyEffect): string[] {
  if (effect.takesEffect === 'nextReconcile')
    return [
      `takes effect at the next reconcile, ${effect.at.slice(11, 16)} UTC (${effect.at}); add --now to start the fix-up at once`,
    ];
  if (effect.fixUps.length === 0) return ['nothing to fix up: no feed is configured'];
  return effect.fixUps.map(describeFixUp);
}

function describeFixUp(outcome: FixUpOutcome): string {
  switch (outcome.kind) {
    case 'started':
      return `feed ${outcome.feed}: fix-up rollout ${outcome.rolloutId} started for ${outcome.servers} server${outcome.servers === 1 ? '' : 's'} (${outcome.profile} waves); follow it with: emfleet rollout show ${outcome.rolloutId}`;
    case 'nothingToDo':
      return `feed ${outcome.feed}: nothing to fix up (every server in scope already matches, or policy leaves it alone)`;
    case 'busy':
      return `feed ${outcome.feed}: rollout ${outcome.busyRolloutId} is still under way; the fix-up runs at the next reconcile after it ends (abort it to act sooner)`;
    case 'held':
      return `feed ${outcome.feed}: held by rollout ${outcome.heldBy} (halted or aborted): nothing is re-applied until it is retried`;
    case 'noPackage':
      return `feed ${outcome.feed}: ${outcome.detail}`;
  }
}

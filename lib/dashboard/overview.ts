import type { AppConfig } from '../config/index.js';
import { mapWithConcurrency } from '../concurrency.js';
import { listRollouts, readRollout } from '../fleet/rollouts.js';
import type { RolloutStateRow, WaveRow } from '../fleet/schemas.js';
import { isActive } from '../model/rollout.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import { currentContent } from '../fleet/status.js';
import { heldBy } from '../rollout/holds.js';
import { retryCount } from '../rollout/pass.js';
import { rolloutActions, transition } from '../rollout/state.js';
import { statusOf } from '../rollout/events.js';
import { feedView, readCurrentFeeds } from './feeds.js';
import type { Overview, RolloutActionName, RolloutView, WavePhase } from './types.js';

/** Ended rollouts shown besides the active ones; older ones are only counted. */
export const recentEndedRollouts = 10;
const actionNames: readonly RolloutActionName[] = rolloutActions;

/**
 * Feeds and rollouts for the top of the dashboard: every active rollout and the latest that
 * ended, each with its waves (one partition query per rollout shown, a few at a time) and, for a
 * halted or aborted one, the mitigations it holds.
 */
export async function readOverview(
  deps: { tables: FleetTables; config: AppConfig; logger: Logger },
  options: { now?: Date } = {},
): Promise<Overview> {
  const [feeds, rollouts] = await Promise.all([
    readCurrentFeeds(deps),
    listRollouts(deps.tables, { logger: deps.logger }),
  ]);
  const endedRollouts = rollouts.filter((rollout) => !isActive(rollout.state));
  const shown = [
    ...rollouts.filter((rollout) => isActive(rollout.state)),
    ...endedRollouts.slice(0, recentEndedRollouts),
  ];
  const detailed = await mapWithConcurrency(shown, 8, (rollout) =>
    readRollout(deps.tables, rollout.partitionKey),
  );
  const content = currentContent(
    feeds.map((feed) => feed.name),
    new Map(feeds.map((feed) => [feed.name, feed.stored])),
  );
  return {
    org: deps.config.org,
    generatedAt: (options.now ?? new Date()).toISOString(),
    feeds: feeds.map(feedView),
    rollouts: detailed.map(({ state, waves }) => rolloutView(state, waves, content.get(state.feed))),
    olderRollouts: Math.max(0, endedRollouts.length - recentEndedRollouts),
  };
}

/**
 * A rollout as the page draws it. The bake of the current wave ends `bakeInMs` after the rollout
 * entered Baking, which is its last state write (a resume restarts the bake, and an emergency
 * profile gates at once), so `updatedAt` dates it.
 */
export function rolloutView(
  state: RolloutStateRow,
  waves: readonly WaveRow[],
  feedContent?: Readonly<Record<string, string>>,
): RolloutView {
  const status = statusOf(state);
  const halted = state.state === 'Halted' ? waves[state.currentWave] : undefined;
  return {
    id: state.partitionKey,
    feed: state.feed,
    packageSequence: state.packageSequence,
    operation: state.operation,
    state: state.state,
    reasonCode: state.reasonCode,
    reasonDetail: state.reasonDetail,
    profile: state.profile,
    currentWave: state.currentWave,
    waveCount: state.waveCount,
    createdAt: state.createdAt.toISOString(),
    updatedAt: state.updatedAt.toISOString(),
    // Only what would change something: a retry of a halt already retried is accepted, but not offered.
    actions: actionNames.filter((action) => {
      const result = transition(status, { kind: action, actor: 'dashboard' });
      return result.ok && result.status !== status;
    }),
    holds: heldBy(state, feedContent),
    retryServers: halted ? retryCount(halted) : 0,
    waves: waves.map((wave, index) => {
      const phase: WavePhase =
        state.state === 'Completed' || index < state.currentWave
          ? 'Done'
          : index === state.currentWave
            ? 'Current'
            : 'NotStarted';
      const baking = state.state === 'Baking' && index === state.currentWave;
      const bakeInMs = state.profile === 'emergency' ? 0 : wave.bakeInMs;
      return {
        index,
        name: wave.name,
        servers: wave.servers,
        succeeded: wave.succeeded,
        failed: wave.failed,
        skipped: wave.skipped,
        pending: Math.max(0, wave.servers - wave.succeeded - wave.failed - wave.skipped),
        maxConcurrency: wave.maxConcurrency,
        maxErrors: wave.maxErrors,
        bakeInMs: wave.bakeInMs,
        phase,
        bakeEndsAt: baking ? new Date(state.updatedAt.getTime() + bakeInMs).toISOString() : null,
        failedServers: wave.failedServers,
      };
    }),
  };
}

import { feedSources } from '../config/sources.js';
import { feedsOf } from '../ocs/feeds.js';
import { configuredFeedNames } from '../config/sources.js';
import { UnknownFeedError } from './feeds.js';
import type { AppConfig } from '../config/index.js';
import type { QueueSender } from '../fleet/queues.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { Notify } from '../notify.js';
import { pollFeed, type PollDeps, type PollOutcome } from '../rollout/poll.js';

export type PollNowOutcome = { readonly feed: string } & (
  | PollOutcome
  | { readonly kind: 'misconfigured'; readonly error: string }
);

export interface PollNowDeps {
  readonly tables: FleetTables;
  readonly queues: QueueSender;
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly notify?: Notify;
  readonly fetch?: PollDeps['fetch'];
  readonly now?: () => Date;
}

/**
 * `emfleet poll` and `POST /api/poll`: what the hourly timer does for each feed (or the one
 * named), now; EM's "restart MSExchangeMitigation to check OCS now". Feeds are independent.
 */
export async function pollNow(deps: PollNowDeps, options: { feed?: string } = {}): Promise<PollNowOutcome[]> {
  if (options.feed !== undefined && !configuredFeedNames(deps.config).includes(options.feed))
    throw new UnknownFeedError(options.feed, configuredFeedNames(deps.config));
  const { feeds, problems } = feedsOf(feedSources(deps.config));
  const wanted = (name: string): boolean => options.feed === undefined || options.feed === name;
  const outcomes: PollNowOutcome[] = problems
    .filter((problem) => wanted(problem.feed))
    .map((problem) => ({ feed: problem.feed, kind: 'misconfigured', error: problem.error }));
  const pollDeps: PollDeps = {
    tables: deps.tables,
    queues: deps.queues,
    org: deps.config.org,
    waves: deps.config.waves,
    logger: deps.logger,
    ...(deps.notify ? { notify: deps.notify } : {}),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  };
  for (const feed of feeds.filter((candidate) => wanted(candidate.name)))
    outcomes.push({ feed: feed.name, ...(await pollFeed(pollDeps, feed)) });
  return outcomes;
}

/** One line per feed, in EM's plain words. */
export function describePollOutcome(outcome: PollNowOutcome): string {
  switch (outcome.kind) {
    case 'unchanged':
      return `feed ${outcome.feed}: unchanged (the current package stays in force)`;
    case 'accepted': {
      const { diff } = outcome;
      const changes = [
        `added ${diff.added.join(', ') || 'none'}`,
        `changed ${diff.changed.join(', ') || 'none'}`,
        `withdrawn ${diff.withdrawn.join(', ') || 'none'}`,
      ].join('; ');
      return `feed ${outcome.feed}: accepted package ${outcome.sequence} (sha256 ${outcome.sha256}): ${changes}; ${outcome.rollouts.length > 0 ? `rollouts started: ${outcome.rollouts.join(', ')}` : 'no rollout needed'}`;
    }
    case 'rejected':
      return `feed ${outcome.feed}: REJECTED ${outcome.reason}: ${outcome.detail} (sha256 ${outcome.sha256}); the current package stays in force`;
    case 'error':
      return `feed ${outcome.feed}: FAILED to fetch: ${outcome.error}`;
    case 'misconfigured':
      return `feed ${outcome.feed}: NOT POLLED, its settings are wrong: ${outcome.error}`;
    case 'held':
      return `feed ${outcome.feed}: HELD package (sha256 ${outcome.sha256}): no trusted signing time, and it would withdraw ${outcome.withdrawn.join(', ')}; approve with: emfleet feed accept ${outcome.sha256} --feed ${outcome.feed}`;
  }
}

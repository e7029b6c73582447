import type { InvocationContext } from '@azure/functions';
import { loadSettings, type Settings } from './config/index.js';
import { syncDeclaredPolicy } from './fleet/policy.js';
import { StorageQueueSender } from './fleet/queues.js';
import { FleetTables, storageConnectionFromSettings } from './fleet/storage.js';
import type { Logger } from './log.js';
import { microsoftFeedName } from './ocs/client.js';
import { createTrustPolicy, readPemSetting, trustPolicyFromSettings } from './package/trust.js';
import { declaredLayers, parseDeclaredPolicy } from './policy/declared.js';
import { pollFeed, type Feed, type PollOutcome } from './rollout/poll.js';

/** The cloud side's dependencies, built once per invocation from the settings. */
export interface AppContext {
  readonly settings: Settings;
  readonly tables: FleetTables;
  readonly queues: StorageQueueSender;
  readonly logger: Logger;
}

export function appContext(logger: Logger, environment: Record<string, string | undefined> = process.env): AppContext {
  const settings = loadSettings(environment);
  const connection = storageConnectionFromSettings(settings);
  const prefix = settings.EMFLEET_TABLE_PREFIX;
  return {
    settings,
    tables: new FleetTables(connection, prefix === undefined ? {} : { prefix }),
    queues: new StorageQueueSender(connection, prefix === undefined ? {} : { prefix }),
    logger,
  };
}

/** Functions' own log, with every entry a JSON object carrying the event and its context. */
export function invocationLogger(context: InvocationContext): Logger {
  const entry = (event: string, fields: Record<string, unknown> = {}): string => JSON.stringify({ event, invocationId: context.invocationId, ...fields });
  return {
    info: (event, fields) => context.log(entry(event, fields)),
    warn: (event, fields) => context.warn(entry(event, fields)),
    error: (event, fields) => context.error(entry(event, fields)),
  };
}

/** Microsoft's feed (EMFLEET_OCS_URL with the EMFLEET_TRUST_* settings), then each organization feed. */
export function feedsFromSettings(settings: Settings): { feeds: Feed[]; problems: { feed: string; error: string }[] } {
  const feeds: Feed[] = [];
  const problems: { feed: string; error: string }[] = [];
  const add = (name: string, url: string, trust: () => Feed['trust']): void => {
    try {
      feeds.push({ name, url, trust: trust() });
    } catch (error) {
      problems.push({ feed: name, error: error instanceof Error ? error.message : String(error) });
    }
  };
  add(microsoftFeedName, settings.EMFLEET_OCS_URL, () => trustPolicyFromSettings(settings));
  for (const feed of settings.EMFLEET_FEEDS) {
    add(feed.name, feed.url, () =>
      createTrustPolicy({ anchorPems: [readPemSetting(feed.trustAnchors, `EMFLEET_FEEDS ${feed.name}`)], anchorSha256: feed.anchorSha256, signerSubjectCn: feed.signerSubject, signerEku: feed.signerEku }),
    );
  }
  return { feeds, problems };
}

/**
 * The hourly cycle: bring the declared policy into Tables, then poll every feed. Feeds are
 * independent: one that fails or is misconfigured is logged and the others still run.
 */
export async function runPollCycle(app: AppContext): Promise<Record<string, PollOutcome | { kind: 'misconfigured'; error: string }>> {
  const { settings, tables, logger } = app;
  if (settings.EMFLEET_POLICY) {
    const declared = parseDeclaredPolicy(settings.EMFLEET_POLICY);
    if (declared.ok) await syncDeclaredPolicy(tables, settings.EMFLEET_ORG, declaredLayers(declared.policy), { actor: 'bicep', logger });
    else logger.error('DeclaredPolicyInvalid', { error: declared.error });
  }
  const { feeds, problems } = feedsFromSettings(settings);
  const outcomes: Record<string, PollOutcome | { kind: 'misconfigured'; error: string }> = {};
  for (const problem of problems) {
    logger.error('FeedMisconfigured', problem);
    outcomes[problem.feed] = { kind: 'misconfigured', error: problem.error };
  }
  for (const feed of feeds) {
    outcomes[feed.name] = await pollFeed({ tables, queues: app.queues, org: settings.EMFLEET_ORG, waves: settings.EMFLEET_WAVES, logger }, feed);
  }
  return outcomes;
}

import type { InvocationContext } from '@azure/functions';
import { loadSettings, type Settings } from './config/index.js';
import { syncDeclaredPolicy } from './fleet/policy.js';
import type { QueueSender, StorageQueueSender } from './fleet/queues.js';
import { storageClients } from './fleet/clients.js';
import { storageConnectionFromSettings, type FleetTables } from './fleet/storage.js';
import type { Logger } from './log.js';
import { createNotifier, type Notify } from './notify.js';
import { microsoftFeedName } from './ocs/client.js';
import { createTrustPolicy, readPemSetting, trustPolicyFromSettings } from './package/trust.js';
import { declaredLayers, parseDeclaredPolicy } from './policy/declared.js';
import { pollFeed, type Feed, type PollOutcome } from './rollout/poll.js';
import { createRolloutCaches, type RolloutCaches } from './rollout/caches.js';
import type { StepDeps } from './rollout/steps/deps.js';
import { recordInvalidMessage } from './rollout/steps/invalid-message.js';
import { reconcile, type ReconcileOptions, type ReconcileReport } from './rollout/reconcile.js';
import { agentClientFromSettings } from './relay/settings.js';
import type { AgentClient } from './relay/sender.js';

/** The cloud side's dependencies, built once per invocation from the settings. */
export interface AppContext {
  readonly settings: Settings;
  readonly tables: FleetTables;
  readonly queues: StorageQueueSender;
  readonly logger: Logger;
  readonly notify: Notify;
  /** The rollout steps' caches of this deployment, kept with its clients between invocations. */
  readonly rolloutCaches: RolloutCaches;
}

export function appContext(
  logger: Logger,
  environment: Record<string, string | undefined> = process.env,
): AppContext {
  const settings = loadSettings(environment);
  return {
    settings,
    ...deploymentClients(settings),
    logger,
    notify: createNotifier({
      ...(settings.EMFLEET_NOTIFY_URL ? { url: settings.EMFLEET_NOTIFY_URL } : {}),
      logger,
    }),
  };
}

/**
 * Storage clients for the life of the worker process, as the Functions host keeps it between
 * invocations: each table and queue is created (or found) once, not on every invocation (that was
 * four of a queue step's storage requests), and the clients' kept-alive connections are reused.
 * A few deployments are kept (tests run several in one process).
 */
const clientsByDeployment = new Map<string, Pick<AppContext, 'tables' | 'queues' | 'rolloutCaches'>>();
const keptDeployments = 8;

function deploymentClients(settings: Settings): Pick<AppContext, 'tables' | 'queues' | 'rolloutCaches'> {
  const connection = storageConnectionFromSettings(settings);
  const key = JSON.stringify([
    connection,
    settings.EMFLEET_TABLE_PREFIX ?? '',
    settings.EMFLEET_QUEUE_PREFIX ?? '',
  ]);
  let clients = clientsByDeployment.get(key);
  if (clients) {
    clientsByDeployment.delete(key);
  } else {
    clients = { ...storageClients(connection, settings), rolloutCaches: createRolloutCaches() };
  }
  clientsByDeployment.set(key, clients);
  for (const oldest of clientsByDeployment.keys()) {
    if (clientsByDeployment.size <= keptDeployments) break;
    clientsByDeployment.delete(oldest);
  }
  return clients;
}

/** Functions' own log, with every entry a JSON object carrying the event and its context. */
export function invocationLogger(context: InvocationContext): Logger {
  const entry = (event: string, fields: Record<string, unknown> = {}): string =>
    JSON.stringify({ event, invocationId: context.invocationId, ...fields });
  return {
    info: (event, fields) => context.log(entry(event, fields)),
    warn: (event, fields) => context.warn(entry(event, fields)),
    error: (event, fields) => context.error(entry(event, fields)),
  };
}

/** Microsoft's feed (EMFLEET_OCS_URL with the EMFLEET_TRUST_* settings), then each organization feed. */
export function feedsFromSettings(settings: Settings): {
  feeds: Feed[];
  problems: { feed: string; error: string }[];
} {
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
      createTrustPolicy({
        anchorPems: [readPemSetting(feed.trustAnchors, `EMFLEET_FEEDS ${feed.name}`)],
        anchorSha256: feed.anchorSha256,
        timestampAnchorPems:
          feed.timestampAnchors === undefined
            ? []
            : [readPemSetting(feed.timestampAnchors, `EMFLEET_FEEDS ${feed.name} timestampAnchors`)],
        timestampAnchorSha256: feed.timestampAnchorSha256,
        signerSubjectCn: feed.signerSubject,
        signerEku: feed.signerEku,
        revokedSerials: feed.revokedSerials,
      }),
    );
  }
  return { feeds, problems };
}

/**
 * The hourly cycle: bring the declared policy into Tables, then poll every feed. Feeds are
 * independent: one that fails or is misconfigured is logged and the others still run.
 */
export async function runPollCycle(
  app: AppContext,
): Promise<Record<string, PollOutcome | { kind: 'misconfigured'; error: string }>> {
  const { settings, tables, logger } = app;
  if (settings.EMFLEET_POLICY) {
    const declared = parseDeclaredPolicy(settings.EMFLEET_POLICY);
    if (declared.ok)
      await syncDeclaredPolicy(tables, settings.EMFLEET_ORG, declaredLayers(declared.policy), {
        actor: 'bicep',
        logger,
      });
    else logger.error('DeclaredPolicyInvalid', { error: declared.error });
  }
  const { feeds, problems } = feedsFromSettings(settings);
  const outcomes: Record<string, PollOutcome | { kind: 'misconfigured'; error: string }> = {};
  for (const problem of problems) {
    logger.error('FeedMisconfigured', problem);
    outcomes[problem.feed] = { kind: 'misconfigured', error: problem.error };
  }
  for (const feed of feeds) {
    outcomes[feed.name] = await pollFeed(
      {
        tables,
        queues: app.queues,
        org: settings.EMFLEET_ORG,
        waves: settings.EMFLEET_WAVES,
        logger,
        notify: app.notify,
      },
      feed,
    );
  }
  return outcomes;
}

let cachedAgents: { key: string; client: Promise<AgentClient> } | undefined;

/** The relay client, kept for the life of the process (connection reuse). */
function agentClient(app: Pick<AppContext, 'settings'>): Promise<AgentClient> {
  const key = `${app.settings.EMFLEET_RELAY_ENDPOINT ?? ''}|${app.settings.EMFLEET_RELAY_NAMESPACE ?? ''}|${app.settings.EMFLEET_RELAY_SEND_KEY_NAME}|${app.settings.EMFLEET_RELAY_SEND_KEY ?? ''}`;
  if (cachedAgents?.key !== key) cachedAgents = { key, client: agentClientFromSettings(app.settings) };
  return cachedAgents.client;
}

/** What the queue steps need. */
export async function stepDeps(app: AppContext): Promise<StepDeps> {
  return {
    tables: app.tables,
    queues: app.queues,
    agents: await agentClient(app),
    org: app.settings.EMFLEET_ORG,
    logger: app.logger,
    notify: app.notify,
    caches: app.rolloutCaches,
  };
}

/** Parses a queue message; an invalid one is recorded with its id and not retried (the handler returns). */
export async function parseMessage<T>(
  app: AppContext,
  schema: {
    safeParse(
      value: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  message: unknown,
  context: InvocationContext,
  queue: string,
): Promise<T | undefined> {
  const parsed = schema.safeParse(message);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  await recordInvalidMessage(
    app,
    queue,
    String(context.triggerMetadata?.['id'] ?? ''),
    `${issue.path.join('.') || 'message'}: ${issue.message}`,
  );
  return undefined;
}

/**
 * The handler of a rollout queue step: parse the message (an invalid one is recorded and dropped),
 * build the dependencies, run the step. Throwing lets the host retry with its visibility timeout.
 */
export function queueStepHandler<T>(
  queue: string,
  schema: Parameters<typeof parseMessage<T>>[1],
  step: (deps: StepDeps, message: T, context: InvocationContext) => Promise<void>,
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const app = appContext(invocationLogger(context));
    const parsed = await parseMessage(app, schema, message, context, queue);
    if (parsed !== undefined) await step(await stepDeps(app), parsed, context);
  };
}

/** The hourly drift check over every feed's current package (also on demand: `emfleet reconcile`, `POST /api/reconcile`). */
export async function runReconcileCycle(
  app: Omit<AppContext, 'queues' | 'notify' | 'rolloutCaches'> & {
    queues: QueueSender;
    notify?: Notify | undefined;
  },
  options: ReconcileOptions = {},
): Promise<ReconcileReport[]> {
  const { feeds, problems } = feedsFromSettings(app.settings);
  for (const problem of problems) app.logger.error('FeedMisconfigured', problem);
  // Without a relay the agents cannot be asked; drift is then judged on what rollouts recorded.
  const agents = await agentClient(app).catch((error: unknown) => {
    app.logger.warn('ReconcileWithoutStatusSweep', {
      error: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  });
  return reconcile(
    {
      tables: app.tables,
      queues: app.queues,
      org: app.settings.EMFLEET_ORG,
      waves: app.settings.EMFLEET_WAVES,
      logger: app.logger,
      ...(app.notify ? { notify: app.notify } : {}),
      feedProblems: problems,
      ...(agents ? { agents } : {}),
    },
    feeds,
    options,
  );
}

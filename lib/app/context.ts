import type { InvocationContext } from '@azure/functions';
import { loadConfig, settingNameOf, settingNames, type AppConfig } from '../config/index.js';
import { feedSources, relayTargetOf, storageConnectionOf } from '../config/sources.js';
import { storageClients } from '../fleet/clients.js';
import { createRolloutCaches, type RolloutCaches } from '../rollout/caches.js';
import type { StorageQueueSender } from '../fleet/queues.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import { createNotifier, type Notify } from '../notify.js';
import { feedsOf, type FeedSet } from '../ocs/feeds.js';
import { parseDeclaredPolicy, type DeclaredPolicy } from '../policy/declared.js';
import type { AgentClient } from '../relay/sender.js';
import { agentClientFor } from '../relay/settings.js';

/**
 * What the app's functions share for the life of the worker process, as the Functions host keeps
 * it between invocations: the config, parsed once; the storage clients (each table and queue is
 * created, or found, once, and their kept-alive connections are reused); the feeds with their
 * trust; the declared policy; the relay client. Built from the config alone, so tests build one per
 * deployment.
 */
export interface AppContext {
  readonly config: AppConfig;
  readonly tables: FleetTables;
  readonly queues: StorageQueueSender;
  /** Policy as code, parsed once; undefined when the setting is unset. */
  readonly declaredPolicy: { ok: true; policy: DeclaredPolicy } | { ok: false; error: string } | undefined;
  /** The feeds and their trust, built on first use (trust anchors may be files). */
  feeds(): FeedSet;
  /** The relay client, made on first use; rejects when no relay is configured. */
  agents(): Promise<AgentClient>;
  /** The rollout steps' caches (stored packages, plan pages, shared reads, group commits). */
  readonly rolloutCaches: RolloutCaches;
}

/** One invocation's view of the context: the shared parts with the invocation's logger and notifier. */
export interface Invocation {
  readonly app: AppContext;
  readonly logger: Logger;
  readonly notify: Notify;
}

export function createAppContext(config: AppConfig): AppContext {
  let feeds: FeedSet | undefined;
  let agents: Promise<AgentClient> | undefined;
  const connectRelay = async (): Promise<AgentClient> => agentClientFor(relayTargetOf(config));
  return {
    config,
    ...storageClients(storageConnectionOf(config), config),
    rolloutCaches: createRolloutCaches(),
    declaredPolicy:
      config.declaredPolicy === undefined
        ? undefined
        : parseDeclaredPolicy(config.declaredPolicy, settingNameOf.declaredPolicy),
    feeds: () => {
      feeds ??= feedsOf(feedSources(config));
      return feeds;
    },
    agents: () => {
      agents ??= connectRelay().catch((error: unknown) => {
        // A failure (no relay, no credential yet) is not kept: the next use tries again.
        agents = undefined;
        throw error;
      });
      return agents;
    },
  };
}

/**
 * The contexts of this process, by the settings they were built from: the Functions host runs one
 * deployment per worker, so this holds one context, built on the first invocation. Tests and the
 * local host run several deployments in one process (a few are kept).
 */
const contexts = new Map<string, AppContext>();
const keptContexts = 8;

/** The app context for these settings (the process environment by default): parsed and built once. */
export function appContextFor(environment: Record<string, string | undefined> = process.env): AppContext {
  const key = JSON.stringify(settingNames.map((name) => environment[name] ?? null));
  let context = contexts.get(key);
  if (context) {
    contexts.delete(key);
  } else {
    context = createAppContext(loadConfig(environment));
  }
  contexts.set(key, context);
  for (const oldest of contexts.keys()) {
    if (contexts.size <= keptContexts) break;
    contexts.delete(oldest);
  }
  return context;
}

/** An invocation of the app: its context, the invocation's log, and a notifier that logs there. */
export function invocationOf(app: AppContext, logger: Logger): Invocation {
  return {
    app,
    logger,
    notify: createNotifier({ ...(app.config.notifyUrl ? { url: app.config.notifyUrl } : {}), logger }),
  };
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

/** The invocation of a trigger: the process's context for the current settings, and the invocation's log. */
export function invocationFor(context: InvocationContext): Invocation {
  return invocationOf(appContextFor(), invocationLogger(context));
}

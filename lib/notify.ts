import type { Logger } from './log.js';
import { reason, renderReason, type Reason } from './model/reasons.js';

/** A reason as events carry it: a code of lib/model/reasons.ts and its detail. */
type ReasonFields = Reason<string>;

/** What emfleet tells the admins' channel about, as it happens. */
export type NotifyEvent =
  | {
      readonly kind: 'PackageAccepted';
      readonly feed: string;
      readonly sequence: number;
      readonly sha256: string;
      readonly added: readonly string[];
      readonly changed: readonly string[];
      readonly withdrawn: readonly string[];
    }
  | ({ readonly kind: 'PackageRejected'; readonly feed: string; readonly sha256: string } & ReasonFields)
  | ({ readonly kind: 'RolloutHalted'; readonly rolloutId: string } & ReasonFields)
  | { readonly kind: 'RolloutCompleted'; readonly rolloutId: string }
  | ({ readonly kind: 'RolloutAborted'; readonly rolloutId: string } & ReasonFields)
  | ({ readonly kind: 'RolloutRetried'; readonly rolloutId: string } & ReasonFields)
  /** Reconcile left these mitigations alone on these servers: a halted or aborted rollout holds them. */
  | {
      readonly kind: 'RolloutHeld';
      readonly rolloutId: string;
      readonly feed: string;
      readonly mitigationIds: readonly string[];
      readonly servers: readonly string[];
    }
  | { readonly kind: 'DriftFound'; readonly servers: readonly string[]; readonly rolloutId?: string }
  | ({
      readonly kind: 'FeedFrozen';
      readonly feed: string;
      readonly sequence: number;
      readonly sha256: string;
      readonly mitigationIds: readonly string[];
    } & ReasonFields)
  | { readonly kind: 'FeedThawed'; readonly feed: string; readonly sequence: number }
  | {
      readonly kind: 'PackageHeld';
      readonly feed: string;
      readonly sha256: string;
      readonly withdrawn: readonly string[];
    };

/** Resolves once the webhook answered, failed or timed out; never rejects. */
export type Notify = (event: NotifyEvent) => Promise<void>;

export interface NotifierOptions {
  /** A Slack or Microsoft Teams incoming webhook (EMFLEET_NOTIFY_URL); none means no notifications. */
  readonly url?: string | undefined;
  readonly logger: Logger;
  readonly timeoutInMs?: number;
  readonly fetchImpl?: typeof fetch;
}

/**
 * Teams rejects messages over about 28 KB: a drift report over a 10,000-server fleet names the
 * first servers and counts the rest.
 */
const maxNamedServers = 100;
const maxTextServers = 10;
const maxLoggedResponseChars = 200;

/**
 * A JSON POST that both Slack and Teams incoming webhooks accept: one readable line in `text`,
 * the structured event under `emfleet` (both services ignore fields they do not know), for
 * whoever reads the webhook with a script instead.
 */
export function createNotifier(options: NotifierOptions): Notify {
  const { url, logger, timeoutInMs = 10_000, fetchImpl = fetch } = options;
  if (!url) return async () => {};
  const format = webhookFormat(url);
  return async (event) => {
    const payload = notificationPayload(event, format);
    // The webhook URL is a secret (whoever has it can post to the channel): it is never logged.
    const context = { notification: payload.emfleet };
    try {
      const response = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(timeoutInMs),
      });
      const answer = (await response.text()).slice(0, maxLoggedResponseChars);
      if (response.ok) logger.info('NotificationSent', context);
      else
        logger.warn('NotificationFailed', {
          ...context,
          error: `the webhook answered ${response.status}${answer ? `: ${answer}` : ''}`,
        });
    } catch (error) {
      logger.warn('NotificationFailed', { ...context, error: describeFailure(error, timeoutInMs) });
    }
  };
}

/**
 * What the URL is: a Teams Workflows webhook (Power Automate "When a Teams webhook request is
 * received", on logic.azure.com or powerplatform.com) takes Adaptive Cards only; Slack's and the
 * retiring Office 365 connectors' incoming webhooks take `{ text }`.
 */
export function webhookFormat(url: string): 'adaptiveCard' | 'text' {
  let host: string;
  let path: string;
  try {
    ({ hostname: host, pathname: path } = new URL(url));
  } catch {
    return 'text';
  }
  const workflowHost = host.endsWith('.logic.azure.com') || host.endsWith('.api.powerplatform.com');
  return workflowHost && /\/workflows\//i.test(path) ? 'adaptiveCard' : 'text';
}

type Payload = { emfleet: Record<string, unknown> } & (
  | { text: string }
  | { type: 'message'; attachments: readonly Record<string, unknown>[] }
);

export function notificationPayload(event: NotifyEvent, format: 'adaptiveCard' | 'text' = 'text'): Payload {
  const { kind, ...fields } = event;
  const structured: Record<string, unknown> =
    event.kind === 'DriftFound' || event.kind === 'RolloutHeld'
      ? { ...fields, servers: event.servers.slice(0, maxNamedServers), serverCount: event.servers.length }
      : fields;
  const text = `emfleet: ${describe(event)}`;
  const emfleet = { event: kind, ...structured };
  if (format === 'text') return { text, emfleet };
  // The envelope the Workflows "post to a channel" templates read: a message with one Adaptive Card attachment.
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            { type: 'TextBlock', text: `emfleet: ${kind}`, weight: 'Bolder', size: 'Medium', wrap: true },
            { type: 'TextBlock', text: describe(event), wrap: true },
          ],
        },
      },
    ],
    emfleet,
  };
}

function describe(event: NotifyEvent): string {
  switch (event.kind) {
    case 'PackageAccepted': {
      const changes = (['added', 'changed', 'withdrawn'] as const)
        .filter((part) => event[part].length > 0)
        .map((part) => `${part} ${event[part].join(', ')}`);
      return `feed ${event.feed} accepted package ${event.sequence} (sha256 ${event.sha256.slice(0, 12)}): ${changes.join('; ') || 'no mitigation changed'}`;
    }
    case 'PackageRejected':
      return `feed ${event.feed} rejected a package (sha256 ${event.sha256.slice(0, 12)}): ${said(event)}`;
    case 'RolloutHalted':
      return `rollout ${event.rolloutId} halted: ${said(event)}`;
    case 'RolloutCompleted':
      return `rollout ${event.rolloutId} completed`;
    case 'RolloutAborted':
      return `rollout ${event.rolloutId} aborted: ${said(event)}`;
    case 'RolloutRetried':
      return `rollout ${event.rolloutId} retried: ${said(event)}`;
    case 'RolloutHeld':
      return `rollout ${event.rolloutId} holds ${event.mitigationIds.join(', ')} of feed ${event.feed}: reconcile left ${serverList(event.servers)} without them until the rollout is retried or the feed publishes different content`;
    case 'DriftFound':
      return `drift found on ${serverList(event.servers)}${event.rolloutId ? `; fix-up rollout ${event.rolloutId}` : ''}`;
    case 'FeedFrozen':
      return `feed ${event.feed} is frozen (${said(event)}): its package ${event.sequence} no longer verifies or is no longer configured; ${event.mitigationIds.join(', ') || 'none of its mitigations'} stay as they are, nothing of it is applied or removed until a verified package of the feed arrives`;
    case 'FeedThawed':
      return `feed ${event.feed} is no longer frozen: its package ${event.sequence} verifies again`;
    case 'PackageHeld':
      return `feed ${event.feed} holds a package for an admin: ${renderReason(reason('PackageHeld', event))}`;
  }
}

/** "3 servers (ex01, ex02, ex03)", the first ten named. */
function serverList(servers: readonly string[]): string {
  const named =
    servers.slice(0, maxTextServers).join(', ') +
    (servers.length > maxTextServers ? ` and ${servers.length - maxTextServers} more` : '');
  return `${servers.length} server${servers.length === 1 ? '' : 's'} (${named})`;
}

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();

/** The event's reason in the catalogue's words, on one line. */
const said = (event: ReasonFields): string =>
  renderReason({ reasonCode: event.reasonCode, reasonDetail: oneLine(event.reasonDetail) });

/** fetch says only "fetch failed"; the cause (ENOTFOUND, ECONNREFUSED...) is what an admin can act on. */
function describeFailure(error: unknown, timeoutInMs: number): string {
  if (error instanceof DOMException && error.name === 'TimeoutError')
    return `no answer within ${timeoutInMs} ms`;
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

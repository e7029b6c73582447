import { clip } from '../text.js';
import type { MitigationOutcome } from '../model/outcomes.js';
import { maxNoteLength, sameOutcome, type PlannedChange } from './outcomes.js';

/*
 * A server whose apply message the host gave up on (maxDequeueCount deliveries) is Unreachable and
 * counts as a failure. Pure: the poison handler reads the plan row, the stored result and the
 * server's site, asks here, and records what this returns.
 */

/** The site relay hub a server is reached through (DESIGN §8), when it is. */
export interface HubRoute {
  /** The server's site, '' when its Servers row names none. */
  readonly site: string;
  readonly hybridConnection: string;
  readonly relayPath: string;
}

export interface StoredAttempt {
  readonly status: 'InProgress' | 'Completed';
  readonly outcomes: Readonly<Record<string, MitigationOutcome>>;
}

export interface PoisonedResult {
  readonly outcomes: Readonly<Record<string, MitigationOutcome>>;
  /** False when a Completed result is stored already (another delivery got through): it is kept. */
  readonly record: boolean;
  /** The wave's note on the server (and so the halt reason): the site whose hub it was behind. */
  readonly note?: string;
  /** The hub answered for the agent on a failed attempt: its words are the outcomes. */
  readonly hubAnswered: boolean;
}

/**
 * Behind a site hub, the outcomes are the hub's last answer about the agent when there was one (the
 * hub was up, the agent was not), else the site whose hub did not answer; directly, the agent did
 * not answer through the relay.
 */
export function poisonedResult(
  plan: PlannedChange,
  stored: StoredAttempt | undefined,
  hub: HubRoute | undefined,
): PoisonedResult {
  const where = hub ? `site ${hub.site || '(none)'}'s relay hub on ${hub.hybridConnection}` : undefined;
  const hubAnswered =
    stored?.status === 'InProgress' && Object.keys(stored.outcomes).length > 0 ? stored.outcomes : undefined;
  const detail = where
    ? `${where} did not answer for ${hub!.relayPath}; the host gave up after maxDequeueCount deliveries`
    : 'the agent did not answer through the relay; the host gave up after maxDequeueCount deliveries';
  const note = where
    ? clip(hubAnswered ? `Unreachable behind ${where}` : `Unreachable: ${where} down`, maxNoteLength)
    : undefined;
  return {
    outcomes: hubAnswered ?? sameOutcome(plan, 'Unreachable', detail),
    record: stored?.status !== 'Completed',
    ...(note ? { note } : {}),
    hubAnswered: hubAnswered !== undefined,
  };
}

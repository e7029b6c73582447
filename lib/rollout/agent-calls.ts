import type { MitigationOutcome } from '../model/outcomes.js';
import type { OnDegraded } from '../model/policy.js';
import { sameOutcome, type PlannedChange } from './outcomes.js';

/*
 * What applyToServer asks a server's agent, and what it makes of the answers. Pure: the step reads
 * the package, sends the requests, waits for the operations and records what these return.
 */

export interface AgentRequests {
  /** The apply request less the package (read only when there is something to apply). */
  readonly apply?: {
    readonly operationId: string;
    readonly mitigationIds: string[];
    readonly onDegraded?: OnDegraded;
  };
  readonly remove?: { readonly operationId: string; readonly mitigationIds: string[] };
}

/**
 * One request per kind of change, each under its own operation id (`<id>.apply`, `<id>.remove`).
 * onDegraded goes only when it is not the default, so agents that predate it still accept the request.
 */
export function agentRequests(
  plan: PlannedChange & { readonly onDegraded: OnDegraded },
  operationId: string,
): AgentRequests {
  return {
    ...(plan.apply.length > 0
      ? {
          apply: {
            operationId: `${operationId}.apply`,
            mitigationIds: [...plan.apply],
            ...(plan.onDegraded === 'keep' ? { onDegraded: plan.onDegraded } : {}),
          },
        }
      : {}),
    ...(plan.remove.length > 0
      ? { remove: { operationId: `${operationId}.remove`, mitigationIds: [...plan.remove] } }
      : {}),
  };
}

/** What the agent said about itself: the last reply that told (an old agent's reply may not). */
export interface AgentSaid {
  readonly build?: string | undefined;
  readonly agentVersion?: string | undefined;
}

export function agentSaid(
  reply: { readonly build?: string | undefined; readonly agentVersion?: string | undefined },
  before: AgentSaid | undefined,
): AgentSaid | undefined {
  return reply.build === undefined ? before : { build: reply.build, agentVersion: reply.agentVersion };
}

/** A call that failed (not the relay: the agent's answer or the package): every mitigation without an outcome yet Failed. */
export function withFailures(
  plan: PlannedChange,
  outcomes: Readonly<Record<string, MitigationOutcome>>,
  detail: string,
): Record<string, MitigationOutcome> {
  return { ...sameOutcome(plan, 'Failed', detail), ...outcomes };
}

import type { QueueSender } from '../../fleet/queues.js';
import type { FleetTables } from '../../fleet/storage.js';
import type { Timers } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { Notify } from '../../notify.js';
import type { ApplyRequest, OperationReply, StatusReply } from '../../relay/protocol.js';
import type { RolloutCaches } from '../caches.js';

/** The slice of AgentClient the steps use. */
export interface AgentPort {
  apply(hybridConnection: string, request: ApplyRequest): Promise<OperationReply>;
  remove(
    hybridConnection: string,
    request: { operationId: string; mitigationIds: string[] },
  ): Promise<OperationReply>;
  status(hybridConnection: string): Promise<StatusReply>;
}

/** What the queue steps need; the app context builds it (lib/app/queues.ts `stepDeps`). */
export interface StepDeps {
  readonly tables: FleetTables;
  readonly queues: QueueSender;
  readonly agents: AgentPort;
  readonly org: string;
  readonly logger: Logger;
  /** One per deployment, kept between invocations (lib/rollout/caches.ts). */
  readonly caches: RolloutCaches;
  readonly notify?: Notify;
  readonly now?: () => Date;
  /** Where a step waits within a delivery (an agent's 202 operation): the system's unless a test counts the waits. */
  readonly timers?: Timers;
  /** A paused rollout's messages come back this often until it is resumed or aborted. */
  readonly pausedRecheckMs?: number;
  /** How long to wait for an agent's 202 operation within one delivery, and how often to ask. */
  readonly operationWaitMs?: number;
  readonly operationPollMs?: number;
}

/** What moving a rollout with an event needs (the admin actions and the rollout's start use it too). */
export type EventDeps = Pick<StepDeps, 'tables' | 'queues' | 'logger' | 'now' | 'notify'>;

/** What the queue trigger tells about a delivery (the host's trigger metadata). */
export interface Delivery {
  readonly triggerMetadata?: Record<string, unknown> | undefined;
}

export function firstDelivery(delivery: Delivery | undefined): boolean {
  return delivery?.triggerMetadata?.['dequeueCount'] === 1;
}

import type { InvocationContext } from '@azure/functions';
import { hostStorageConnection } from '../config/index.js';
import { queueNames } from '../fleet/queues.js';
import { applyServerMessage, gateWaveMessage, startWaveMessage } from '../rollout/messages.js';
import { applyPoisoned } from '../rollout/steps/apply-poisoned.js';
import { applyToServer } from '../rollout/steps/apply-to-server.js';
import type { StepDeps } from '../rollout/steps/deps.js';
import { gateWave } from '../rollout/steps/gate-wave.js';
import { recordInvalidMessage } from '../rollout/steps/invalid-message.js';
import { startWave } from '../rollout/steps/start-wave.js';
import { invocationFor, type Invocation } from './context.js';

/** The app setting naming the storage the queue triggers listen on: the host's own. */
export const queueConnection = hostStorageConnection;

/** The queues the rollout steps listen on; poison is where the host moves an apply message it gave up on. */
export const stepQueues = {
  startWave: queueNames.waves,
  applyToServer: queueNames.apply,
  gateWave: queueNames.gate,
  applyPoison: `${queueNames.apply}-poison`,
} as const;

/** What the queue steps need. */
export async function stepDeps({ app, logger, notify }: Invocation): Promise<StepDeps> {
  return {
    tables: app.tables,
    queues: app.queues,
    agents: await app.agents(),
    org: app.config.org,
    logger,
    notify,
    caches: app.rolloutCaches,
  };
}

interface MessageSchema<T> {
  safeParse(
    value: unknown,
  ):
    | { success: true; data: T }
    | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
}

/**
 * The handler of a rollout queue step: parse the message (an invalid one is recorded with its id
 * and dropped, never retried), build the dependencies, run the step. Throwing lets the host retry
 * with its visibility timeout.
 */
function queueStepHandler<T>(
  queue: string,
  schema: MessageSchema<T>,
  step: (deps: StepDeps, message: T, context: InvocationContext) => Promise<void>,
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const invocation = invocationFor(context);
    const parsed = schema.safeParse(message);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      await recordInvalidMessage(
        { tables: invocation.app.tables, logger: invocation.logger },
        queue,
        String(context.triggerMetadata?.['id'] ?? ''),
        `${issue.path.join('.') || 'message'}: ${issue.message}`,
      );
      return;
    }
    await step(await stepDeps(invocation), parsed.data, context);
  };
}

export const startWaveHandler = queueStepHandler(stepQueues.startWave, startWaveMessage, startWave);
export const applyToServerHandler = queueStepHandler(
  stepQueues.applyToServer,
  applyServerMessage,
  applyToServer,
);
export const gateWaveHandler = queueStepHandler(stepQueues.gateWave, gateWaveMessage, gateWave);
/** Messages the host gave up on after maxDequeueCount: the server is Unreachable and counts as a failure. */
export const applyPoisonHandler = queueStepHandler(stepQueues.applyPoison, applyServerMessage, applyPoisoned);

import { systemNow, systemTimers } from '../../clock.js';
import type { AgentFacts } from '../../fleet/agent-facts.js';
import { queueNames } from '../../fleet/queues.js';
import { readResult, recordAttempt, upsertResults } from '../../fleet/results.js';
import type { PlanRowEntity, RolloutStateRow } from '../../fleet/schemas.js';
import type { MitigationOutcome } from '../../model/outcomes.js';
import { verdictOf } from '../../model/outcomes.js';
import { operationIdOf } from '../../model/operation-id.js';
import type { OperationReply } from '../../relay/protocol.js';
import { hubAnswerOf, RelayTimeoutError, RelayUnreachableError } from '../../relay/sender.js';
import { clip } from '../../text.js';
import { agentRequests, agentSaid, withFailures } from '../agent-calls.js';
import { attemptOf, decideApply, resultSource } from '../deliveries.js';
import type { ApplyServerMessage } from '../messages.js';
import { answeredByAgent, failureNote, sameOutcome } from '../outcomes.js';
import { accountAndDispatch } from './account-wave.js';
import { firstDelivery, type Delivery, type StepDeps } from './deps.js';
import { packageForRollout, readPlanRow, readStateNow } from './reads.js';

type Outcomes = Record<string, MitigationOutcome>;

/**
 * applyToServer: one server, one operation id (rollout, wave, server). The agent is asked only if
 * no completed result exists; the result is counted once (a bit per plan index in the wave row);
 * then the window slides on. Relay failures are thrown, so the host retries the message and, after
 * maxDequeueCount, hands it to the poison handler.
 *
 * Storage round trips per server: the state row, the result, the message sent on and the host's
 * delete; plan rows are read a page at a time, and the Servers rows and the wave's counters of the
 * results that finish together are written together (group commit).
 */
export async function applyToServer(
  deps: StepDeps,
  message: ApplyServerMessage,
  delivery?: Delivery,
): Promise<void> {
  const where = { rolloutId: message.rolloutId, wave: message.wave, index: message.index };
  const [state, plan] = await Promise.all([
    readStateNow(deps, message.rolloutId),
    readPlanRow(deps, message),
  ]);
  const decision = decideApply(state, plan !== undefined, message, firstDelivery(delivery));
  if (decision.kind === 'ignored' || !state || !plan) {
    deps.logger.warn('ApplyIgnored', { ...where, ...(decision.kind === 'ignored' ? decision.reason : {}) });
    return;
  }
  const attempt = attemptOf(message);
  const operationId = operationIdOf(message.rolloutId, message.wave, plan.server, attempt);
  const context = { ...where, server: plan.server, operationId };
  if (decision.kind === 'superseded') {
    deps.logger.info('ApplyIgnored', { ...context, ...decision.reason });
    return;
  }
  if (decision.kind === 'held') {
    await deps.queues.send(queueNames.apply, message, { delayInMs: deps.pausedRecheckMs ?? 30_000 });
    deps.logger.info('ApplyHeld', {
      ...context,
      reasonCode: state.reasonCode,
      reasonDetail: state.reasonDetail,
    });
    return;
  }
  const stored = decision.readStored ? await readResult(deps.tables, plan.server, operationId) : undefined;
  const existing = stored?.status === 'Completed' ? stored.outcomes : undefined;
  let outcomes: Outcomes;
  let facts: AgentFacts | undefined;
  let recorded: Promise<void> | undefined;
  switch (resultSource(existing !== undefined, decision.running)) {
    case 'stored':
      outcomes = existing!;
      break;
    case 'skip':
      outcomes = sameOutcome(plan, 'Skipped', `rollout is ${state.state}; ${plan.server} was not touched`);
      recorded = recordResult(deps, plan, operationId, state, outcomes);
      break;
    case 'agent':
      ({ outcomes, facts } = await callAgent(deps, state, plan, operationId));
      recorded = recordResult(deps, plan, operationId, state, outcomes);
      break;
  }
  const verdict = verdictOf(outcomes);
  deps.logger.info('ServerResult', { ...context, verdict, outcomes });
  const note = verdict === 'failed' ? failureNote(outcomes) : undefined;
  // What the agent answered goes on the Servers row too (again on a redelivery, in case that write was lost).
  await accountAndDispatch(
    deps,
    message.rolloutId,
    { wave: message.wave, attempt },
    {
      result: { index: message.index, server: plan.server, verdict, ...(note ? { note } : {}) },
      ...(recorded === undefined ? {} : { recorded }),
      ...(answeredByAgent(outcomes)
        ? { report: { plan, outcomes, at: deps.now?.() ?? new Date(), ...(facts ? { facts } : {}) } }
        : {}),
    },
  );
}

/**
 * Asks the agent to apply and remove what the plan row says (agent-calls.ts), under the operation
 * id. A relay that did not deliver or answer is thrown (the host retries the whole message; the
 * agent recognises the operation id); any other failure is the server's Failed outcome.
 */
async function callAgent(
  deps: StepDeps,
  state: RolloutStateRow,
  plan: PlanRowEntity,
  operationId: string,
): Promise<{ outcomes: Outcomes; facts?: AgentFacts }> {
  const requests = agentRequests(plan, operationId);
  let outcomes: Outcomes = {};
  let facts: AgentFacts | undefined;
  try {
    if (requests.apply) {
      const packageBase64 = await packageForRollout(deps, state);
      const reply = await deps.agents.apply(plan.hybridConnection, { ...requests.apply, packageBase64 });
      facts = agentSaid(reply, facts);
      outcomes = { ...outcomes, ...(await finished(deps, state.partitionKey, plan, reply)).outcomes };
    }
    if (requests.remove) {
      const reply = await deps.agents.remove(plan.hybridConnection, requests.remove);
      facts = agentSaid(reply, facts);
      outcomes = { ...outcomes, ...(await finished(deps, state.partitionKey, plan, reply)).outcomes };
    }
  } catch (error) {
    if (error instanceof RelayUnreachableError || error instanceof RelayTimeoutError) {
      // A site hub that could not reach the agent said why: kept (not counted), so that if the host
      // gives up, the poison handler records the hub's words as the Unreachable detail.
      const hubAnswer = hubAnswerOf(error);
      if (hubAnswer !== undefined)
        await recordAttempt(deps.tables, {
          server: plan.server,
          operationId,
          rolloutId: state.partitionKey,
          operation: state.operation,
          outcomes: sameOutcome(plan, 'Unreachable', clip(hubAnswer, 2000)),
          at: deps.now?.() ?? new Date(),
        });
      throw error;
    }
    outcomes = withFailures(plan, outcomes, error instanceof Error ? error.message : String(error));
  }
  return { outcomes, ...(facts ? { facts } : {}) };
}

/** Waits, within this delivery, for an operation the agent answered with 202. */
async function finished(
  deps: StepDeps,
  rolloutId: string,
  plan: PlanRowEntity,
  reply: OperationReply,
): Promise<OperationReply> {
  const now = deps.now ?? systemNow;
  const timers = deps.timers ?? systemTimers;
  const until = now().getTime() + (deps.operationWaitMs ?? 45_000);
  let current = reply;
  while (current.status !== 'Completed') {
    if (now().getTime() > until)
      throw new RelayTimeoutError(
        `${plan.server} is still working on ${reply.operationId}; asking again later`,
        {
          context: {
            rolloutId,
            server: plan.server,
            operationId: reply.operationId,
          },
        },
      );
    await new Promise<void>((resolve) => timers.setTimeout(resolve, deps.operationPollMs ?? 2000));
    const status = await deps.agents.status(plan.hybridConnection);
    current = status.operations.find((operation) => operation.operationId === reply.operationId) ?? current;
  }
  return current;
}

/** The server's result for the operation, Completed: what the wave counts. */
export function recordResult(
  deps: StepDeps,
  plan: PlanRowEntity,
  operationId: string,
  state: RolloutStateRow,
  outcomes: Readonly<Outcomes>,
): Promise<void> {
  return upsertResults(deps.tables, [
    {
      server: plan.server,
      operationId,
      rolloutId: state.partitionKey,
      operation: state.operation,
      status: 'Completed',
      outcomes,
      at: deps.now?.() ?? new Date(),
    },
  ]).then(() => undefined);
}

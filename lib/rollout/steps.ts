import { createHash } from 'node:crypto';
import { groupCommit, mapWithConcurrency } from '../concurrency.js';
import { writeAudit } from '../fleet/audit.js';
import { readPackage } from '../fleet/packages.js';
import { factsUpdate, type AgentFacts } from '../fleet/agent-facts.js';
import { maxTransactionSize } from '../fleet/batch.js';
import { getEntityOrUndefined, mutateEntity, type Mutation } from '../fleet/optimistic.js';
import { queueNames, type QueueSender } from '../fleet/queues.js';
import { upsertResults } from '../fleet/results.js';
import {
  planPageSize,
  planPartitionKey,
  updateRolloutState,
  updateRolloutStateAndWave,
  waveEntity,
  waveKey,
} from '../fleet/rollouts.js';
import { odata, type TableEntity, type TransactionAction } from '@azure/data-tables';
import { describeRowProblem, isStatus, validateRow } from '../fleet/rows.js';
import {
  planRow,
  resultRow,
  rolloutStateRow,
  serverRow,
  waveRow,
  type Outcome,
  type PlanRowEntity,
  type RolloutStateRow,
  type WaveRow,
} from '../fleet/schemas.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { Notify } from '../notify.js';
import {
  endpointName,
  type ApplyRequest,
  type MitigationOutcome,
  type OperationReply,
  type StatusReply,
} from '../relay/protocol.js';
import { clip } from '../text.js';
import { parseRelayAddress } from '../relay/route.js';
import { hubAnswerOf, RelayTimeoutError, RelayUnreachableError } from '../relay/sender.js';
import type { ApplyServerMessage, GateWaveMessage, StartWaveMessage } from './messages.js';
import { bitIsSet, nextWindow, retriedWave, withBit } from './pass.js';
import { transition, type RolloutEffect, type RolloutEvent, type RolloutStatus } from './state.js';

/** The slice of AgentClient the steps use. */
export interface AgentPort {
  apply(hybridConnection: string, request: ApplyRequest): Promise<OperationReply>;
  remove(
    hybridConnection: string,
    request: { operationId: string; mitigationIds: string[] },
  ): Promise<OperationReply>;
  status(hybridConnection: string): Promise<StatusReply>;
}

export interface StepDeps {
  readonly tables: FleetTables;
  readonly queues: QueueSender;
  readonly agents: AgentPort;
  readonly org: string;
  readonly logger: Logger;
  readonly notify?: Notify;
  readonly now?: () => Date;
  /** A paused rollout's messages come back this often until it is resumed or aborted. */
  readonly pausedRecheckMs?: number;
  /** How long to wait for an agent's 202 operation within one delivery, and how often to ask. */
  readonly operationWaitMs?: number;
  readonly operationPollMs?: number;
}

const sendConcurrency = 16;
const maxNamedFailures = 50;
const maxNoteLength = 200;
/** Outcomes that count against a wave's error budget. */
export const failureOutcomes: readonly Outcome[] = [
  'Failed',
  'Unreachable',
  'Degraded',
  'Ineffective',
  'RolledBack',
];
/** What the probes found: the halt reason names the mitigation and the endpoints. */
const probeFailures: readonly Outcome[] = ['Degraded', 'RolledBack', 'Ineffective'];

/** startWave: send the first window of the wave (DESIGN §7). Late or stray messages change nothing. */
export async function startWave(deps: StepDeps, message: StartWaveMessage): Promise<void> {
  const state = await readState(deps.tables, message.rolloutId);
  if (state?.state !== 'Running' || state.currentWave !== message.wave) {
    deps.logger.info('StartWaveIgnored', {
      rolloutId: message.rolloutId,
      wave: message.wave,
      state: state?.state ?? 'missing',
      currentWave: state?.currentWave,
    });
    return;
  }
  await accountAndDispatch(deps, message.rolloutId, message.wave, state.attempt, undefined);
}

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
    readStateNow(deps.tables, message.rolloutId),
    readPlanRow(deps.tables, message),
  ]);
  if (!state || !plan) {
    deps.logger.warn('ApplyIgnored', { ...where, reason: !state ? 'no such rollout' : 'no such plan row' });
    return;
  }
  const attempt = message.attempt ?? 0;
  const operationId = operationIdOf(message.rolloutId, message.wave, plan.server, attempt);
  const context = { ...where, server: plan.server, operationId };
  if (message.wave === state.currentWave && attempt !== state.attempt) {
    deps.logger.info('ApplyIgnored', {
      ...context,
      reason: `superseded: wave ${message.wave + 1} is on retry ${state.attempt}`,
    });
    return;
  }
  if (state.state === 'Paused') {
    await deps.queues.send(queueNames.apply, message, { delayInMs: deps.pausedRecheckMs ?? 30_000 });
    deps.logger.info('ApplyHeld', { ...context, reason: 'rollout paused' });
    return;
  }
  const running =
    state.state === 'Running' && state.currentWave === message.wave && state.attempt === attempt;
  // A first delivery of a message for a running wave has no result of its own yet; should it be a
  // duplicate of a message already done, the agent answers the same operation id from memory.
  // Anything else may have one (a retry, a rollout stopped since), and it must not be overwritten.
  const existing =
    running && firstDelivery(delivery) ? undefined : await readResult(deps.tables, plan.server, operationId);
  let outcomes: Record<string, MitigationOutcome>;
  let facts: AgentFacts | undefined;
  let recorded: Promise<void> | undefined;
  if (existing) {
    outcomes = existing;
  } else if (!running) {
    outcomes = Object.fromEntries(
      [...plan.apply, ...plan.remove].map((id) => [
        id,
        { outcome: 'Skipped' as const, detail: `rollout is ${state.state}; ${plan.server} was not touched` },
      ]),
    );
    recorded = recordResult(deps, plan, operationId, state, outcomes);
  } else {
    ({ outcomes, facts } = await callAgent(deps, state, plan, operationId));
    recorded = recordResult(deps, plan, operationId, state, outcomes);
  }
  const verdict = verdictOf(outcomes);
  deps.logger.info('ServerResult', { ...context, verdict, outcomes });
  const note = verdict === 'failed' ? failureNote(outcomes) : undefined;
  // What the agent answered goes on the Servers row too (again on a redelivery, in case that write was lost).
  const fromAgent = Object.values(outcomes).some(
    (result) => result.outcome !== 'Skipped' && result.outcome !== 'Unreachable',
  );
  await accountAndDispatch(deps, message.rolloutId, message.wave, attempt, {
    result: { index: message.index, server: plan.server, verdict, ...(note ? { note } : {}) },
    ...(recorded === undefined ? {} : { recorded }),
    ...(fromAgent
      ? { report: { plan, outcomes, at: deps.now?.() ?? new Date(), ...(facts ? { facts } : {}) } }
      : {}),
  });
}

/** What the queue trigger tells about a delivery (the host's trigger metadata). */
export interface Delivery {
  readonly triggerMetadata?: Record<string, unknown> | undefined;
}

function firstDelivery(delivery: Delivery | undefined): boolean {
  return delivery?.triggerMetadata?.['dequeueCount'] === 1;
}

/**
 * The poison handler: a server whose messages kept failing is Unreachable and counts as a failure.
 * Behind a site hub, the detail is the hub's last answer about the agent when there was one (the
 * hub was up, the agent was not), else the site whose hub did not answer; the wave's note (and so
 * the halt reason) names the site.
 */
export async function applyPoisoned(deps: StepDeps, message: ApplyServerMessage): Promise<void> {
  const state = await readState(deps.tables, message.rolloutId);
  const plan = await readPlanRow(deps.tables, message);
  if (!state || !plan) return;
  const attempt = message.attempt ?? 0;
  if (message.wave === state.currentWave && attempt !== state.attempt) return;
  const operationId = operationIdOf(message.rolloutId, message.wave, plan.server, attempt);
  // The poison message's own dequeue count starts again at 1; what matters is that the host gave up.
  const stored = await readStoredResult(deps.tables, plan.server, operationId);
  const { relayPath, hybridConnection } = parseRelayAddress(plan.hybridConnection);
  const site = relayPath === undefined ? undefined : await siteOf(deps, plan.server);
  const hub = site === undefined ? undefined : `site ${site || '(none)'}'s relay hub on ${hybridConnection}`;
  const hubAnswered =
    stored?.status === 'InProgress' && Object.keys(stored.outcomes).length > 0 ? stored.outcomes : undefined;
  const detail = hub
    ? `${hub} did not answer for ${relayPath}; the host gave up after maxDequeueCount deliveries`
    : 'the agent did not answer through the relay; the host gave up after maxDequeueCount deliveries';
  const outcomes =
    hubAnswered ??
    Object.fromEntries(
      [...plan.apply, ...plan.remove].map((id) => [id, { outcome: 'Unreachable' as const, detail }]),
    );
  if (stored?.status !== 'Completed') await recordResult(deps, plan, operationId, state, outcomes);
  const note = hub
    ? clip(hubAnswered ? `Unreachable behind ${hub}` : `Unreachable: ${hub} down`, maxNoteLength)
    : undefined;
  deps.logger.warn('ServerUnreachable', {
    rolloutId: message.rolloutId,
    wave: message.wave,
    server: plan.server,
    operationId,
    ...(site === undefined ? {} : { site, hybridConnection, hubAnswered: hubAnswered !== undefined }),
  });
  await accountAndDispatch(deps, message.rolloutId, message.wave, attempt, {
    result: { index: message.index, server: plan.server, verdict: 'failed', ...(note ? { note } : {}) },
  });
}

async function siteOf(deps: StepDeps, server: string): Promise<string> {
  const client = await deps.tables.client('Servers');
  const entity = await getEntityOrUndefined(client, deps.org, server);
  const checked = entity ? validateRow('Servers', serverRow, entity) : undefined;
  return checked?.ok ? checked.row.site : '';
}

/** gateWave: after the bake, judge the wave against its error budget. */
export async function gateWave(deps: StepDeps, message: GateWaveMessage): Promise<void> {
  const wave = await readWave(deps.tables, message.rolloutId, message.wave);
  if (!wave) return;
  await applyEvent(deps, message.rolloutId, {
    kind: 'gate',
    wave: message.wave,
    counts: {
      servers: wave.row.servers,
      succeeded: wave.row.succeeded,
      failed: wave.row.failed,
      skipped: wave.row.skipped,
    },
    maxErrors: wave.row.maxErrors,
    failedServers: wave.row.failedServers.map((server) =>
      wave.row.failureNotes?.[server] ? `${server} [${wave.row.failureNotes[server]}]` : server,
    ),
  });
}

/**
 * Moves a rollout with the pure state machine, writes the new state (ETag), and only then carries
 * out its effects. A refused event (a duplicate, a late message) is logged and changes nothing.
 */
export type EventDeps = Pick<StepDeps, 'tables' | 'queues' | 'logger' | 'now' | 'notify'>;

export async function applyEvent(
  deps: EventDeps,
  rolloutId: string,
  event: RolloutEvent,
): Promise<{ ok: boolean; reason?: string; state?: RolloutStateRow }> {
  let effects: readonly RolloutEffect[] = [];
  let refusal: string | undefined;
  const state = await updateRolloutState(
    deps.tables,
    rolloutId,
    (current) => {
      const result = transition(statusOf(current), event);
      if (!result.ok) {
        refusal = result.reason;
        return undefined;
      }
      refusal = undefined;
      effects = result.effects;
      // An event that changes nothing (a retry of a halt already retried) is not written again.
      if (JSON.stringify(result.status) === JSON.stringify(statusOf(current))) return undefined;
      return stateChanges(result.status);
    },
    deps.now ? { now: deps.now() } : {},
  );
  if (refusal) {
    deps.logger.info('RolloutEventRefused', { rolloutId, rolloutEvent: event.kind, reason: refusal });
    return { ok: false, reason: refusal, state };
  }
  deps.logger.info('RolloutTransition', {
    rolloutId,
    rolloutEvent: event.kind,
    state: state.state,
    wave: state.currentWave,
    reason: state.reason,
  });
  for (const effect of effects) await carryOut(deps, rolloutId, state, effect);
  return { ok: true, state };
}

/**
 * Retry (DESIGN §7): the halted wave's servers that failed or were never reached are sent again
 * under new operation ids with a fresh error count, then the rollout carries on as usual. The
 * state row and the wave row change together, in one transaction. Retrying a halt that was
 * already retried changes nothing, and is answered as done.
 */
export async function retryRollout(
  deps: EventDeps,
  rolloutId: string,
  actor: string,
): Promise<Awaited<ReturnType<typeof applyEvent>>> {
  const event: RolloutEvent = { kind: 'retry', actor };
  let effects: readonly RolloutEffect[] = [];
  let refusal: string | undefined;
  let resent: number | undefined;
  const waveIndex = (await readState(deps.tables, rolloutId))?.currentWave ?? 0;
  const state = await updateRolloutStateAndWave(
    deps.tables,
    rolloutId,
    waveIndex,
    (stored, wave) => {
      // Halted on a later wave since the state was read (a retry went on and halted again): ask again.
      const result =
        stored.currentWave === waveIndex
          ? transition(statusOf(stored), event)
          : {
              ok: false as const,
              reason: `retry refused: the rollout moved on to wave ${stored.currentWave + 1} meanwhile; retry again`,
            };
      refusal = result.ok ? undefined : result.reason;
      effects = result.ok ? result.effects : [];
      resent = undefined;
      if (!result.ok || JSON.stringify(result.status) === JSON.stringify(statusOf(stored))) return undefined;
      const next = retriedWave(wave, wave.attempt + 1);
      resent = next.servers - next.succeeded;
      return { state: { ...stateChanges(result.status), attempt: next.attempt }, wave: next };
    },
    deps.now ? { now: deps.now() } : {},
  );
  if (refusal) {
    deps.logger.info('RolloutEventRefused', { rolloutId, rolloutEvent: event.kind, reason: refusal });
    return { ok: false, reason: refusal, state };
  }
  if (resent === undefined) {
    deps.logger.info('RolloutRetryAlreadyDone', {
      rolloutId,
      state: state.state,
      wave: state.currentWave,
      attempt: state.attempt,
      reason: state.reason,
    });
    return { ok: true, state };
  }
  deps.logger.info('RolloutTransition', {
    rolloutId,
    rolloutEvent: event.kind,
    state: state.state,
    wave: state.currentWave,
    attempt: state.attempt,
    resent,
    reason: state.reason,
  });
  for (const effect of effects) await carryOut(deps, rolloutId, state, effect);
  return { ok: true, state };
}

/** The fields of the state row the state machine moves. */
function stateChanges(next: RolloutStatus): Partial<RolloutStateRow> {
  return {
    state: next.state,
    currentWave: next.currentWave,
    reason: next.reason,
    profile: next.profile,
    resumeTo: next.resumeTo,
    attempt: next.attempt,
    halts: next.halts,
  };
}

async function carryOut(
  deps: EventDeps,
  rolloutId: string,
  state: RolloutStateRow,
  effect: RolloutEffect,
): Promise<void> {
  switch (effect.kind) {
    case 'startWave':
      await deps.queues.send(queueNames.waves, { rolloutId, wave: effect.wave });
      return;
    case 'scheduleGate': {
      const wave = await readWave(deps.tables, rolloutId, effect.wave);
      await deps.queues.send(
        queueNames.gate,
        { rolloutId, wave: effect.wave },
        { delayInMs: effect.immediately ? 0 : (wave?.row.bakeInMs ?? 0) },
      );
      return;
    }
    case 'notify':
      deps.logger.info(effect.event, { rolloutId, reason: state.reason });
      await deps.notify?.(
        effect.event === 'RolloutCompleted'
          ? { kind: effect.event, rolloutId }
          : { kind: effect.event, rolloutId, reason: state.reason },
      );
      return;
  }
}

type CountedResult = {
  index: number;
  server: string;
  verdict: 'succeeded' | 'failed' | 'skipped';
  note?: string;
};

/** One server's part of a count. */
interface Counted {
  readonly result: CountedResult;
  /** Its result row being written: a result is counted only once it is stored. */
  readonly recorded?: Promise<void>;
  /** What the agent answered, for the Servers row's reported state. */
  readonly report?: Report;
}

/** `facts`: what the agent said about itself in its reply (build, version), kept on the Servers row too. */
type Report = {
  plan: PlanRowEntity;
  outcomes: Record<string, MitigationOutcome>;
  at: Date;
  facts?: AgentFacts;
};
type CountEntry = {
  deps: StepDeps;
  rolloutId: string;
  waveIndex: number;
  attempt: number;
  counted: Counted | undefined;
};

/**
 * Counts one server's result (once: the wave row keeps a bit per plan index), puts what the agent
 * answered on its Servers row, and slides the window: sends the next servers so that at most
 * maxConcurrency are in flight. The servers of one wave that finish while a count is being
 * written go together in the next (group commit): their Servers rows in one transaction, the wave
 * row in one ETag write, so concurrent servers do not fight over the row. The rows are read while
 * the results are still being stored. Messages are sent before the wave row is written; if the
 * write loses a race (another host instance) the step starts over, sending only what it has not
 * sent yet, and a message sent twice is harmless because results are keyed by operation id. When
 * the last result is in, the rollout moves on to bake.
 */
async function accountAndDispatch(
  deps: StepDeps,
  rolloutId: string,
  waveIndex: number,
  attempt: number,
  counted: Counted | undefined,
): Promise<void> {
  const entry: CountEntry = { deps, rolloutId, waveIndex, attempt, counted };
  const notStored = (
    await countTogether(
      `${instanceKey(deps.tables, deps.queues)}|${rolloutId}|${waveIndex}|${attempt}`,
      entry,
    )
  ).get(entry);
  if (notStored) throw notStored.reason;
}

const countTogether = groupCommit(
  async (_key: string, batch: readonly CountEntry[]): Promise<Map<CountEntry, { reason: unknown }>> => {
    const { deps, rolloutId, waveIndex, attempt } = batch[0]!;
    // A server's slot is free once its agent has answered: the next servers are sent as soon as the
    // wave row is read, while the results and Servers rows are still being written. Should a result
    // then fail to store, its redelivery is answered from the agent's memory (same operation id), so
    // no agent is asked to change more than maxConcurrency at a time. `dispatched` is written past
    // every index sent here, so no later commit sends them again.
    const sent = new Set<number>();
    const reading = readStateAndWave(deps.tables, rolloutId, waveIndex);
    const [stored, read, servers] = await Promise.all([
      Promise.allSettled(batch.map((entry) => entry.counted?.recorded)),
      reading.then(async (first) => {
        const { state, wave } = first;
        if (
          !wave ||
          state?.state !== 'Running' ||
          state.currentWave !== waveIndex ||
          wave.row.attempt !== attempt
        )
          return first;
        const answered = batch.filter(
          (entry) => entry.counted && !bitIsSet(wave.row.counted, entry.counted.result.index),
        ).length;
        await mapWithConcurrency(
          nextWindow(wave.row, answered),
          sendConcurrency,
          async ({ position, index }) => {
            await deps.queues.send(queueNames.apply, applyMessage(rolloutId, waveIndex, index, attempt));
            sent.add(position);
          },
        );
        return first;
      }),
      readServerRows(
        deps,
        batch.flatMap((entry) => (entry.counted?.report ? [entry.counted.report.plan.server] : [])),
      ),
    ]);
    // A result that could not be stored is not counted: its message fails and is delivered again.
    const notStored = new Map<CountEntry, { reason: unknown }>();
    stored.forEach((outcome, position) => {
      if (outcome.status === 'rejected') notStored.set(batch[position]!, { reason: outcome.reason });
    });
    const counted = batch.flatMap((entry) => (entry.counted && !notStored.has(entry) ? [entry.counted] : []));
    await Promise.all([
      writeReports(
        deps,
        counted.flatMap((entry) => (entry.report ? [entry.report] : [])),
        servers,
      ),
      countResults(
        deps,
        rolloutId,
        waveIndex,
        attempt,
        counted.map((entry) => entry.result),
        read,
        sent,
      ),
    ]);
    return notStored;
  },
);

/**
 * `sent` holds positions in the wave's pass (lib/rollout/pass.ts); results of another pass than
 * the wave's current one (a message older than a retry) are not counted.
 */
async function countResults(
  deps: StepDeps,
  rolloutId: string,
  waveIndex: number,
  attempt: number,
  results: readonly CountedResult[],
  firstRead: Awaited<ReturnType<typeof readStateAndWave>>,
  sent: Set<number>,
): Promise<void> {
  const client = await deps.tables.client('Rollouts');
  for (let round = 1; round <= 25; round++) {
    const { state, wave: stored } =
      round === 1 ? firstRead : await readStateAndWave(deps.tables, rolloutId, waveIndex);
    if (!stored || stored.row.attempt !== attempt) return;
    const wave: WaveRow = { ...stored.row };
    for (const result of results) {
      if (bitIsSet(wave.counted, result.index)) continue;
      wave.counted = withBit(wave.counted, result.index);
      wave[result.verdict] += 1;
      if (result.verdict !== 'succeeded') wave.failedIndices = withBit(wave.failedIndices, result.index);
      if (result.verdict === 'failed' && wave.failedServers.length < maxNamedFailures) {
        wave.failedServers = [...wave.failedServers, result.server];
        if (result.note) wave.failureNotes = { ...(wave.failureNotes ?? {}), [result.server]: result.note };
      }
    }
    const done = wave.succeeded + wave.failed + wave.skipped;
    const sending =
      state?.state === 'Running' && state.currentWave === waveIndex && state.attempt === attempt;
    const window = sending ? nextWindow(wave, 0) : [];
    const fresh = window.filter(({ position }) => !sent.has(position));
    wave.dispatched = Math.max(
      wave.dispatched,
      ...window.map(({ position }) => position + 1),
      ...[...sent].map((position) => position + 1),
    );
    const changed = JSON.stringify(wave) !== JSON.stringify(stored.row);
    await mapWithConcurrency(fresh, sendConcurrency, async ({ position, index }) => {
      await deps.queues.send(queueNames.apply, applyMessage(rolloutId, waveIndex, index, attempt));
      sent.add(position);
    });
    if (changed) {
      try {
        await client.updateEntity(waveEntity(wave), 'Replace', { etag: stored.etag });
      } catch (error) {
        if (isStatus(error, 412)) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(1000, 5 * 2 ** round)));
          continue;
        }
        throw error;
      }
    }
    if (done >= wave.servers && sending) {
      await applyEvent(deps, rolloutId, { kind: 'waveFinished', wave: waveIndex });
    }
    return;
  }
  throw new Error(`wave ${waveIndex + 1} of ${rolloutId} kept changing; the message will be retried`);
}

/** A first pass's messages keep the shape they had before retries existed. */
function applyMessage(rolloutId: string, wave: number, index: number, attempt: number): ApplyServerMessage {
  return { rolloutId, wave, index, ...(attempt > 0 ? { attempt } : {}) };
}

/** Distinct clients (one deployment each) never share a batch. */
const instanceIds = new WeakMap<object, number>();
let lastInstanceId = 0;
function instanceKey(...instances: object[]): string {
  return instances
    .map((instance) => {
      let id = instanceIds.get(instance);
      if (id === undefined) instanceIds.set(instance, (id = ++lastInstanceId));
      return String(id);
    })
    .join('/');
}

async function callAgent(
  deps: StepDeps,
  state: RolloutStateRow,
  plan: PlanRowEntity,
  operationId: string,
): Promise<{ outcomes: Record<string, MitigationOutcome>; facts?: AgentFacts }> {
  const outcomes: Record<string, MitigationOutcome> = {};
  let facts: AgentFacts | undefined;
  const factsOf = (reply: OperationReply): AgentFacts | undefined =>
    reply.build === undefined ? facts : { build: reply.build, agentVersion: reply.agentVersion };
  try {
    if (plan.apply.length > 0) {
      const packageBase64 = await packageForRollout(deps.tables, state.feed, state.packageSequence);
      // onDegraded goes only when it is not the default, so agents that predate it still accept the request.
      const onDegraded = plan.onDegraded === 'keep' ? { onDegraded: plan.onDegraded } : {};
      const reply = await deps.agents.apply(plan.hybridConnection, {
        operationId: `${operationId}.apply`,
        packageBase64,
        mitigationIds: [...plan.apply],
        ...onDegraded,
      });
      facts = factsOf(reply);
      Object.assign(outcomes, (await finished(deps, plan, reply)).outcomes);
    }
    if (plan.remove.length > 0) {
      const reply = await deps.agents.remove(plan.hybridConnection, {
        operationId: `${operationId}.remove`,
        mitigationIds: [...plan.remove],
      });
      facts = factsOf(reply);
      Object.assign(outcomes, (await finished(deps, plan, reply)).outcomes);
    }
  } catch (error) {
    // The relay did not deliver or answer: retry the whole message (the agent recognises the operation id).
    if (error instanceof RelayUnreachableError || error instanceof RelayTimeoutError) {
      // A site hub that could not reach the agent said why: kept (not counted), so that if the host
      // gives up, the poison handler records the hub's words as the Unreachable detail.
      const hubAnswer = hubAnswerOf(error);
      if (hubAnswer !== undefined)
        await recordAttempt(
          deps,
          plan,
          operationId,
          state,
          Object.fromEntries(
            [...plan.apply, ...plan.remove].map((id) => [
              id,
              { outcome: 'Unreachable' as const, detail: clip(hubAnswer, 2000) },
            ]),
          ),
        );
      throw error;
    }
    const detail = error instanceof Error ? error.message : String(error);
    for (const id of [...plan.apply, ...plan.remove]) outcomes[id] ??= { outcome: 'Failed', detail };
  }
  return { outcomes, ...(facts ? { facts } : {}) };
}

/**
 * A stored package never changes (feed and sequence name it for good), so a worker reads it once,
 * not once per server; a few recent ones are kept.
 */
const packageCache = new Map<string, Promise<string>>();
const packageCacheSize = 4;

function packageForRollout(tables: FleetTables, feed: string, sequence: number): Promise<string> {
  const key = `${tables.namespace}/${feed}/${sequence}`;
  let cached = packageCache.get(key);
  if (!cached) {
    cached = readPackage(tables, feed, sequence).then((stored) => {
      if (!stored) throw new Error(`package ${feed}/${sequence} is missing from the Packages table`);
      return Buffer.from(stored.bytes).toString('base64');
    });
    cached.catch(() => packageCache.delete(key));
    packageCache.set(key, cached);
    for (const oldest of packageCache.keys()) {
      if (packageCache.size <= packageCacheSize) break;
      packageCache.delete(oldest);
    }
  }
  return cached;
}

/** Waits, within this delivery, for an operation the agent answered with 202. */
async function finished(deps: StepDeps, plan: PlanRowEntity, reply: OperationReply): Promise<OperationReply> {
  const until = Date.now() + (deps.operationWaitMs ?? 45_000);
  let current = reply;
  while (current.status !== 'Completed') {
    if (Date.now() > until)
      throw new RelayTimeoutError(
        `${plan.server} is still working on ${reply.operationId}; asking again later`,
      );
    await new Promise((resolve) => setTimeout(resolve, deps.operationPollMs ?? 2000));
    const status = await deps.agents.status(plan.hybridConnection);
    current = status.operations.find((operation) => operation.operationId === reply.operationId) ?? current;
  }
  return current;
}

/**
 * The last failed attempt's outcomes, InProgress: not a result (nothing counts it), only what the
 * poison handler reports. Conditional on the row read: a Completed result (another delivery of the
 * same message got through) is never replaced by it.
 */
async function recordAttempt(
  deps: StepDeps,
  plan: PlanRowEntity,
  operationId: string,
  state: RolloutStateRow,
  outcomes: Record<string, MitigationOutcome>,
): Promise<void> {
  const client = await deps.tables.client('Results');
  await mutateEntity(client, plan.server, operationId, (current): Mutation => {
    if (current?.['status'] === 'Completed') return { kind: 'keep' };
    return {
      kind: 'write',
      entity: {
        partitionKey: plan.server,
        rowKey: operationId,
        rolloutId: state.partitionKey,
        operation: state.operation,
        status: 'InProgress',
        outcomes: JSON.stringify(outcomes),
        at: deps.now?.() ?? new Date(),
      },
    };
  });
}

async function recordResult(
  deps: StepDeps,
  plan: PlanRowEntity,
  operationId: string,
  state: RolloutStateRow,
  outcomes: Record<string, MitigationOutcome>,
): Promise<void> {
  await upsertResults(deps.tables, [
    {
      server: plan.server,
      operationId,
      rolloutId: state.partitionKey,
      operation: state.operation,
      status: 'Completed',
      outcomes,
      at: deps.now?.() ?? new Date(),
    },
  ]);
}

type ServerEntity = TableEntity<Record<string, unknown>> & { etag: string };

/** The Servers rows of a count's servers (one org partition), 100 names a query. */
async function readServerRows(
  deps: StepDeps,
  servers: readonly string[],
): Promise<Map<string, ServerEntity>> {
  const rows = new Map<string, ServerEntity>();
  const names = [...new Set(servers)];
  if (names.length === 0) return rows;
  const client = await deps.tables.client('Servers');
  for (let start = 0; start < names.length; start += maxTransactionSize) {
    const chunk = names.slice(start, start + maxTransactionSize);
    const filter = [
      odata`PartitionKey eq ${deps.org}`,
      `(${chunk.map((name) => odata`RowKey eq ${name}`).join(' or ')})`,
    ].join(' and ');
    for await (const entity of client.listEntities<Record<string, unknown>>({ queryOptions: { filter } }))
      rows.set(entity.rowKey!, entity as ServerEntity);
  }
  return rows;
}

/**
 * What the agents now have applied, as far as these operations tell: kept on the Servers rows for
 * policy and drift. Written in one transaction per 100, each row conditional on the ETag it was
 * read with; should a transaction fail (a row changed since), each row is written on its own with
 * its ETag loop.
 */
async function writeReports(
  deps: StepDeps,
  reports: readonly Report[],
  current: ReadonlyMap<string, ServerEntity>,
): Promise<void> {
  if (reports.length === 0) return;
  const client = await deps.tables.client('Servers');
  const names = [...new Set(reports.map((report) => report.plan.server))];
  for (let start = 0; start < names.length; start += maxTransactionSize) {
    const chunk = names.slice(start, start + maxTransactionSize);
    const actions: TransactionAction[] = [];
    for (const name of chunk) {
      const entity = current.get(name);
      if (!entity) continue;
      let row: Record<string, unknown> = entity;
      for (const report of reports.filter((candidate) => candidate.plan.server === name))
        row = reportedRow(deps, report, row) ?? row;
      if (row !== entity)
        actions.push([
          'update',
          {
            partitionKey: deps.org,
            rowKey: name,
            reportedApplied: row['reportedApplied'],
            lastSeen: row['lastSeen'],
            ...agentOwned(row),
          },
          'Merge',
          { etag: entity.etag },
        ]);
    }
    if (actions.length === 0) continue;
    try {
      await client.submitTransaction(actions);
    } catch {
      for (const report of reports.filter((candidate) => chunk.includes(candidate.plan.server))) {
        await mutateEntity(client, deps.org, report.plan.server, (entity) =>
          entity ? writeOrKeep(reportedRow(deps, report, entity)) : { kind: 'keep' },
        );
      }
    }
  }
}

/** The Servers row with this operation's outcomes in its reported state; undefined if the row is invalid. */
function reportedRow(
  deps: StepDeps,
  { plan, outcomes, at, facts }: Report,
  current: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const checked = validateRow('Servers', serverRow, current);
  if (!checked.ok) {
    deps.logger.warn('InvalidRow', { ...checked.problem });
    return undefined;
  }
  const applied = new Set(checked.row.reportedApplied);
  for (const [id, result] of Object.entries(outcomes)) {
    // A Degraded or Ineffective apply stays in place (keep policy, a rule that harms nothing); a RolledBack one does not; a Degraded removal did remove.
    const kept =
      plan.apply.includes(id) && (result.outcome === 'Degraded' || result.outcome === 'Ineffective');
    const gone =
      result.outcome === 'Removed' ||
      result.outcome === 'RolledBack' ||
      (plan.remove.includes(id) && (result.outcome === 'NotApplicable' || result.outcome === 'Degraded'));
    if (result.outcome === 'Applied' || result.outcome === 'AlreadyApplied' || kept) applied.add(id);
    if (gone) applied.delete(id);
  }
  const update = facts ? factsUpdate(checked.row, facts, at) : undefined;
  if (update?.buildChanged)
    deps.logger.warn('BuildChanged', {
      server: plan.server,
      ...update.buildChanged,
      reason:
        'the agent reports another Exchange build (a Cumulative or Security Update was installed); the server is planned on the new build from now on',
    });
  return {
    ...current,
    ...update?.fields,
    reportedApplied: JSON.stringify([...applied].sort()),
    lastSeen: at,
  };
}

/** The build and agent version as the row now has them (an old row may lack the version). */
function agentOwned(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    ['build', 'agentVersion'].flatMap((name) => (row[name] === undefined ? [] : [[name, row[name]]])),
  );
}

function writeOrKeep(entity: Record<string, unknown> | undefined): Mutation {
  if (!entity) return { kind: 'keep' };
  const { etag: _etag, timestamp: _timestamp, ...rest } = entity;
  return { kind: 'write', entity: rest as TableEntity<Record<string, unknown>> };
}

/** "EM2 RolledBack: ecp" for each mitigation a probe failed, so the halt reason says what went down where; undefined when none. */
function failureNote(outcomes: Record<string, MitigationOutcome>): string | undefined {
  const found = Object.entries(outcomes)
    .filter(([, result]) => probeFailures.includes(result.outcome))
    .map(
      ([id, result]) =>
        `${id} ${result.outcome}${result.endpoints && result.endpoints.length > 0 ? `: ${result.endpoints.map(endpointName).join(', ')}` : ''}`,
    );
  return found.length > 0 ? clip(found.join('; '), maxNoteLength) : undefined;
}

function verdictOf(outcomes: Record<string, MitigationOutcome>): 'succeeded' | 'failed' | 'skipped' {
  const values = Object.values(outcomes).map((result) => result.outcome);
  if (values.some((outcome) => failureOutcomes.includes(outcome))) return 'failed';
  if (values.length > 0 && values.every((outcome) => outcome === 'Skipped')) return 'skipped';
  return 'succeeded';
}

/** The operation id of one server's part of a rollout wave: its Results row key, and what the agent is asked under. */
export function operationIdOf(rolloutId: string, wave: number, server: string, attempt = 0): string {
  // Operation ids must stay within the agent protocol's 128 characters whatever the rollout id.
  // A retry is a new operation: the agent must not answer it from its memory of the failed one.
  const id = `${rolloutId}.w${wave}${attempt > 0 ? `.r${attempt}` : ''}.${server}`;
  return id.length <= 120 ? id : `op.${createHash('sha256').update(id).digest('hex').slice(0, 40)}`;
}

/**
 * The state row as it is now, for deliveries that start together: each caller gets a read issued
 * after its call (so a pause or abort written before a delivery starts is seen by it), and the
 * callers that come while one read is under way share the next read (a window of 16 starting at
 * once reads the row twice, not 16 times). The row is shared: callers only read it.
 */
function readStateNow(tables: FleetTables, rolloutId: string): Promise<RolloutStateRow | undefined> {
  return stateReads(`${instanceKey(tables)}|${rolloutId}`, { tables, rolloutId });
}

const stateReads = groupCommit(
  (_key: string, callers: readonly { tables: FleetTables; rolloutId: string }[]) =>
    readState(callers[0]!.tables, callers[0]!.rolloutId),
);

async function readState(tables: FleetTables, rolloutId: string): Promise<RolloutStateRow | undefined> {
  const client = await tables.client('Rollouts');
  const entity = await getEntityOrUndefined(client, rolloutId, 'state');
  if (!entity) return undefined;
  const checked = validateRow('Rollouts', rolloutStateRow, entity);
  return checked.ok ? checked.row : undefined;
}

async function readWave(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
): Promise<{ row: WaveRow; etag: string } | undefined> {
  const client = await tables.client('Rollouts');
  const entity = await getEntityOrUndefined(client, rolloutId, waveKey(wave));
  if (!entity) return undefined;
  const checked = validateRow('Rollouts', waveRow, entity);
  if (!checked.ok) throw new Error(describeRowProblem(checked.problem));
  return { row: checked.row, etag: checked.etag };
}

/** The state row and one wave row in one round trip: the range from `state` to that wave's key (plan rows sort before). */
async function readStateAndWave(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
): Promise<{ state: RolloutStateRow | undefined; wave: { row: WaveRow; etag: string } | undefined }> {
  const client = await tables.client('Rollouts');
  let state: RolloutStateRow | undefined;
  let found: { row: WaveRow; etag: string } | undefined;
  for await (const entity of client.listEntities<Record<string, unknown>>({
    queryOptions: {
      filter: odata`PartitionKey eq ${rolloutId} and RowKey ge ${'state'} and RowKey le ${waveKey(wave)}`,
    },
  })) {
    if (entity.rowKey === 'state') {
      const checked = validateRow('Rollouts', rolloutStateRow, entity);
      state = checked.ok ? checked.row : undefined;
    } else if (entity.rowKey === waveKey(wave)) {
      const checked = validateRow('Rollouts', waveRow, entity);
      if (!checked.ok) throw new Error(describeRowProblem(checked.problem));
      found = { row: checked.row, etag: checked.etag };
    }
  }
  return { state, wave: found };
}

/**
 * Plan rows never change once the rollout exists, so a worker reads them a page at a time (one
 * partition query for the next servers of the wave) and keeps a bounded number of pages.
 */
const planPages = new Map<string, Promise<Map<number, PlanRowEntity>>>();
const keptPlanPages = 200;

async function readPlanRow(
  tables: FleetTables,
  message: ApplyServerMessage,
): Promise<PlanRowEntity | undefined> {
  const first = message.index - (message.index % planPageSize);
  const key = `${instanceKey(tables)}|${message.rolloutId}|${message.wave}|${first}`;
  const cached = planPages.get(key);
  const rows = await (cached ??
    cachePlanPage(key, readPlanPage(tables, message.rolloutId, message.wave, first)));
  if (cached !== undefined) {
    // Most recently used last, so the oldest pages go first.
    planPages.delete(key);
    planPages.set(key, cached);
  }
  const row = rows.get(message.index);
  // A page cached before its rows existed (a message that came before its rollout) is read again.
  if (!row && cached !== undefined)
    return (await cachePlanPage(key, readPlanPage(tables, message.rolloutId, message.wave, first))).get(
      message.index,
    );
  return row;
}

function cachePlanPage(
  key: string,
  page: Promise<Map<number, PlanRowEntity>>,
): Promise<Map<number, PlanRowEntity>> {
  page.catch(() => planPages.delete(key));
  planPages.delete(key);
  planPages.set(key, page);
  for (const oldest of planPages.keys()) {
    if (planPages.size <= keptPlanPages) break;
    planPages.delete(oldest);
  }
  return page;
}

async function readPlanPage(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
  first: number,
): Promise<Map<number, PlanRowEntity>> {
  const client = await tables.client('Rollouts');
  const filter = odata`PartitionKey eq ${planPartitionKey(rolloutId, wave, first)}`;
  const rows = new Map<number, PlanRowEntity>();
  for await (const entity of client.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
    const checked = validateRow('Rollouts', planRow, entity);
    if (checked.ok)
      rows.set(Number(checked.row.rowKey.slice(checked.row.rowKey.lastIndexOf('-') + 1)), checked.row);
  }
  return rows;
}

async function readResult(
  tables: FleetTables,
  server: string,
  operationId: string,
): Promise<Record<string, MitigationOutcome> | undefined> {
  const stored = await readStoredResult(tables, server, operationId);
  return stored?.status === 'Completed' ? stored.outcomes : undefined;
}

async function readStoredResult(
  tables: FleetTables,
  server: string,
  operationId: string,
): Promise<{ status: 'InProgress' | 'Completed'; outcomes: Record<string, MitigationOutcome> } | undefined> {
  const client = await tables.client('Results');
  const entity = await getEntityOrUndefined(client, server, operationId);
  if (!entity) return undefined;
  const checked = validateRow('Results', resultRow, entity);
  return checked.ok ? { status: checked.row.status, outcomes: checked.row.outcomes } : undefined;
}

/** What the state machine sees of a stored rollout (also how the dashboard asks which actions it would accept). */
export function statusOf(row: RolloutStateRow): RolloutStatus {
  return {
    state: row.state,
    currentWave: row.currentWave,
    waveCount: row.waveCount,
    profile: row.profile,
    reason: row.reason,
    attempt: row.attempt,
    halts: row.halts,
    ...(row.resumeTo ? { resumeTo: row.resumeTo } : {}),
  };
}

/** Recorded when a queue message fails its schema: it is not retried. */
export async function recordInvalidMessage(
  deps: Pick<StepDeps, 'tables' | 'logger'>,
  queue: string,
  messageId: string | undefined,
  problem: string,
): Promise<void> {
  deps.logger.error('InvalidMessage', { queue, messageId, problem });
  await writeAudit(
    deps.tables,
    [
      {
        actor: 'emfleet',
        action: 'message.invalid',
        target: `queue:${queue}`,
        source: 'queue',
        before: null,
        after: { messageId, problem },
      },
    ],
    undefined,
    { logger: deps.logger },
  );
}

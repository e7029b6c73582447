import { mapWithConcurrency } from '../../concurrency.js';
import { factsUpdate, type AgentFacts } from '../../fleet/agent-facts.js';
import { queueNames } from '../../fleet/queues.js';
import { mutateWave, readStateAndWave } from '../../fleet/rollouts.js';
import type { PlanRowEntity, ServerRow } from '../../fleet/schemas.js';
import { mergeServerRows, readServerEntities, type ServerRowChange } from '../../fleet/servers.js';
import type { MitigationOutcome } from '../../model/outcomes.js';
import { countWave, earlyWindow, type CountedResult, type Slot, type WavePass } from '../accounting.js';
import { applyMessage } from '../operations.js';
import { appliedAfter } from '../outcomes.js';
import type { StepDeps } from './deps.js';
import { applyEvent } from './rollout-events.js';

/** Messages sent at once while a window fills. */
const sendConcurrency = 16;

/** One server's part of a count. */
export interface Counted {
  readonly result: CountedResult;
  /** Its result row being written: a result is counted only once it is stored. */
  readonly recorded?: Promise<void>;
  /** What the agent answered, for the Servers row's reported state. */
  readonly report?: Report;
}

/** `facts`: what the agent said about itself in its reply (build, version), kept on the Servers row too. */
export interface Report {
  readonly plan: PlanRowEntity;
  readonly outcomes: Readonly<Record<string, MitigationOutcome>>;
  readonly at: Date;
  readonly facts?: AgentFacts;
}

/**
 * Counts one server's result (once: the wave row keeps a bit per plan index), puts what the agent
 * answered on its Servers row, and slides the window: sends the next servers so that at most
 * maxConcurrency are in flight. The servers of one wave that finish while a count is being
 * written go together in the next (group commit): their Servers rows in one transaction, the wave
 * row in one ETag write, so concurrent servers do not fight over the row. The rows are read while
 * the results are still being stored. Messages are sent before the wave row is written; if the
 * write loses a race (another host instance) the step starts over, sending only what it has not
 * sent yet, and a message sent twice is harmless because results are keyed by operation id. When
 * the last result is in, the rollout moves on to bake. Without `counted` (startWave), it only
 * fills the window.
 */
export async function accountAndDispatch(
  deps: StepDeps,
  rolloutId: string,
  pass: WavePass,
  counted: Counted | undefined,
): Promise<void> {
  const entry = { counted };
  const notStored = (
    await deps.caches.waveCounts(`${rolloutId}|${pass.wave}|${pass.attempt}`, entry, (batch) =>
      countTogether(deps, rolloutId, pass, batch),
    )
  ).get(entry);
  if (notStored) throw notStored.reason;
}

type Entry = { readonly counted: Counted | undefined };

async function countTogether(
  deps: StepDeps,
  rolloutId: string,
  pass: WavePass,
  batch: readonly Entry[],
): Promise<Map<Entry, { reason: unknown }>> {
  // A server's slot is free once its agent has answered: the next servers are sent as soon as the
  // wave row is read, while the results and Servers rows are still being written. Should a result
  // then fail to store, its redelivery is answered from the agent's memory (same operation id), so
  // no agent is asked to change more than maxConcurrency at a time. `dispatched` is written past
  // every position sent here, so no later commit sends them again.
  const sent = new Set<number>();
  const results = batch.flatMap((entry) => (entry.counted ? [entry.counted.result] : []));
  const [stored, read, servers] = await Promise.all([
    Promise.allSettled(batch.map((entry) => entry.counted?.recorded)),
    readStateAndWave(deps.tables, rolloutId, pass.wave).then(async (first) => {
      await send(deps, rolloutId, pass, earlyWindow(first.state, first.wave?.row, pass, results), sent);
      return first;
    }),
    readServerEntities(
      deps.tables,
      deps.org,
      batch.flatMap((entry) => (entry.counted?.report ? [entry.counted.report.plan.server] : [])),
    ),
  ]);
  // A result that could not be stored is not counted: its message fails and is delivered again.
  const notStored = new Map<Entry, { reason: unknown }>();
  stored.forEach((outcome, position) => {
    if (outcome.status === 'rejected') notStored.set(batch[position]!, { reason: outcome.reason });
  });
  const counted = batch.flatMap((entry) => (entry.counted && !notStored.has(entry) ? [entry.counted] : []));
  await Promise.all([
    mergeServerRows(
      deps.tables,
      deps.org,
      counted.flatMap((entry) => (entry.report ? [reportChange(deps, entry.report)] : [])),
      servers,
      { logger: deps.logger },
    ),
    countResults(
      deps,
      rolloutId,
      pass,
      counted.map((entry) => entry.result),
      read,
      sent,
    ),
  ]);
  return notStored;
}

/**
 * Counts the results into the wave row (pure: accounting.ts), sends the servers the window now
 * holds, writes the row once, and moves the rollout on when the wave is done. `sent` holds
 * positions in the wave's pass (lib/rollout/pass.ts); results of another pass than the wave's
 * current one (a message older than a retry) are not counted.
 */
async function countResults(
  deps: StepDeps,
  rolloutId: string,
  pass: WavePass,
  results: readonly CountedResult[],
  firstRead: Awaited<ReturnType<typeof readStateAndWave>>,
  sent: Set<number>,
): Promise<void> {
  const finished = await mutateWave(
    deps.tables,
    rolloutId,
    pass.wave,
    async ({ state, wave }) => {
      const count = wave ? countWave(wave.row, results, state, pass, sent) : undefined;
      if (!count) return { answer: false };
      await send(deps, rolloutId, pass, count.toSend, sent);
      return { write: count.changed ? count.wave : undefined, answer: count.finished };
    },
    { firstRead },
  );
  if (finished) await applyEvent(deps, rolloutId, { kind: 'waveFinished', wave: pass.wave });
}

async function send(
  deps: StepDeps,
  rolloutId: string,
  pass: WavePass,
  slots: readonly Slot[],
  sent: Set<number>,
): Promise<void> {
  await mapWithConcurrency(slots, sendConcurrency, async ({ position, index }) => {
    await deps.queues.send(queueNames.apply, applyMessage(rolloutId, pass.wave, index, pass.attempt));
    sent.add(position);
  });
}

/** What the agent's answer changes on its Servers row: what it has applied, when it was seen, its build and version. */
function reportChange(deps: StepDeps, { plan, outcomes, at, facts }: Report): ServerRowChange {
  return {
    server: plan.server,
    change: (row: ServerRow) => {
      const update = facts ? factsUpdate(row, facts, at) : undefined;
      if (update?.buildChanged)
        deps.logger.warn('BuildChanged', {
          server: plan.server,
          ...update.buildChanged,
          meaning:
            'the agent reports another Exchange build (a Cumulative or Security Update was installed); the server is planned on the new build from now on',
        });
      return {
        ...update?.fields,
        reportedApplied: JSON.stringify(appliedAfter(row.reportedApplied, plan, outcomes)),
        lastSeen: at,
      };
    },
  };
}

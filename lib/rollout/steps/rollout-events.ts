import { queueNames } from '../../fleet/queues.js';
import {
  readRolloutState,
  readWave,
  updateRolloutState,
  updateRolloutStateAndWave,
} from '../../fleet/rollouts.js';
import type { RolloutStateRow, WaveRow } from '../../fleet/schemas.js';
import type { Reason } from '../../model/reasons.js';
import { decideEvent, decideRetry, type EventDecision, type RetryDecision } from '../events.js';
import type { RolloutEffect, RolloutEvent } from '../state.js';
import type { EventDeps } from './deps.js';

/** What an admin's action or an event came to: the state after it, or the state machine's refusal. */
export type EventOutcome = { ok: boolean; refusal?: Reason<'Refused'>; state?: RolloutStateRow };

/**
 * Moves a rollout with the pure state machine, writes the new state (ETag), and only then carries
 * out its effects. A refused event (a duplicate, a late message) is logged and changes nothing.
 */
export async function applyEvent(
  deps: EventDeps,
  rolloutId: string,
  event: RolloutEvent,
): Promise<EventOutcome> {
  let decision: EventDecision | undefined;
  const state = await updateRolloutState(
    deps.tables,
    rolloutId,
    (current) => {
      decision = decideEvent(current, event);
      return decision.kind === 'accepted' ? decision.changes : undefined;
    },
    deps.now ? { now: deps.now() } : {},
  );
  if (decision?.kind !== 'accepted') {
    deps.logger.info('RolloutEventRefused', {
      rolloutId,
      rolloutEvent: event.kind,
      ...(decision ? decision.refusal : {}),
    });
    return { ok: false, ...(decision ? { refusal: decision.refusal } : {}), state };
  }
  deps.logger.info('RolloutTransition', {
    rolloutId,
    rolloutEvent: event.kind,
    state: state.state,
    wave: state.currentWave,
    reasonCode: state.reasonCode,
    reasonDetail: state.reasonDetail,
  });
  for (const effect of decision.effects) await carryOut(deps, rolloutId, state, effect);
  return { ok: true, state };
}

/**
 * Retry (DESIGN §7): the halted wave's servers that failed or were never reached are sent again
 * under new operation ids with a fresh error count, then the rollout carries on as usual. The
 * state row and the wave row change together, in one transaction. Retrying a halt that was
 * already retried changes nothing, and is answered as done.
 */
export async function retryRollout(deps: EventDeps, rolloutId: string, actor: string): Promise<EventOutcome> {
  const event = { kind: 'retry', actor } as const;
  let decision: RetryDecision<WaveRow> | undefined;
  const waveIndex = (await readRolloutState(deps.tables, rolloutId))?.currentWave ?? 0;
  const state = await updateRolloutStateAndWave(
    deps.tables,
    rolloutId,
    waveIndex,
    (stored, wave) => {
      decision = decideRetry(stored, wave, waveIndex, event);
      return decision.kind === 'retry' ? { state: decision.state, wave: decision.wave } : undefined;
    },
    deps.now ? { now: deps.now() } : {},
  );
  if (decision?.kind === 'refused' || decision === undefined) {
    deps.logger.info('RolloutEventRefused', {
      rolloutId,
      rolloutEvent: event.kind,
      ...(decision ? decision.refusal : {}),
    });
    return { ok: false, ...(decision ? { refusal: decision.refusal } : {}), state };
  }
  if (decision.kind === 'alreadyDone') {
    deps.logger.info('RolloutRetryAlreadyDone', {
      rolloutId,
      state: state.state,
      wave: state.currentWave,
      attempt: state.attempt,
      reasonCode: state.reasonCode,
      reasonDetail: state.reasonDetail,
    });
    return { ok: true, state };
  }
  deps.logger.info('RolloutTransition', {
    rolloutId,
    rolloutEvent: event.kind,
    state: state.state,
    wave: state.currentWave,
    attempt: state.attempt,
    resent: decision.resent,
    reasonCode: state.reasonCode,
    reasonDetail: state.reasonDetail,
  });
  for (const effect of decision.effects) await carryOut(deps, rolloutId, state, effect);
  return { ok: true, state };
}

/** An effect of a transition, after its state was written. */
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
    case 'notify': {
      const why = { reasonCode: state.reasonCode, reasonDetail: state.reasonDetail };
      deps.logger.info(effect.event, { rolloutId, ...why });
      await deps.notify?.(
        effect.event === 'RolloutCompleted'
          ? { kind: effect.event, rolloutId }
          : { kind: effect.event, rolloutId, ...why },
      );
      return;
    }
  }
}

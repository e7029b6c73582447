import { reason, type Reason } from '../model/reasons.js';
import { retriedWave } from './pass.js';
import type { StoredStatus, WaveProgress } from './progress.js';
import { transition, type RolloutEffect, type RolloutEvent, type RolloutStatus } from './state.js';

/*
 * A rollout event against the stored rows: what to write and what to do after the write. Pure: the
 * event steps (steps/rollout-events.ts) read the rows, ask here, write once and carry out the
 * effects only after the write succeeded.
 */

/** What the state machine sees of a stored rollout (also how the dashboard asks which actions it would accept). */
export function statusOf(row: StoredStatus): RolloutStatus {
  return {
    state: row.state,
    currentWave: row.currentWave,
    waveCount: row.waveCount,
    profile: row.profile,
    reasonCode: row.reasonCode,
    reasonDetail: row.reasonDetail,
    attempt: row.attempt,
    halts: row.halts,
    ...(row.resumeTo ? { resumeTo: row.resumeTo } : {}),
  };
}

/** The fields of the state row the state machine moves (resumeTo undefined: cleared). */
export type StateChanges = Omit<StoredStatus, 'waveCount'>;

/** The fields of the state row the state machine moves. */
export function stateChanges(next: RolloutStatus): StateChanges {
  return {
    state: next.state,
    currentWave: next.currentWave,
    reasonCode: next.reasonCode,
    reasonDetail: next.reasonDetail,
    profile: next.profile,
    resumeTo: next.resumeTo,
    attempt: next.attempt,
    halts: next.halts,
  };
}

export type EventDecision =
  /** The state machine refused the event (a duplicate, a late message): nothing changes. */
  | { readonly kind: 'refused'; readonly refusal: Reason<'Refused'> }
  /**
   * Accepted: `changes` to write (undefined when the event changes nothing, e.g. a retry of a halt
   * already retried: nothing is written again), then `effects`.
   */
  | {
      readonly kind: 'accepted';
      readonly changes: StateChanges | undefined;
      readonly effects: readonly RolloutEffect[];
    };

export function decideEvent(current: StoredStatus, event: RolloutEvent): EventDecision {
  const result = transition(statusOf(current), event);
  if (!result.ok) return { kind: 'refused', refusal: result.refusal };
  const unchanged = JSON.stringify(result.status) === JSON.stringify(statusOf(current));
  return {
    kind: 'accepted',
    changes: unchanged ? undefined : stateChanges(result.status),
    effects: result.effects,
  };
}

export type RetryDecision<W extends WaveProgress> =
  | { readonly kind: 'refused'; readonly refusal: Reason<'Refused'> }
  /** The halt was retried already: nothing to write, answered as done. */
  | { readonly kind: 'alreadyDone' }
  /** The state and the wave row to write together, how many servers are sent again, then `effects`. */
  | {
      readonly kind: 'retry';
      readonly state: StateChanges;
      readonly wave: W;
      readonly resent: number;
      readonly effects: readonly RolloutEffect[];
    };

/**
 * Retry (DESIGN §7) of the halt on wave `waveIndex` as read before: the wave's servers that failed or
 * were never reached go again under the next attempt, with a fresh error count. Refused when the
 * rollout has moved on to another wave since (a retry went on and halted again).
 */
export function decideRetry<W extends WaveProgress>(
  stored: StoredStatus,
  wave: W,
  waveIndex: number,
  event: Extract<RolloutEvent, { kind: 'retry' }>,
): RetryDecision<W> {
  if (stored.currentWave !== waveIndex)
    return {
      kind: 'refused',
      refusal: reason('Refused', {
        event: event.kind,
        why: `the rollout moved on to wave ${stored.currentWave + 1} meanwhile; retry again`,
        state: stored.state,
        wave: stored.currentWave,
        waveCount: stored.waveCount,
      }),
    };
  const decision = decideEvent(stored, event);
  if (decision.kind === 'refused') return decision;
  if (decision.changes === undefined) return { kind: 'alreadyDone' };
  const next = retriedWave(wave, wave.attempt + 1);
  return {
    kind: 'retry',
    state: { ...decision.changes, attempt: next.attempt },
    wave: next,
    resent: next.servers - next.succeeded,
    effects: decision.effects,
  };
}

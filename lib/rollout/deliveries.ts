import { reason, type Reason } from '../model/reasons.js';
import type { ApplyServerMessage, StartWaveMessage } from './messages.js';
import type { RolloutPosition } from './progress.js';

/*
 * What a delivered queue message may do, given the rollout's state row as it is now. Late, stray,
 * superseded and paused messages change nothing (DESIGN §7). Pure: the steps read the rows, ask
 * here, and act on the answer.
 */

export type StartWaveDecision =
  | { readonly kind: 'start'; readonly attempt: number }
  | { readonly kind: 'ignored' };

/** A wave starts only while the rollout runs it; any other startWave message is late or stray. */
export function decideStartWave(
  state: RolloutPosition | undefined,
  message: StartWaveMessage,
): StartWaveDecision {
  return state?.state === 'Running' && state.currentWave === message.wave
    ? { kind: 'start', attempt: state.attempt }
    : { kind: 'ignored' };
}

/** The retry a message belongs to: a first pass's messages carry none. */
export const attemptOf = (message: ApplyServerMessage): number => message.attempt ?? 0;

/** A message of the current wave from another pass than the wave's current one: a retry has replaced it. */
export function isSuperseded(state: RolloutPosition, message: ApplyServerMessage): boolean {
  return message.wave === state.currentWave && attemptOf(message) !== state.attempt;
}

export type ApplyDecision =
  /** Nothing to do: the rollout (`RolloutNotFound`) or its plan row (`NotPlanned`) does not exist. */
  | { readonly kind: 'ignored'; readonly reason: Reason<'RolloutNotFound' | 'NotPlanned'> }
  /** A retry of the wave has replaced this message's pass. */
  | { readonly kind: 'superseded'; readonly reason: Reason<'Superseded'> }
  /** The rollout is paused (the state row says by whom): the message comes back later. */
  | { readonly kind: 'held' }
  /**
   * Go on: `running` when this pass of the wave runs (the agent may be asked); `readStored` when a
   * result may exist already and must be used rather than overwritten.
   */
  | { readonly kind: 'proceed'; readonly running: boolean; readonly readStored: boolean };

/**
 * What an apply message does. A first delivery of a message for a running wave has no result of its
 * own yet (should it duplicate a message already done, the agent answers the same operation id from
 * memory); anything else (a redelivery, a rollout stopped since) may have one.
 */
export function decideApply(
  state: RolloutPosition | undefined,
  planFound: boolean,
  message: ApplyServerMessage,
  firstDelivery: boolean,
): ApplyDecision {
  if (!state)
    return {
      kind: 'ignored',
      reason: { reasonCode: 'RolloutNotFound', reasonDetail: `no rollout "${message.rolloutId}"` },
    };
  if (!planFound)
    return { kind: 'ignored', reason: reason('NotPlanned', { wave: message.wave, index: message.index }) };
  if (isSuperseded(state, message))
    return {
      kind: 'superseded',
      reason: reason('Superseded', { wave: message.wave, attempt: state.attempt }),
    };
  if (state.state === 'Paused') return { kind: 'held' };
  const running =
    state.state === 'Running' && state.currentWave === message.wave && state.attempt === attemptOf(message);
  return { kind: 'proceed', running, readStored: !(running && firstDelivery) };
}

/** Where a proceeding message's outcomes come from: a stored result, Skipped (not running), or the agent. */
export function resultSource(hasStored: boolean, running: boolean): 'stored' | 'skip' | 'agent' {
  if (hasStored) return 'stored';
  return running ? 'agent' : 'skip';
}

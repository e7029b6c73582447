import { bitIsSet, withBit } from './bits.js';
import type { Verdict } from '../model/outcomes.js';
import { nextWindow } from './pass.js';
import type { RolloutPosition, WaveProgress } from './progress.js';

/*
 * Wave accounting: counting servers' results into the wave row, and which servers to send next so
 * that at most maxConcurrency are in flight. Pure: (wave, results, state) → {wave, toSend, finished};
 * the count step reads the rows, sends `toSend`, writes the wave row once and moves the rollout on.
 */

/** The first failing servers the wave row names (the halt reason lists them). */
export const maxNamedFailures = 50;

/** One server's result as the wave counts it. */
export interface CountedResult {
  readonly index: number;
  readonly server: string;
  readonly verdict: Verdict;
  /** What the probes found, or the site whose relay hub was down: named beside the server in the halt reason. */
  readonly note?: string;
}

/** Which pass of which wave a count is for. */
export interface WavePass {
  readonly wave: number;
  readonly attempt: number;
}

/** A server to send: its position in the wave's pass and its plan index. */
export type Slot = { readonly position: number; readonly index: number };

/** The rollout is running this pass of this wave: only then are servers sent and the wave finished. */
export function isSending(state: RolloutPosition | undefined, pass: WavePass): boolean {
  return state?.state === 'Running' && state.currentWave === pass.wave && state.attempt === pass.attempt;
}

/**
 * The servers to send as soon as the rows are read, while the results are still being stored: a
 * server's slot is free once its agent has answered. Nothing unless the rollout runs this wave and
 * the wave row is on this pass.
 */
export function earlyWindow(
  state: RolloutPosition | undefined,
  wave: WaveProgress | undefined,
  pass: WavePass,
  results: readonly CountedResult[],
): Slot[] {
  if (!wave || state?.state !== 'Running' || state.currentWave !== pass.wave || wave.attempt !== pass.attempt)
    return [];
  const answered = results.filter((result) => !bitIsSet(wave.counted, result.index)).length;
  return nextWindow(wave, answered);
}

export interface WaveCount<W extends WaveProgress> {
  /** The wave row with the results counted and `dispatched` past every slot sent. */
  readonly wave: W;
  /** Whether the row differs from the one read (else it is not written). */
  readonly changed: boolean;
  /** Servers to send now that were not sent already. */
  readonly toSend: Slot[];
  /** The last result is in and the rollout runs this wave: it moves on to bake. */
  readonly finished: boolean;
}

/**
 * Counts `results` into `wave` (each plan index once: the `counted` bitset), fills the window
 * (servers already `sent` are not sent again) and says whether the wave is done. A wave on another
 * pass than `pass` (a message older than a retry) counts nothing: undefined.
 */
export function countWave<W extends WaveProgress>(
  wave: W,
  results: readonly CountedResult[],
  state: RolloutPosition | undefined,
  pass: WavePass,
  sent: ReadonlySet<number>,
): WaveCount<W> | undefined {
  if (wave.attempt !== pass.attempt) return undefined;
  const next: W = { ...wave };
  for (const result of results) {
    if (bitIsSet(next.counted, result.index)) continue;
    next.counted = withBit(next.counted, result.index);
    next[result.verdict] += 1;
    if (result.verdict !== 'succeeded') next.failedIndices = withBit(next.failedIndices, result.index);
    if (result.verdict === 'failed' && next.failedServers.length < maxNamedFailures) {
      next.failedServers = [...next.failedServers, result.server];
      if (result.note) next.failureNotes = { ...(next.failureNotes ?? {}), [result.server]: result.note };
    }
  }
  const done = next.succeeded + next.failed + next.skipped;
  const sending = isSending(state, pass);
  const window = sending ? nextWindow(next, 0) : [];
  next.dispatched = Math.max(
    next.dispatched,
    ...window.map(({ position }) => position + 1),
    ...[...sent].map((position) => position + 1),
  );
  return {
    wave: next,
    changed: JSON.stringify(next) !== JSON.stringify(wave),
    toSend: window.filter(({ position }) => !sent.has(position)),
    finished: done >= next.servers && sending,
  };
}

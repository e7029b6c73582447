import type { RolloutStatus } from './state.js';

/*
 * What the pure rollout rules read and write of the stored rows, as plain data: the rows themselves
 * (lib/fleet/schemas.ts `waveRow`, `rolloutStateRow`) are storage's, and carry these fields.
 */

/** A wave's progress: its counters, its error budget and the bitsets of plan indices (bits.ts). */
export interface WaveProgress {
  servers: number;
  succeeded: number;
  failed: number;
  skipped: number;
  maxConcurrency: number;
  maxErrors: number;
  /** Positions of the pass sent so far: the window of `maxConcurrency` slides over it. */
  dispatched: number;
  /** Plan indices already counted, so a redelivered result never counts twice. */
  counted: string;
  /** Retries of the wave (0: its first pass, which sends every plan index). */
  attempt: number;
  /** Plan indices a retry sends. */
  pass: string;
  /** Plan indices counted failed or skipped in this pass: what a retry sends again. */
  failedIndices: string;
  /** The first failing servers, named in the halt reason. */
  failedServers: string[];
  /** What was found on those servers, by server, for the halt reason. */
  failureNotes?: Record<string, string> | undefined;
}

/** Where a rollout is: what a queue message is judged against. */
export type RolloutPosition = Pick<RolloutStatus, 'state' | 'currentWave' | 'attempt'>;

/** A state row as the state machine reads it (a stored resumeTo may be undefined). */
export type StoredStatus = Omit<RolloutStatus, 'resumeTo'> & {
  readonly resumeTo?: RolloutStatus['resumeTo'] | undefined;
};

/** What is remembered of the last accepted package of a feed. */
export interface AcceptedMark {
  readonly signingTime?: Date;
  readonly sequence?: number;
}

/**
 * How a candidate's age compares with the last accepted package's: `unknown` when the last one has
 * no mark at all (its age cannot be told either way).
 */
export type Freshness = 'older' | 'same' | 'newer' | 'unknown';

/**
 * By sequence when both carry one (our own feeds), else by signing time when both carry one. A
 * candidate that shares no mark with a `last` that has one cannot be shown to be newer, so it
 * counts as older: a replay must never pass. Anything else is `unknown`: the poller lets such a package
 * add mitigations but holds it for an admin before it withdraws any (lib/rollout/poll.ts).
 *
 * @example compareFreshness({ sequence: 6 }, { sequence: 7 }) === 'older'
 * @example compareFreshness({}, { sequence: 7 }) === 'older'
 * @example compareFreshness({}, {}) === 'unknown'
 */
export function compareFreshness(candidate: AcceptedMark, last: AcceptedMark): Freshness {
  const order = (a: number, b: number): Freshness => (a < b ? 'older' : a > b ? 'newer' : 'same');
  if (candidate.sequence !== undefined && last.sequence !== undefined)
    return order(candidate.sequence, last.sequence);
  if (candidate.signingTime !== undefined && last.signingTime !== undefined)
    return order(candidate.signingTime.getTime(), last.signingTime.getTime());
  return last.sequence !== undefined || last.signingTime !== undefined ? 'older' : 'unknown';
}

/**
 * True when `candidate` is older than `last` (see compareFreshness). A package equal to the last
 * one is not a rollback (re-polling the same package is normal).
 *
 * @example isRollback({ sequence: 6 }, { sequence: 7 }) === true
 * @example isRollback({}, { sequence: 7 }) === true
 */
export function isRollback(candidate: AcceptedMark, last: AcceptedMark): boolean {
  return compareFreshness(candidate, last) === 'older';
}

/** One package a feed accepted, as its history keeps it. */
export interface AcceptedDigest {
  readonly sequence: number;
  readonly sha256: string;
}

/**
 * The superseded package `sha256` repeats, if any: a feed serving again a package it already
 * replaced is a replay (`Rollback`), whatever marks it carries. The current package is not
 * superseded: serving it again is an ordinary unchanged poll.
 */
export function supersededBy(
  sha256: string,
  history: readonly AcceptedDigest[],
  current: AcceptedDigest | undefined,
): { replayed: AcceptedDigest; current: AcceptedDigest } | undefined {
  if (!current || current.sha256 === sha256) return undefined;
  const replayed = history
    .filter((accepted) => accepted.sha256 === sha256 && accepted.sequence < current.sequence)
    .sort((a, b) => b.sequence - a.sequence)[0];
  return replayed ? { replayed, current } : undefined;
}

/** "sequence 7, signed 2026-…" for messages. */
export function describeMark(mark: AcceptedMark): string {
  const parts = [];
  if (mark.sequence !== undefined) parts.push(`sequence ${mark.sequence}`);
  if (mark.signingTime !== undefined) parts.push(`signed ${mark.signingTime.toISOString()}`);
  return parts.join(', ') || 'no sequence or signing time';
}

/** What is remembered of the last accepted package of a feed. */
export interface AcceptedMark {
  readonly signingTime?: Date;
  readonly sequence?: number;
}

/**
 * True when `candidate` is older than `last`: by sequence when both carry one (our own feeds),
 * else by signing time when both carry one. A package equal to the last one is not a rollback
 * (re-polling the same package is normal). A candidate that shares no mark with a `last` that has
 * one cannot be shown to be newer, so it counts as a rollback: a replay must never pass.
 *
 * @example isRollback({ sequence: 6 }, { sequence: 7 }) === true
 * @example isRollback({}, { sequence: 7 }) === true
 */
export function isRollback(candidate: AcceptedMark, last: AcceptedMark): boolean {
  if (candidate.sequence !== undefined && last.sequence !== undefined) return candidate.sequence < last.sequence;
  if (candidate.signingTime !== undefined && last.signingTime !== undefined) {
    return candidate.signingTime.getTime() < last.signingTime.getTime();
  }
  return last.sequence !== undefined || last.signingTime !== undefined;
}

/** "sequence 7, signed 2026-…" for messages. */
export function describeMark(mark: AcceptedMark): string {
  const parts = [];
  if (mark.sequence !== undefined) parts.push(`sequence ${mark.sequence}`);
  if (mark.signingTime !== undefined) parts.push(`signed ${mark.signingTime.toISOString()}`);
  return parts.join(', ') || 'no sequence or signing time';
}

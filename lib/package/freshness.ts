/** What is remembered of the last accepted package of a feed. */
export interface AcceptedMark {
  readonly signingTime?: Date;
  readonly sequence?: number;
}

/**
 * True when `candidate` is older than `last`: by sequence when both carry one (our own feeds),
 * else by signing time. A package equal to the last one is not a rollback (re-polling the same
 * package is normal); a package without any mark cannot be ordered after one that has it.
 *
 * @example isRollback({ sequence: 6 }, { sequence: 7 }) === true
 */
export function isRollback(candidate: AcceptedMark, last: AcceptedMark): boolean {
  if (candidate.sequence !== undefined && last.sequence !== undefined) return candidate.sequence < last.sequence;
  if (last.signingTime === undefined) return false;
  if (candidate.signingTime === undefined) return true;
  return candidate.signingTime.getTime() < last.signingTime.getTime();
}

/** The rollout states that end with work undone: their servers not reached yet are "Not started", not "Pending". */
const stoppedStates = new Set(['Halted', 'Aborted']);

export interface StoppedRollout {
  readonly id: string;
  readonly state: string;
}

/**
 * The rollout whose halt or abort left a feed's work undone: the feed's newest rollout, when it
 * ended Halted or Aborted (a later rollout of the feed, running or done, has taken over the work).
 */
export function stoppedRolloutOf(
  rollouts: readonly {
    readonly partitionKey: string;
    readonly feed: string;
    readonly state: string;
    readonly createdAt: Date;
  }[],
  feed: string,
): StoppedRollout | undefined {
  let newest: (typeof rollouts)[number] | undefined;
  for (const rollout of rollouts)
    if (rollout.feed === feed && (!newest || rollout.createdAt > newest.createdAt)) newest = rollout;
  return newest && stoppedStates.has(newest.state)
    ? { id: newest.partitionKey, state: newest.state }
    : undefined;
}

/** What a server's undone work shows: `Not started (rollout microsoft-000002-apply halted)`. */
export function notStartedLabel(stopped: StoppedRollout): string {
  return `Not started (rollout ${stopped.id} ${stopped.state.toLowerCase()})`;
}

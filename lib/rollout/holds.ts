import { createHash } from 'node:crypto';
import type { RolloutStateRow } from '../fleet/schemas.js';
import type { RolloutState } from '../model/rollout.js';
import type { Mitigation } from '../package/model.js';
import { mitigationContent } from './diff.js';
import type { ServerWork } from './plan.js';

/*
 * A halt holds (DESIGN §7): a rollout that ended Halted or Aborted holds the mitigations it
 * applies, for its feed, on the content they had in its package. Reconcile starts nothing that
 * would apply a held mitigation, to any server. The hold ends when the rollout is retried (it is
 * no longer Halted) or when the feed's current package has different content for the mitigation;
 * the same content under a new sequence keeps it. Removals are never held. Pure functions: the
 * callers read the rollouts and the current packages, and act on what these return.
 */

/** The states that hold their mitigations. */
export const holdingStates: readonly RolloutState[] = ['Halted', 'Aborted'];

/** By mitigation id, the SHA-256 of what it does and applies to (its description aside): what a hold is on. */
export function contentHashes(mitigations: readonly Mitigation[]): Record<string, string> {
  return Object.fromEntries(
    mitigations.map((mitigation) => [
      mitigation.id,
      createHash('sha256').update(mitigationContent(mitigation)).digest('hex'),
    ]),
  );
}

export interface Hold {
  readonly feed: string;
  readonly mitigation: string;
  /** The holding rollout (the newest, when several hold the same mitigation). */
  readonly rolloutId: string;
  readonly state: RolloutState;
  readonly packageSequence: number;
}

export type HoldingRollout = Pick<
  RolloutStateRow,
  'partitionKey' | 'feed' | 'packageSequence' | 'state' | 'applies'
>;

/**
 * The mitigations one rollout holds now. `current` is the content of its feed's current package,
 * undefined when that package cannot be read or no longer verifies: then nothing can show the
 * content changed, and the hold stays.
 */
export function heldBy(
  rollout: HoldingRollout,
  current: Readonly<Record<string, string>> | undefined,
): string[] {
  if (!holdingStates.includes(rollout.state)) return [];
  return Object.entries(rollout.applies)
    .filter(([id, content]) => current === undefined || current[id] === content)
    .map(([id]) => id)
    .sort();
}

/**
 * Every hold in force, one per feed and mitigation, naming the newest holding rollout. `rollouts`
 * newest first (as listRollouts returns them); `current` maps each feed to its current package's
 * content (a feed without an entry keeps its holds).
 */
export function activeHolds(
  rollouts: readonly HoldingRollout[],
  current: ReadonlyMap<string, Readonly<Record<string, string>>>,
): Hold[] {
  const holds = new Map<string, Hold>();
  for (const rollout of rollouts) {
    for (const mitigation of heldBy(rollout, current.get(rollout.feed))) {
      const key = `${rollout.feed}\u0000${mitigation}`;
      if (!holds.has(key))
        holds.set(key, {
          feed: rollout.feed,
          mitigation,
          rolloutId: rollout.partitionKey,
          state: rollout.state,
          packageSequence: rollout.packageSequence,
        });
    }
  }
  return [...holds.values()];
}

/** How a hold ends, in words: a halted rollout can be retried, an aborted one only outlived by new content. */
export function holdEnds(state: RolloutState): string {
  return `not reapplied until ${state === 'Halted' ? 'the rollout is retried or ' : ''}the feed publishes different content`;
}

/** What a hold kept from one server. */
export interface HeldOnServer {
  readonly server: string;
  readonly holds: readonly { readonly mitigation: string; readonly rolloutId: string }[];
}

/**
 * Reconcile's filtering step: the fix-up work of one feed less every apply of a mitigation that
 * feed's holds cover. Removals stay (a halt never keeps a blocked, fixed or withdrawn mitigation
 * in place); a server left with nothing to do drops out of the work.
 */
export function withoutHeld(
  work: readonly ServerWork[],
  holds: readonly Hold[],
  feed: string,
): { work: ServerWork[]; held: HeldOnServer[] } {
  const byId = new Map(holds.filter((hold) => hold.feed === feed).map((hold) => [hold.mitigation, hold]));
  const kept: ServerWork[] = [];
  const held: HeldOnServer[] = [];
  for (const server of work) {
    const heldHere = server.apply.filter((id) => byId.has(id));
    if (heldHere.length > 0)
      held.push({
        server: server.server,
        holds: heldHere.map((id) => ({ mitigation: id, rolloutId: byId.get(id)!.rolloutId })),
      });
    const apply = server.apply.filter((id) => !byId.has(id));
    if (apply.length + server.remove.length > 0)
      kept.push(heldHere.length > 0 ? { ...server, apply } : server);
  }
  return { work: kept, held };
}

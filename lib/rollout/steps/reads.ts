import { PackageStoreError, readPackage } from '../../fleet/packages.js';
import { planPageSize, readPlanPage, readRolloutState } from '../../fleet/rollouts.js';
import type { PlanRowEntity, RolloutStateRow } from '../../fleet/schemas.js';
import type { ApplyServerMessage } from '../messages.js';
import type { StepDeps } from './deps.js';

/*
 * The steps' reads that the worker's caches (lib/rollout/caches.ts) serve or share: rows that never
 * change are read once, and deliveries that start together share one read of the state row.
 */

/**
 * The state row as it is now, for deliveries that start together: each caller gets a read issued
 * after its call (so a pause or abort written before a delivery starts is seen by it), and the
 * callers that come while one read is under way share the next read (a window of 16 starting at
 * once reads the row twice, not 16 times). The row is shared: callers only read it.
 */
export function readStateNow(
  deps: Pick<StepDeps, 'tables' | 'caches'>,
  rolloutId: string,
): Promise<RolloutStateRow | undefined> {
  return deps.caches.stateReads(rolloutId, undefined, () => readRolloutState(deps.tables, rolloutId));
}

/**
 * A message's plan row. Plan rows never change once the rollout exists, so a worker reads them a
 * page at a time (one partition query for the next servers of the wave) and keeps a bounded number
 * of pages.
 */
export async function readPlanRow(
  deps: Pick<StepDeps, 'tables' | 'caches'>,
  message: ApplyServerMessage,
): Promise<PlanRowEntity | undefined> {
  const first = message.index - (message.index % planPageSize);
  const key = `${message.rolloutId}|${message.wave}|${first}`;
  const read = (): Promise<Map<number, PlanRowEntity>> =>
    deps.caches.planPages.set(key, readPlanPage(deps.tables, message.rolloutId, message.wave, first));
  const cached = deps.caches.planPages.get(key);
  const row = (await (cached ?? read())).get(message.index);
  // A page cached before its rows existed (a message that came before its rollout) is read again.
  if (!row && cached !== undefined) return (await read()).get(message.index);
  return row;
}

/** A rollout's package as base64, read once per worker: a stored package never changes (feed and sequence name it for good). */
export function packageForRollout(
  deps: Pick<StepDeps, 'tables' | 'caches'>,
  state: Pick<RolloutStateRow, 'partitionKey' | 'feed' | 'packageSequence'>,
): Promise<string> {
  const { feed, packageSequence: sequence } = state;
  const key = `${feed}/${sequence}`;
  return (
    deps.caches.packages.get(key) ??
    deps.caches.packages.set(
      key,
      readPackage(deps.tables, feed, sequence).then((stored) => {
        if (!stored)
          throw new PackageStoreError(`package ${feed}/${sequence} is missing from the Packages table`, {
            feed,
            sequence,
            rolloutId: state.partitionKey,
          });
        return Buffer.from(stored.bytes).toString('base64');
      }),
    )
  );
}

import { writeAudit } from '../fleet/audit.js';
import { queueNames } from '../fleet/queues.js';
import { mutateEntity } from '../fleet/optimistic.js';
import { readRollout, waveEntity, waveKey } from '../fleet/rollouts.js';
import { validateRow } from '../fleet/rows.js';
import { waveRow } from '../fleet/schemas.js';
import type { RolloutAction } from './state.js';
import type { EventDeps } from './steps/deps.js';
import { applyEvent, retryRollout } from './steps/rollout-events.js';
import { resolveCount, type WaveProfile } from '../model/waves.js';

/**
 * An admin's action on a rollout (CLI and admin API alike): one state-machine event, audited
 * whether it took effect or was refused, so the record says who tried what. Expedite also puts
 * the remaining waves on the emergency profile's pace; retry also resets the halted wave for the
 * servers it sends again.
 */
export async function changeRollout(
  deps: EventDeps,
  rolloutId: string,
  action: RolloutAction,
  actor: string,
  options: { emergencyWaves?: WaveProfile } = {},
): Promise<Awaited<ReturnType<typeof applyEvent>>> {
  const result =
    action === 'retry'
      ? await retryRollout(deps, rolloutId, actor)
      : await applyEvent(deps, rolloutId, { kind: action, actor });
  if (action === 'expedite' && result.ok && options.emergencyWaves)
    await speedUp(deps, rolloutId, options.emergencyWaves);
  await writeAudit(
    deps.tables,
    [
      {
        actor,
        action: `rollout.${action}`,
        target: `rollout:${rolloutId}`,
        source: 'table',
        before: null,
        after: result.ok
          ? {
              state: result.state?.state,
              reasonCode: result.state?.reasonCode,
              reasonDetail: result.state?.reasonDetail,
            }
          : { ...result.refusal },
      },
    ],
    deps.now?.(),
    { logger: deps.logger },
  );
  return result;
}

/**
 * The waves still to run take the concurrency and error budget of the emergency profile's last
 * (widest) wave when that is larger, and lose their bake; the running wave's window widens at once.
 */
async function speedUp(deps: EventDeps, rolloutId: string, emergency: WaveProfile): Promise<void> {
  const pace = emergency[emergency.length - 1]!;
  const { state, waves } = await readRollout(deps.tables, rolloutId);
  const client = await deps.tables.client('Rollouts');
  for (let index = state.currentWave; index < waves.length; index++) {
    await mutateEntity(client, rolloutId, waveKey(index), (current) => {
      const checked = current ? validateRow('Rollouts', waveRow, current) : undefined;
      if (!checked?.ok) return { kind: 'keep' };
      const wave = checked.row;
      const faster = {
        ...wave,
        maxConcurrency: Math.max(wave.maxConcurrency, resolveCount(pace.maxConcurrency, wave.servers, 1)),
        maxErrors: Math.max(wave.maxErrors, resolveCount(pace.maxErrors, wave.servers)),
        bakeInMs: 0,
      };
      return JSON.stringify(faster) === JSON.stringify(wave)
        ? { kind: 'keep' }
        : { kind: 'write', entity: waveEntity(faster) };
    });
  }
  if (state.state === 'Running')
    await deps.queues.send(queueNames.waves, { rolloutId, wave: state.currentWave });
}

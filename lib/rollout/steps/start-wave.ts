import { readRolloutState } from '../../fleet/rollouts.js';
import { decideStartWave } from '../deliveries.js';
import type { StartWaveMessage } from '../messages.js';
import { accountAndDispatch } from './account-wave.js';
import type { StepDeps } from './deps.js';

/** startWave: send the first window of the wave (DESIGN §7). Late or stray messages change nothing. */
export async function startWave(deps: StepDeps, message: StartWaveMessage): Promise<void> {
  const state = await readRolloutState(deps.tables, message.rolloutId);
  const decision = decideStartWave(state, message);
  if (decision.kind === 'ignored') {
    deps.logger.info('StartWaveIgnored', {
      rolloutId: message.rolloutId,
      wave: message.wave,
      state: state?.state ?? 'missing',
      currentWave: state?.currentWave,
    });
    return;
  }
  await accountAndDispatch(
    deps,
    message.rolloutId,
    { wave: message.wave, attempt: decision.attempt },
    undefined,
  );
}

import { readWave } from '../../fleet/rollouts.js';
import { gateEvent } from '../gate.js';
import type { GateWaveMessage } from '../messages.js';
import type { StepDeps } from './deps.js';
import { applyEvent } from './rollout-events.js';

/** gateWave: after the bake, judge the wave against its error budget (the state machine decides). */
export async function gateWave(deps: StepDeps, message: GateWaveMessage): Promise<void> {
  const wave = await readWave(deps.tables, message.rolloutId, message.wave);
  if (!wave) return;
  await applyEvent(deps, message.rolloutId, gateEvent(message.wave, wave.row));
}

import { writeAudit } from '../fleet/audit.js';
import { applyEvent, type EventDeps } from './steps.js';

export type RolloutAction = 'pause' | 'resume' | 'abort' | 'expedite';

/**
 * An admin's action on a rollout (CLI and admin API alike): one state-machine event, audited
 * whether it took effect or was refused, so the record says who tried what.
 */
export async function changeRollout(deps: EventDeps, rolloutId: string, action: RolloutAction, actor: string): Promise<Awaited<ReturnType<typeof applyEvent>>> {
  const result = await applyEvent(deps, rolloutId, { kind: action, actor });
  await writeAudit(deps.tables, [{ actor, action: `rollout.${action}`, target: `rollout:${rolloutId}`, source: 'table', before: null, after: result.ok ? { state: result.state?.state, reason: result.state?.reason } : { refused: result.reason } }], deps.now?.());
  return result;
}

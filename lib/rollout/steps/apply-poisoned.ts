import { readRolloutState } from '../../fleet/rollouts.js';
import { readResult } from '../../fleet/results.js';
import { readServerSite } from '../../fleet/servers.js';
import { parseRelayAddress } from '../../relay/route.js';
import { attemptOf, isSuperseded } from '../deliveries.js';
import type { ApplyServerMessage } from '../messages.js';
import { operationIdOf } from '../../model/operation-id.js';
import { poisonedResult, type HubRoute } from '../poisoned.js';
import { accountAndDispatch } from './account-wave.js';
import { recordResult } from './apply-to-server.js';
import type { StepDeps } from './deps.js';
import { readPlanRow } from './reads.js';

/**
 * The poison handler: a server whose messages kept failing is Unreachable and counts as a failure.
 * Behind a site hub, the detail is the hub's last answer about the agent when there was one (the
 * hub was up, the agent was not), else the site whose hub did not answer; the wave's note (and so
 * the halt reason) names the site.
 */
export async function applyPoisoned(deps: StepDeps, message: ApplyServerMessage): Promise<void> {
  const state = await readRolloutState(deps.tables, message.rolloutId);
  const plan = await readPlanRow(deps, message);
  if (!state || !plan || isSuperseded(state, message)) return;
  const attempt = attemptOf(message);
  const operationId = operationIdOf(message.rolloutId, message.wave, plan.server, attempt);
  // The poison message's own dequeue count starts again at 1; what matters is that the host gave up.
  const stored = await readResult(deps.tables, plan.server, operationId);
  const { relayPath, hybridConnection } = parseRelayAddress(plan.hybridConnection);
  const hub: HubRoute | undefined =
    relayPath === undefined
      ? undefined
      : { site: await readServerSite(deps.tables, deps.org, plan.server), hybridConnection, relayPath };
  const result = poisonedResult(plan, stored, hub);
  if (result.record) await recordResult(deps, plan, operationId, state, result.outcomes);
  deps.logger.warn('ServerUnreachable', {
    rolloutId: message.rolloutId,
    wave: message.wave,
    server: plan.server,
    operationId,
    ...(hub === undefined ? {} : { site: hub.site, hybridConnection, hubAnswered: result.hubAnswered }),
  });
  await accountAndDispatch(
    deps,
    message.rolloutId,
    { wave: message.wave, attempt },
    {
      result: {
        index: message.index,
        server: plan.server,
        verdict: 'failed',
        ...(result.note ? { note: result.note } : {}),
      },
    },
  );
}

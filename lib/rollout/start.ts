import { readPolicy } from '../fleet/policy.js';
import type { QueueSender } from '../fleet/queues.js';
import { createRollout, writePlanRows, type PlanRow } from '../fleet/rollouts.js';
import { isStatus } from '../fleet/rows.js';
import { listServers } from '../fleet/servers.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { ServerRow } from '../fleet/schemas.js';
import type { PlanInput, PlannedServerFacts, RolloutPlan } from './plan.js';
import { applyEvent } from './steps/rollout-events.js';
import { relayAddress } from '../relay/route.js';

/** A server as the planner needs it, with what its agent last reported about itself (for the status sweep). */
export type SnapshotServer = PlannedServerFacts &
  Pick<ServerRow, 'registeredBuild' | 'agentVersion' | 'lastSeen'>;

/** Servers and policy as the planner needs them, read in pages. */
export async function fleetSnapshot(
  tables: FleetTables,
  org: string,
  logger: Logger,
): Promise<Pick<PlanInput, 'orgPolicy' | 'serverPolicy'> & { servers: SnapshotServer[] }> {
  const [{ rows }, policy] = await Promise.all([
    listServers(tables, org, { logger }),
    readPolicy(tables, org, { logger }),
  ]);
  return {
    servers: rows.map((row) => ({
      name: row.rowKey,
      build: row.build,
      reportedApplied: row.reportedApplied,
      ring: row.ring,
      site: row.site,
      hybridConnection: relayAddress(row),
      registeredBuild: row.registeredBuild,
      agentVersion: row.agentVersion,
      ...(row.lastSeen ? { lastSeen: row.lastSeen } : {}),
    })),
    orgPolicy: policy.org,
    serverPolicy: policy.servers,
  };
}

/**
 * Stores the plan (its rows first, so a rollout is never visible without them), creates the
 * rollout and starts it. The id is the caller's and stable, so a retried caller finds the rollout
 * it made. Returns undefined when no server has anything to do.
 */
export async function startPlannedRollout(
  deps: { tables: FleetTables; queues: QueueSender; logger: Logger },
  rollout: {
    id: string;
    feed: string;
    packageSequence: number;
    plan: RolloutPlan;
    content: Readonly<Record<string, string>>;
  },
  now: Date,
): Promise<string | undefined> {
  const { plan } = rollout;
  const planRows: PlanRow[] = plan.waves.flatMap((wave) =>
    wave.servers.map((server, index) => ({
      wave: wave.index,
      index,
      server: server.server,
      hybridConnection: server.hybridConnection,
      apply: server.apply,
      remove: server.remove,
      onDegraded: server.onDegraded,
    })),
  );
  const where = {
    rolloutId: rollout.id,
    feed: rollout.feed,
    packageSequence: rollout.packageSequence,
    operation: plan.operation,
    mitigationIds: plan.mitigationIds,
  };
  if (planRows.length === 0) {
    deps.logger.info('RolloutNotNeeded', { ...where, leftOut: plan.leftOut.length });
    return undefined;
  }
  await writePlanRows(deps.tables, rollout.id, planRows);
  // What a halt of this rollout would hold: each mitigation it applies, on its content in the package.
  const applies = Object.fromEntries(
    [...new Set(planRows.flatMap((row) => row.apply))]
      .sort()
      .flatMap((id) => (rollout.content[id] ? [[id, rollout.content[id]]] : [])),
  );
  try {
    await createRollout(
      deps.tables,
      {
        id: rollout.id,
        feed: rollout.feed,
        packageSequence: rollout.packageSequence,
        operation: plan.operation,
        applies,
        waves: plan.waves.map((wave) => ({
          name: wave.name,
          servers: wave.servers.length,
          maxConcurrency: wave.maxConcurrency,
          maxErrors: wave.maxErrors,
          bakeInMs: wave.bakeInMs,
        })),
      },
      { now },
    );
  } catch (error) {
    if (!isStatus(error, 409)) throw error;
  }
  await applyEvent({ ...deps, now: () => now }, rollout.id, { kind: 'start' });
  deps.logger.info('RolloutStarted', {
    ...where,
    servers: planRows.length,
    leftOut: plan.leftOut.length,
    waves: plan.waves.map((wave) => `${wave.name}:${wave.servers.length}`),
  });
  return rollout.id;
}

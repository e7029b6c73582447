import { mapWithConcurrency } from '../concurrency.js';
import { mutateEntity } from '../fleet/optimistic.js';
import { factsUpdate, recordAgentFacts } from '../fleet/agent-facts.js';
import { validateRow } from '../fleet/rows.js';
import { serverRow } from '../fleet/schemas.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { StatusReply } from '../relay/protocol.js';

/** The one agent call the sweep makes. */
export interface AgentStatusSource {
  status(hybridConnection: string, options: { verify?: boolean }): Promise<StatusReply>;
}

export interface SweepDeps {
  readonly tables: FleetTables;
  readonly org: string;
  readonly logger: Logger;
  readonly agents: AgentStatusSource;
  readonly now?: () => Date;
}

export interface SweptServer {
  readonly name: string;
  readonly hybridConnection: string;
  readonly reportedApplied: readonly string[];
  /** The row's build and what the agent last reported about itself, kept in step from its status reply. */
  readonly build: string;
  readonly registeredBuild: string;
  readonly agentVersion: string;
  readonly lastSeen?: Date | undefined;
}

export interface SweepReport {
  /** What each server that answered has in place now. */
  readonly applied: ReadonlyMap<string, readonly string[]>;
  /** Servers whose agent reports another Exchange build than their row had, with the new build (already written). */
  readonly builds: ReadonlyMap<string, string>;
  /** Servers whose stored state differed and was corrected. */
  readonly changed: readonly string[];
  readonly unreachable: readonly string[];
}

/** Agents asked at once: the relay sender keeps a few connections per hybrid connection, and this bounds the whole sweep. */
export const sweepConcurrency = 32;
/** How many unreachable servers a log line names; the count covers the rest. */
const namedInLog = 20;

/**
 * Asks every agent what is actually in place (its status re-checks each journalled mitigation on
 * the server), so a change made by hand, such as a deleted rewrite rule, shows up as drift. Only
 * servers whose report differs from `Servers.reportedApplied` are written (usually none), each
 * with an ETag mutation so a result written meanwhile by a rollout step is never lost. A server
 * that does not answer keeps its last known state: silence is not evidence of removal.
 */
export async function sweepReportedState(
  deps: SweepDeps,
  servers: readonly SweptServer[],
  options: { dryRun?: boolean } = {},
): Promise<SweepReport> {
  const applied = new Map<string, readonly string[]>();
  const facts = new Map<string, StatusReply>();
  const unreachable: string[] = [];
  await mapWithConcurrency(servers, sweepConcurrency, async (server) => {
    try {
      const status = await deps.agents.status(server.hybridConnection, { verify: true });
      applied.set(server.name, [...status.applied].sort());
      facts.set(server.name, status);
    } catch (error) {
      unreachable.push(server.name);
      deps.logger.info('StatusSweepNoReply', {
        server: server.name,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  });
  const deltas = servers.flatMap((server) => {
    const now = applied.get(server.name);
    if (now === undefined) return [];
    const added = now.filter((id) => !server.reportedApplied.includes(id));
    const removed = server.reportedApplied.filter((id) => !now.includes(id));
    return added.length + removed.length > 0 ? [{ server: server.name, added, removed }] : [];
  });
  const reported = servers.flatMap((server) => {
    const status = facts.get(server.name);
    return status
      ? [
          {
            name: server.name,
            row: server,
            facts: { build: status.build, agentVersion: status.agentVersion },
          },
        ]
      : [];
  });
  if (options.dryRun) {
    deps.logger.info('StatusSweepDone', {
      servers: servers.length,
      answered: applied.size,
      differs: deltas.length,
      unreachable: unreachable.length,
      unreachableServers: unreachable.sort().slice(0, namedInLog),
      dryRun: true,
    });
    // Planned on the builds the agents report, as a real run would, without writing them.
    const at = deps.now?.() ?? new Date();
    const builds = new Map(
      reported.flatMap((server) => {
        const to = factsUpdate(server.row, server.facts, at)?.buildChanged?.to;
        return to === undefined ? [] : [[server.name, to] as const];
      }),
    );
    return { applied, builds, changed: deltas.map((delta) => delta.server), unreachable };
  }
  const client = await deps.tables.client('Servers');
  // The delta, not the snapshot, is written: a rollout step that recorded a result since the sweep read the row keeps it.
  await mapWithConcurrency(deltas, sweepConcurrency, (delta) =>
    mutateEntity(client, deps.org, delta.server, (current) => {
      if (!current) return { kind: 'keep' };
      const checked = validateRow('Servers', serverRow, current);
      if (!checked.ok) return { kind: 'keep' };
      const next = new Set(checked.row.reportedApplied);
      for (const id of delta.added) next.add(id);
      for (const id of delta.removed) next.delete(id);
      return {
        kind: 'write',
        entity: {
          ...current,
          reportedApplied: JSON.stringify([...next].sort()),
          lastSeen: deps.now?.() ?? new Date(),
        },
      };
    }),
  );
  for (const delta of deltas) deps.logger.warn('ReportedStateChanged', { ...delta });
  const builds = await recordAgentFacts(deps, reported);
  deps.logger.info('StatusSweepDone', {
    servers: servers.length,
    answered: applied.size,
    changed: deltas.length,
    unreachable: unreachable.length,
    unreachableServers: unreachable.sort().slice(0, namedInLog),
  });
  return { applied, builds, changed: deltas.map((delta) => delta.server), unreachable };
}

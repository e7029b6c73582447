import type { TableEntity } from '@azure/data-tables';
import { mapWithConcurrency } from '../concurrency.js';
import type { Logger } from '../log.js';
import { parseBuild } from '../model/build.js';
import { maxTransactionSize } from './batch.js';
import { isStatus } from './rows.js';
import type { ServerRow } from './schemas.js';
import type { FleetTables } from './storage.js';

/**
 * What an agent says about itself in every reply (lib/relay/protocol.ts `agentFacts`): its
 * Exchange build as it detected it, its version, when it answered. The cloud keeps the Servers row
 * in step from them, so nobody types a build after a Cumulative Update.
 */
export interface AgentFacts {
  readonly build?: string | undefined;
  readonly agentVersion?: string | undefined;
}

/** lastSeen is rewritten at most this often when nothing else changed: one write per server per sweep, not per reply. */
export const lastSeenResolutionInMs = 15 * 60_000;

export interface FactsUpdate {
  /** The Servers row's properties to merge. */
  readonly fields: { build?: string; agentVersion?: string; lastSeen: Date };
  /** The build the row had and the one the agent reports, when they differ (a Cumulative or Security Update). */
  readonly buildChanged?: { readonly from: string; readonly to: string };
}

/**
 * What to write for a reply (pure): the build when the agent reports a valid one that differs, the
 * agent version when it differs, lastSeen with either or when older than the resolution. An empty
 * or invalid reported build (an agent that could not detect it) never replaces a known one.
 */
export function factsUpdate(
  row: Pick<ServerRow, 'build' | 'agentVersion' | 'lastSeen'>,
  facts: AgentFacts,
  at: Date,
): FactsUpdate | undefined {
  const build =
    facts.build !== undefined && parseBuild(facts.build) !== undefined && facts.build !== row.build
      ? facts.build
      : undefined;
  const agentVersion =
    facts.agentVersion !== undefined && facts.agentVersion !== '' && facts.agentVersion !== row.agentVersion
      ? facts.agentVersion
      : undefined;
  const stale = row.lastSeen === undefined || at.getTime() - row.lastSeen.getTime() >= lastSeenResolutionInMs;
  if (build === undefined && agentVersion === undefined && !stale) return undefined;
  return {
    fields: {
      ...(build === undefined ? {} : { build }),
      ...(agentVersion === undefined ? {} : { agentVersion }),
      lastSeen: at,
    },
    ...(build === undefined ? {} : { buildChanged: { from: row.build, to: build } }),
  };
}

/**
 * A mismatch between the build an admin registered (`servers add --build`) and the one the agent
 * reports, once the agent has reported; shown by `servers list`, `status`, the API and the dashboard.
 */
export function buildMismatch(
  row: Pick<ServerRow, 'build' | 'registeredBuild' | 'agentVersion'>,
): { readonly registered: string; readonly reported: string } | undefined {
  if (row.agentVersion === '' || row.registeredBuild === '' || row.registeredBuild === row.build)
    return undefined;
  return { registered: row.registeredBuild, reported: row.build };
}

export interface ReportedServer {
  readonly name: string;
  readonly row: Pick<ServerRow, 'build' | 'registeredBuild' | 'agentVersion' | 'lastSeen'>;
  readonly facts: AgentFacts;
}

/**
 * Writes what changed for many servers of one org: Merge updates of the agent-owned properties only
 * (build, agentVersion, lastSeen), 100 to a transaction. No ETag: nothing else on the row is
 * written, so a concurrent registration or rollout step loses nothing; an update never creates a
 * row, so a server removed meanwhile stays removed. Logs `BuildChanged` per server and returns the
 * new builds by server, for the caller to plan on.
 */
export async function recordAgentFacts(
  deps: { tables: FleetTables; org: string; logger: Logger; now?: () => Date },
  servers: readonly ReportedServer[],
): Promise<Map<string, string>> {
  const at = deps.now?.() ?? new Date();
  const updates = servers.flatMap((server) => {
    const update = factsUpdate(server.row, server.facts, at);
    return update ? [{ server, update }] : [];
  });
  const builds = new Map<string, string>();
  if (updates.length === 0) return builds;
  const client = await deps.tables.client('Servers');
  const entity = (name: string, update: FactsUpdate): TableEntity<Record<string, unknown>> => ({
    partitionKey: deps.org,
    rowKey: name,
    ...update.fields,
  });
  const chunks: (typeof updates)[] = [];
  for (let start = 0; start < updates.length; start += maxTransactionSize)
    chunks.push(updates.slice(start, start + maxTransactionSize));
  await mapWithConcurrency(chunks, 4, async (chunk) => {
    try {
      await client.submitTransaction(
        chunk.map(({ server, update }) => ['update', entity(server.name, update), 'Merge']),
      );
    } catch {
      // One row gone (removed meanwhile) fails the whole transaction: the others go one by one.
      await mapWithConcurrency(chunk, 8, async ({ server, update }) => {
        try {
          await client.updateEntity(entity(server.name, update), 'Merge');
        } catch (error) {
          if (!isStatus(error, 404)) throw error;
        }
      });
    }
  });
  for (const { server, update } of updates) {
    if (!update.buildChanged) continue;
    builds.set(server.name, update.buildChanged.to);
    deps.logger.warn('BuildChanged', {
      server: server.name,
      from: update.buildChanged.from,
      to: update.buildChanged.to,
      ...(server.row.registeredBuild !== '' && server.row.registeredBuild !== update.buildChanged.to
        ? { registeredBuild: server.row.registeredBuild }
        : {}),
      meaning:
        'the agent reports another Exchange build (a Cumulative or Security Update was installed); the server is planned on the new build from now on',
    });
  }
  return builds;
}

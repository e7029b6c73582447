import { odata } from '@azure/data-tables';
import type { AppConfig } from '../config/index.js';
import { buildMismatch } from '../fleet/agent-facts.js';
import { readPolicy } from '../fleet/policy.js';
import { listRollouts } from '../fleet/rollouts.js';
import { notStartedLabel, stoppedRolloutOf, type StoppedRollout } from '../rollout/unreached.js';
import { readRows, type RowProblem } from '../fleet/rows.js';
import { resultRow, type ResultRow, type ServerRow } from '../fleet/schemas.js';
import { scanServers, serverMatches } from '../fleet/servers.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { Mitigation } from '../package/model.js';
import { decide, type PolicyDecision, type PolicyReason } from '../policy/decide.js';
import { effectiveScope } from '../policy/effective.js';
import { readCurrentFeeds, type CurrentFeed } from './feeds.js';
import type { CellOutcome, GridCell, GridPage, GridRow } from './types.js';

/** Every cell outcome, once (a Record, so the compiler checks the list against the type). */
const cellOutcomeSet: Record<CellOutcome, true> = {
  Applied: true,
  AlreadyApplied: true,
  Removed: true,
  NotApplicable: true,
  Blocked: true,
  Disabled: true,
  PolicyError: true,
  Unsupported: true,
  Skipped: true,
  Failed: true,
  Unreachable: true,
  Degraded: true,
  Ineffective: true,
  RolledBack: true,
  Pending: true,
  NotStarted: true,
  Unknown: true,
};
export const cellOutcomes = Object.keys(cellOutcomeSet) as [CellOutcome, ...CellOutcome[]];

export const maxGridRowsPerPage = 200;
/**
 * Servers one request looks at, at most. A filter that matches few servers would otherwise read
 * the whole fleet in one request; past the budget the page ends early with a token to go on.
 */
export const gridScanBudget = 2000;

export interface GridQuery {
  /** An empty ring or site selects the servers that have none. */
  readonly ring?: string | undefined;
  readonly site?: string | undefined;
  /** Servers with at least one cell of this outcome. */
  readonly outcome?: CellOutcome | undefined;
  /** A substring of the name or FQDN. */
  readonly search?: string | undefined;
  readonly top: number;
  /** The server the previous page ended with. */
  readonly after?: string | undefined;
}

/** A column: a mitigation of a current package, with its model when the package still verifies. */
export interface GridColumn {
  readonly id: string;
  readonly mitigation: Mitigation | undefined;
  /** The halted or aborted rollout that left the feed's work undone, if any: its unreached cells are "Not started". */
  readonly stopped?: StoppedRollout | undefined;
}

/** The current packages' mitigations, feed by feed, each id once (the first feed that has it). */
export function gridColumns(
  feeds: readonly CurrentFeed[],
  rollouts: Parameters<typeof stoppedRolloutOf>[0] = [],
): GridColumn[] {
  const columns = new Map<string, GridColumn>();
  for (const feed of feeds) {
    if (!feed.stored) continue;
    const models = feed.verified?.ok ? feed.verified.package.mitigations : [];
    const stopped = stoppedRolloutOf(rollouts, feed.name);
    for (const id of feed.stored.mitigationIds)
      if (!columns.has(id))
        columns.set(id, {
          id,
          mitigation: models.find((model) => model.id === id),
          ...(stopped ? { stopped } : {}),
        });
  }
  return [...columns.values()];
}

/**
 * One page of the fleet grid, in server name order: ring and site filtered by Tables, the search
 * and the outcome here. Servers are read a Tables page at a time and their cells a chunk at a
 * time: one Results query and one Policy query over the chunk's range of names, never one per
 * server.
 */
export async function readGridPage(
  deps: { tables: FleetTables; config: AppConfig; logger: Logger },
  query: GridQuery,
): Promise<Omit<GridPage, 'continuationToken'> & { after: string | undefined }> {
  const [feeds, rollouts] = await Promise.all([
    readCurrentFeeds(deps),
    listRollouts(deps.tables, { logger: deps.logger }),
  ]);
  const columns = gridColumns(feeds, rollouts);
  const rows: GridRow[] = [];
  const problems: RowProblem[] = [];
  const filtering = query.search !== undefined || query.outcome !== undefined;
  let scanned = 0;
  const page = (after: string | undefined) => ({
    mitigations: columns.map((column) => column.id),
    rows,
    after,
    scanned,
    problems,
  });
  const scan = {
    ring: query.ring,
    site: query.site,
    after: query.after,
    pageSize: filtering ? 1000 : query.top,
  };
  for await (const { entries, more } of scanServers(deps.tables, deps.config.org, scan)) {
    const servers: ServerRow[] = [];
    for (const checked of entries) {
      if (!checked.ok) problems.push(checked.problem);
      else if (query.search === undefined || serverMatches(checked.row, query.search))
        servers.push(checked.row);
    }
    scanned += entries.length;
    for (let start = 0; start < servers.length; ) {
      // Without an outcome filter every server is shown, so read no more cells than the page needs.
      const chunk = servers.slice(
        start,
        start + (query.outcome === undefined ? query.top - rows.length : maxGridRowsPerPage),
      );
      const chunkRows = await gridRows(deps, chunk, columns, problems);
      for (const [offset, row] of chunkRows.entries()) {
        if (
          query.outcome !== undefined &&
          !Object.values(row.cells).some((cell) => cell.outcome === query.outcome)
        )
          continue;
        rows.push(row);
        if (rows.length === query.top)
          return page(start + offset < servers.length - 1 || more ? row.server : undefined);
      }
      start += chunk.length;
    }
    const lastServer = entries.findLast((checked) => checked.ok)?.row.rowKey;
    if (scanned >= gridScanBudget && more && lastServer !== undefined) return page(lastServer);
  }
  return page(undefined);
}

/** Rows for servers in name order: their results and their policy, read for the range of names. */
async function gridRows(
  deps: { tables: FleetTables; config: AppConfig; logger: Logger },
  servers: readonly ServerRow[],
  columns: readonly GridColumn[],
  problems: RowProblem[],
): Promise<GridRow[]> {
  const first = servers[0]?.rowKey;
  const last = servers.at(-1)?.rowKey;
  if (first === undefined || last === undefined) return [];
  const [results, policy] = await Promise.all([
    readRows(await deps.tables.client('Results'), 'Results', resultRow, {
      filter: odata`PartitionKey ge ${first} and PartitionKey le ${last}`,
      logger: deps.logger,
    }),
    readPolicy(deps.tables, deps.config.org, { logger: deps.logger, servers: { first, last } }),
  ]);
  problems.push(...results.problems);
  const byServer = new Map<string, ResultRow[]>();
  for (const row of results.rows)
    byServer.set(row.partitionKey, [...(byServer.get(row.partitionKey) ?? []), row]);
  const org = effectiveScope(policy.org);
  return servers.map((server) => {
    const scope = effectiveScope(policy.servers.get(server.rowKey));
    const facts = { name: server.rowKey, build: server.build, reportedApplied: server.reportedApplied };
    return {
      server: server.rowKey,
      fqdn: server.fqdn,
      site: server.site,
      ring: server.ring,
      build: server.build,
      registeredBuild: buildMismatch(server)?.registered ?? null,
      lastSeen: server.lastSeen?.toISOString() ?? null,
      cells: serverCells(columns, byServer.get(server.rowKey) ?? [], (mitigation) =>
        decide(org, scope, facts, mitigation),
      ),
    };
  });
}

/**
 * A server's cells: per mitigation its latest completed result (what happened there); where it has
 * none, what policy decides for it now (why nothing happened, or that something is still to come).
 */
export function serverCells(
  columns: readonly GridColumn[],
  results: readonly ResultRow[],
  decideFor: (mitigation: Mitigation) => PolicyDecision,
): Record<string, GridCell> {
  const latest = new Map<string, GridCell>();
  for (const result of [...results].sort((a, b) => a.at.getTime() - b.at.getTime())) {
    if (result.status !== 'Completed') continue;
    for (const [id, { outcome, detail }] of Object.entries(result.outcomes)) {
      latest.set(id, {
        outcome,
        reason: detail || `${outcome} by ${result.rolloutId || 'an earlier operation'}`,
        source: 'result',
        at: result.at.toISOString(),
        rolloutId: result.rolloutId || null,
      });
    }
  }
  return Object.fromEntries(
    columns.map((column): [string, GridCell] => {
      const cell =
        latest.get(column.id) ??
        (column.mitigation ? decisionCell(decideFor(column.mitigation), column.stopped) : unknownCell);
      return [column.id, cell];
    }),
  );
}

const outcomeOfSkip: Record<PolicyReason, CellOutcome> = {
  'Disabled (org)': 'Disabled',
  'Disabled (server)': 'Disabled',
  'Blocked (org)': 'Blocked',
  'Blocked (server)': 'Blocked',
  NotApplicable: 'NotApplicable',
  'NotApplicable (fixed)': 'NotApplicable',
  PolicyError: 'PolicyError',
  Unsupported: 'Unsupported',
  Applicable: 'Pending',
};

/**
 * A cell without a result: policy's Skip reason, or Pending for work (apply or remove) not done
 * yet; NotStarted when the rollout that would have done it halted or was aborted.
 */
export function decisionCell(decision: PolicyDecision, stopped?: StoppedRollout): GridCell {
  if (decision.decision === 'Skip')
    return {
      outcome: outcomeOfSkip[decision.reason],
      reason: `${decision.reason}: ${decision.detail}`,
      source: 'policy',
      at: null,
      rolloutId: null,
    };
  if (stopped)
    return {
      outcome: 'NotStarted',
      reason: `${notStartedLabel(stopped)}: ${decision.detail}`,
      source: 'policy',
      at: null,
      rolloutId: stopped.id,
    };
  return {
    outcome: 'Pending',
    reason: `no result yet: ${decision.detail}`,
    source: 'policy',
    at: null,
    rolloutId: null,
  };
}

const unknownCell: GridCell = {
  outcome: 'Unknown',
  reason: 'no result, and the current package no longer verifies, so policy cannot decide',
  source: 'policy',
  at: null,
  rolloutId: null,
};

import { mapWithConcurrency } from '../concurrency.js';
import { getEntityOrUndefined } from '../fleet/optimistic.js';
import { validateRow } from '../fleet/rows.js';
import { resultRow, type WaveRow } from '../fleet/schemas.js';
import { failureOutcomes, type Outcome } from '../model/outcomes.js';
import type { FleetTables } from '../fleet/storage.js';
import { formatTable } from '../text.js';
import { operationIdOf } from '../model/operation-id.js';

/** One failing mitigation on one server of a rollout, as its result says: what the probes found, or why it failed. */
export interface RolloutProblem {
  readonly wave: number;
  readonly waveName: string;
  readonly server: string;
  readonly mitigation: string;
  readonly outcome: Outcome;
  readonly detail: string;
  readonly endpoints?: readonly string[];
}

/**
 * The failures of a rollout's waves, read from the results of the servers each wave names (at most
 * 50 per wave: point reads, never a scan of the Results table, whatever the fleet's size).
 */
export async function rolloutProblems(
  tables: FleetTables,
  rolloutId: string,
  waves: readonly WaveRow[],
): Promise<RolloutProblem[]> {
  const client = await tables.client('Results');
  const servers = waves.flatMap((wave, index) =>
    wave.failedServers.map((server) => ({ wave: index, waveName: wave.name, attempt: wave.attempt, server })),
  );
  const found = await mapWithConcurrency(servers, 8, async ({ wave, waveName, attempt, server }) => {
    // The failures a wave names are those of its latest pass (a retry's, under its own operation ids).
    const entity = await getEntityOrUndefined(
      client,
      server,
      operationIdOf(rolloutId, wave, server, attempt),
    );
    const checked = entity ? validateRow('Results', resultRow, entity) : undefined;
    if (!checked?.ok) return [];
    return Object.entries(checked.row.outcomes)
      .filter(([, result]) => failureOutcomes.includes(result.outcome))
      .map(
        ([mitigation, result]): RolloutProblem => ({
          wave,
          waveName,
          server,
          mitigation,
          outcome: result.outcome,
          detail: result.detail,
          ...(result.endpoints ? { endpoints: result.endpoints } : {}),
        }),
      );
  });
  return found.flat();
}

/** The failures as a table (`emfleet rollout show`, `npm start`'s summary): wave, server, mitigation, outcome and the agent's detail. */
export function problemTable(problems: readonly RolloutProblem[]): string[] {
  return formatTable(
    ['WAVE', 'SERVER', 'MITIGATION', 'OUTCOME', 'DETAIL'],
    problems.map((problem) => [
      `${problem.wave + 1} ${problem.waveName}`,
      problem.server,
      problem.mitigation,
      problem.outcome,
      problem.detail,
    ]),
  );
}

import { buildMismatch } from './agent-facts.js';
import type { Reason } from '../model/reasons.js';
import type { RolloutStateRow, ServerRow, WaveRow } from './schemas.js';

/**
 * Rows as the CLI (`--json`) and the admin API print them: one shape for both, because users'
 * scripts read either (DESIGN §10).
 */
export function serverJson(row: ServerRow): Record<string, unknown> {
  return {
    name: row.rowKey,
    fqdn: row.fqdn,
    build: row.build,
    registeredBuild: row.registeredBuild,
    /** The registered build differs from the one the agent reports (a Cumulative Update since `servers add`). */
    buildMismatch: buildMismatch(row) ?? null,
    site: row.site,
    ring: row.ring,
    relayHybridConnection: row.relayHybridConnection,
    relayPath: row.relayPath,
    agentVersion: row.agentVersion,
    lastSeen: row.lastSeen?.toISOString() ?? null,
    reportedApplied: row.reportedApplied,
    reportedBlocked: row.reportedBlocked,
  };
}

export function rolloutJson(row: RolloutStateRow): Record<string, unknown> {
  return {
    id: row.partitionKey,
    feed: row.feed,
    packageSequence: row.packageSequence,
    operation: row.operation,
    state: row.state,
    reasonCode: row.reasonCode,
    reasonDetail: row.reasonDetail,
    currentWave: row.currentWave,
    waveCount: row.waveCount,
    attempt: row.attempt,
    halts: row.halts,
    profile: row.profile,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/**
 * The bitsets (servers counted, failed, sent by a retry) are bookkeeping, meaningless to readers.
 * `problems`: each failing mitigation of the servers the waves name, with what the probes found.
 * `holds`: the mitigations this rollout holds now (Halted or Aborted), which reconcile does not reapply.
 */
export function rolloutDetailJson(
  state: RolloutStateRow,
  waves: readonly WaveRow[],
  problems: readonly unknown[] = [],
  holds: readonly string[] = [],
): Record<string, unknown> {
  return {
    ...rolloutJson(state),
    holds,
    waves: waves.map(({ counted: _counted, pass: _pass, failedIndices: _failedIndices, ...wave }) => ({
      ...wave,
      failureNotes: wave.failureNotes ?? {},
    })),
    problems,
  };
}

/**
 * The outcome of an admin's action on a rollout: the state it is in, and the reason: the new
 * state's (`PausedByAdmin`…), or the refusal (`Refused`) when the state machine did not take it.
 */
export function rolloutActionJson(
  rolloutId: string,
  result: {
    readonly ok: boolean;
    readonly refusal?: Reason<'Refused'> | undefined;
    readonly state?: RolloutStateRow | undefined;
  },
): Record<string, unknown> {
  const why = result.refusal ?? result.state;
  return {
    ok: result.ok,
    rolloutId,
    ...(result.state ? { state: result.state.state } : {}),
    ...(why ? { reasonCode: why.reasonCode, reasonDetail: why.reasonDetail } : {}),
  };
}

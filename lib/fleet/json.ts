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
  return { id: row.partitionKey, feed: row.feed, packageSequence: row.packageSequence, operation: row.operation, state: row.state, reason: row.reason, currentWave: row.currentWave, waveCount: row.waveCount, profile: row.profile, createdAt: row.createdAt.toISOString(), updatedAt: row.updatedAt.toISOString() };
}

/**
 * The bitset of counted servers is bookkeeping for redelivered results, meaningless to readers.
 * `problems`: each failing mitigation of the servers the waves name, with what the probes found.
 */
export function rolloutDetailJson(state: RolloutStateRow, waves: readonly WaveRow[], problems: readonly unknown[] = []): Record<string, unknown> {
  return { ...rolloutJson(state), waves: waves.map(({ counted: _counted, ...wave }) => ({ ...wave, failureNotes: wave.failureNotes ?? {} })), problems };
}

/** The outcome of pause/resume/abort/expedite: the new state, or why the state machine refused. */
export function rolloutActionJson(rolloutId: string, result: { readonly ok: boolean; readonly reason?: string | undefined; readonly state?: RolloutStateRow | undefined }): Record<string, unknown> {
  return { ok: result.ok, rolloutId, ...(result.state ? { state: result.state.state, reason: result.state.reason } : {}), ...(result.reason ? { refused: result.reason } : {}) };
}

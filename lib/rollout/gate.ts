import type { WaveProgress } from './progress.js';
import type { RolloutEvent } from './state.js';

/**
 * The gate event of a baked wave: its counts and error budget, and its failing servers each with
 * its note (`srv1 [EM2 RolledBack: ecp]`). The state machine (state.ts) judges it. Pure.
 */
export function gateEvent(wave: number, row: WaveProgress): Extract<RolloutEvent, { kind: 'gate' }> {
  return {
    kind: 'gate',
    wave,
    counts: { servers: row.servers, succeeded: row.succeeded, failed: row.failed, skipped: row.skipped },
    maxErrors: row.maxErrors,
    failedServers: row.failedServers.map((server) =>
      row.failureNotes?.[server] ? `${server} [${row.failureNotes[server]}]` : server,
    ),
  };
}

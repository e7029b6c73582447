import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { AgentConfig } from './config.js';
import { Journal } from './journal.js';
import { createApplier } from './run.js';

export interface RestoreAllReport {
  readonly restored: readonly string[];
  readonly failed: readonly { readonly mitigationId: string; readonly error: string }[];
}

/**
 * Puts back what every journaled mitigation changed (its prior state; an adopted one is removed),
 * newest action first, and empties the journal: what `Install-EmfleetAgent.ps1 -Uninstall` runs,
 * with the agent stopped, before it removes the agent. A mitigation that cannot be restored stays
 * in the journal and is reported, so the uninstall stops instead of leaving a server half changed.
 */
export async function restoreAll(config: AgentConfig, logger: Logger): Promise<RestoreAllReport> {
  const applier = createApplier(config);
  const journal = await Journal.open(join(config.stateDirectory, 'journal.json'));
  const restored: string[] = [];
  const failed: { mitigationId: string; error: string }[] = [];
  for (const entry of journal.entries()) {
    try {
      await journal.put({ ...entry, state: 'removing' });
      for (const prior of [...entry.priors].reverse()) await applier.restore(prior);
      await journal.drop(entry.mitigationId);
      restored.push(entry.mitigationId);
      logger.info('MitigationOutcome', {
        mitigationId: entry.mitigationId,
        operation: 'uninstall',
        outcome: 'Removed',
        detail: entry.adopted ? 'adopted change removed' : 'prior state restored',
      });
    } catch (error) {
      failed.push({
        mitigationId: entry.mitigationId,
        error: error instanceof Error ? error.message : String(error),
      });
      logger.error('MitigationOutcome', {
        mitigationId: entry.mitigationId,
        operation: 'uninstall',
        outcome: 'Failed',
        detail: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return { restored: restored.sort(), failed };
}

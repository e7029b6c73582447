import { describe, expect, it } from 'vitest';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import { runReconcileCycle } from '../../lib/rollout/reconcile-cycle.js';
import type { AgentStatusSource } from '../../lib/rollout/sweep.js';
import type { WaveProfile } from '../../lib/model/waves.js';
import { azuriteConnectionString, freshTables } from '../helpers/fleet.js';
import { recordingLogger } from '../helpers/logs.js';

const waves: WaveProfile = [
  { name: 'all', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' },
];

function cycleDeps(agents: () => Promise<AgentStatusSource>) {
  const fresh = freshTables();
  const logger = recordingLogger();
  return {
    logger,
    deps: {
      tables: fresh.tables,
      queues: new StorageQueueSender(
        { kind: 'connectionString', connectionString: azuriteConnectionString() },
        { prefix: fresh.prefix },
      ),
      org: 'contoso',
      waves,
      logger,
      agents,
    },
  };
}

describe('runReconcileCycle', () => {
  it('without a relay, says so and still reconciles on what rollouts recorded; a misconfigured feed is logged', async () => {
    let asked = 0;
    const { deps, logger } = cycleDeps(async () => {
      asked++;
      throw new Error('no relay configured: set EMFLEET_RELAY_NAMESPACE');
    });
    const reports = await runReconcileCycle(deps, {
      feeds: [],
      problems: [{ feed: 'contoso', error: 'EMFLEET_FEEDS contoso: no PEM' }],
    });
    expect(asked).toBe(1);
    expect(Array.isArray(reports)).toBe(true);
    expect(logger.named('FeedMisconfigured').map((entry) => entry.fields)).toEqual([
      { feed: 'contoso', error: 'EMFLEET_FEEDS contoso: no PEM' },
    ]);
    expect(logger.named('ReconcileWithoutStatusSweep').map((entry) => [entry.level, entry.fields])).toEqual([
      ['warn', { error: 'no relay configured: set EMFLEET_RELAY_NAMESPACE' }],
    ]);
  });

  it('with a relay, asks for the client once and logs no warning', async () => {
    let asked = 0;
    const { deps, logger } = cycleDeps(async () => {
      asked++;
      return { status: async () => ({}) } as unknown as AgentStatusSource;
    });
    await runReconcileCycle(deps, { feeds: [], problems: [] });
    expect(asked).toBe(1);
    expect(logger.named('ReconcileWithoutStatusSweep')).toEqual([]);
  });
});

import type { InvocationContext, Timer } from '@azure/functions';
import { settingReference } from '../config/index.js';
import { runPollCycle, type PollCycleOutcome } from '../rollout/poll-cycle.js';
import { runReconcileCycle } from '../rollout/reconcile-cycle.js';
import type { ReconcileOptions, ReconcileReport } from '../rollout/reconcile.js';
import { invocationFor, type Invocation } from './context.js';

/** When the timers run: NCRONTAB expressions the host reads from the app settings. */
export const pollSchedule = settingReference('pollSchedule');
export const reconcileSchedule = settingReference('reconcileSchedule');

/** The hourly poll: the declared policy into Tables, then every feed (lib/rollout/poll-cycle.ts). */
export function pollCycle({ app, logger, notify }: Invocation): Promise<Record<string, PollCycleOutcome>> {
  return runPollCycle(
    {
      tables: app.tables,
      queues: app.queues,
      org: app.config.org,
      waves: app.config.waves,
      logger,
      notify,
      declaredPolicy: app.declaredPolicy,
    },
    app.feeds(),
  );
}

/** The hourly drift check (lib/rollout/reconcile-cycle.ts). */
export function reconcileCycle(
  { app, logger, notify }: Invocation,
  options: ReconcileOptions = {},
): Promise<ReconcileReport[]> {
  return runReconcileCycle(
    {
      tables: app.tables,
      queues: app.queues,
      org: app.config.org,
      waves: app.config.waves,
      logger,
      notify,
      agents: app.agents,
    },
    app.feeds(),
    options,
  );
}

export async function pollOcsHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  await pollCycle(invocationFor(context));
}

export async function reconcileHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  await reconcileCycle(invocationFor(context));
}

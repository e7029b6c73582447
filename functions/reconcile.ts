import type { InvocationContext, Timer } from '@azure/functions';
import { appContext, invocationLogger, runReconcileCycle } from '../lib/app.js';
import { register } from '../lib/functions.js';

/** Hourly (EMFLEET_RECONCILE_SCHEDULE): desired state against reported state, and a fix-up rollout for the drift. */
export const reconcile = register({
  kind: 'timer',
  name: 'reconcile',
  options: {
    schedule: '%EMFLEET_RECONCILE_SCHEDULE%',
    handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
      await runReconcileCycle(appContext(invocationLogger(context)));
    },
  },
});

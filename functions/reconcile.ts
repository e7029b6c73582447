import { reconcileHandler, reconcileSchedule } from '../lib/app/timers.js';
import { register } from '../lib/functions.js';

/** Hourly, half past (the reconcile schedule setting): desired state against reported state, and a fix-up rollout for the drift. */
export const reconcile = register({
  kind: 'timer',
  name: 'reconcile',
  options: { schedule: reconcileSchedule, handler: reconcileHandler },
});

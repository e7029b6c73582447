import type { InvocationContext, Timer } from '@azure/functions';
import { appContext, invocationLogger, runPollCycle } from '../lib/app.js';
import { register } from '../lib/functions.js';

/** Hourly (EMFLEET_POLL_SCHEDULE, UTC): sync declared policy, poll each feed, start rollouts. */
export const pollOcs = register({
  kind: 'timer',
  name: 'pollOcs',
  options: {
    schedule: '%EMFLEET_POLL_SCHEDULE%',
    handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
      await runPollCycle(appContext(invocationLogger(context)));
    },
  },
});

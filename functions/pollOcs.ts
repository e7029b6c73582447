import { app, type InvocationContext, type Timer, type TimerFunctionOptions } from '@azure/functions';
import { appContext, invocationLogger, runPollCycle } from '../lib/app.js';

/** Hourly (EMFLEET_POLL_SCHEDULE, UTC): sync declared policy, poll each feed, start rollouts. */
export const pollOcs: TimerFunctionOptions = {
  schedule: '%EMFLEET_POLL_SCHEDULE%',
  runOnStartup: false,
  handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
    await runPollCycle(appContext(invocationLogger(context)));
  },
};

app.timer('pollOcs', pollOcs);

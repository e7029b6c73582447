import { pollOcsHandler, pollSchedule } from '../lib/app/timers.js';
import { register } from '../lib/functions.js';

/** Hourly (the poll schedule setting, UTC): sync declared policy, poll each feed, start rollouts. */
export const pollOcs = register({
  kind: 'timer',
  name: 'pollOcs',
  options: { schedule: pollSchedule, handler: pollOcsHandler },
});

import { queueConnection, applyPoisonHandler, stepQueues } from '../lib/app/queues.js';
import { register } from '../lib/functions.js';

/** Messages the host gave up on after maxDequeueCount: the server is Unreachable and counts as a failure. */
export const applyPoison = register({
  kind: 'storageQueue',
  name: 'applyPoison',
  options: { queueName: stepQueues.applyPoison, connection: queueConnection, handler: applyPoisonHandler },
});

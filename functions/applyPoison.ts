import { queueStepHandler } from '../lib/app.js';
import { queueNames } from '../lib/fleet/queues.js';
import { register } from '../lib/functions.js';
import { applyServerMessage } from '../lib/rollout/messages.js';
import { applyPoisoned } from '../lib/rollout/steps/apply-poisoned.js';

const queue = `${queueNames.apply}-poison`;

/** Messages the host gave up on after maxDequeueCount: the server is Unreachable and counts as a failure. */
export const applyPoison = register({
  kind: 'storageQueue',
  name: 'applyPoison',
  options: {
    queueName: queue,
    connection: 'AzureWebJobsStorage',
    handler: queueStepHandler(queue, applyServerMessage, applyPoisoned),
  },
});

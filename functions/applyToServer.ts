import { queueStepHandler } from '../lib/app.js';
import { queueNames } from '../lib/fleet/queues.js';
import { register } from '../lib/functions.js';
import { applyServerMessage } from '../lib/rollout/messages.js';
import { applyToServer as run } from '../lib/rollout/steps/apply-to-server.js';

export const applyToServer = register({
  kind: 'storageQueue',
  name: 'applyToServer',
  options: {
    queueName: queueNames.apply,
    connection: 'AzureWebJobsStorage',
    handler: queueStepHandler(queueNames.apply, applyServerMessage, run),
  },
});

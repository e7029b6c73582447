import { queueStepHandler } from '../lib/app.js';
import { queueNames } from '../lib/fleet/queues.js';
import { register } from '../lib/functions.js';
import { gateWaveMessage } from '../lib/rollout/messages.js';
import { gateWave as run } from '../lib/rollout/steps/gate-wave.js';

export const gateWave = register({
  kind: 'storageQueue',
  name: 'gateWave',
  options: {
    queueName: queueNames.gate,
    connection: 'AzureWebJobsStorage',
    handler: queueStepHandler(queueNames.gate, gateWaveMessage, run),
  },
});

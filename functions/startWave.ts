import { queueStepHandler } from '../lib/app.js';
import { queueNames } from '../lib/fleet/queues.js';
import { register } from '../lib/functions.js';
import { startWaveMessage } from '../lib/rollout/messages.js';
import { startWave as run } from '../lib/rollout/steps/start-wave.js';

export const startWave = register({
  kind: 'storageQueue',
  name: 'startWave',
  options: {
    queueName: queueNames.waves,
    connection: 'AzureWebJobsStorage',
    handler: queueStepHandler(queueNames.waves, startWaveMessage, run),
  },
});

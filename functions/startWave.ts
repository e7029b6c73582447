import { queueConnection, startWaveHandler, stepQueues } from '../lib/app/queues.js';
import { register } from '../lib/functions.js';

export const startWave = register({
  kind: 'storageQueue',
  name: 'startWave',
  options: { queueName: stepQueues.startWave, connection: queueConnection, handler: startWaveHandler },
});

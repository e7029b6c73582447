import { queueConnection, gateWaveHandler, stepQueues } from '../lib/app/queues.js';
import { register } from '../lib/functions.js';

export const gateWave = register({
  kind: 'storageQueue',
  name: 'gateWave',
  options: { queueName: stepQueues.gateWave, connection: queueConnection, handler: gateWaveHandler },
});

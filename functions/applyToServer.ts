import { queueConnection, applyToServerHandler, stepQueues } from '../lib/app/queues.js';
import { register } from '../lib/functions.js';

export const applyToServer = register({
  kind: 'storageQueue',
  name: 'applyToServer',
  options: {
    queueName: stepQueues.applyToServer,
    connection: queueConnection,
    handler: applyToServerHandler,
  },
});

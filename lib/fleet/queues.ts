import { type QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { isStatus } from './rows.js';
import type { StorageConnection } from './storage.js';

/** emfleet's queues (DESIGN §7); the host moves messages that keep failing to `<name>-poison`. */
export const queueNames = { waves: 'emfleet-waves', apply: 'emfleet-apply', gate: 'emfleet-gate' } as const;
export type QueueName = (typeof queueNames)[keyof typeof queueNames];

/** Sends JSON messages the way the Functions host reads them: base64 of the UTF-8 JSON text. */
export interface QueueSender {
  send(queue: QueueName, message: unknown, options?: { delayInMs?: number }): Promise<void>;
}

/** The queue's own limit is 7 days; longer bakes are refused rather than silently cut. */
const maxDelayInMs = 7 * 24 * 3600 * 1000;

export class StorageQueueSender implements QueueSender {
  readonly #service: Promise<QueueServiceClient>;
  readonly #queues = new Map<string, Promise<QueueClient>>();
  readonly #prefix: string;
  readonly #entra: boolean;

  constructor(connection: StorageConnection, options: { prefix?: string } = {}) {
    this.#prefix = (options.prefix ?? '').toLowerCase();
    this.#entra = connection.kind === 'account';
    this.#service =
      connection.kind === 'connectionString'
        ? Promise.resolve(QueueServiceClient.fromConnectionString(connection.connectionString))
        : import('@azure/identity').then(
            ({ DefaultAzureCredential }) =>
              new QueueServiceClient(
                `https://${connection.accountName}.queue.core.windows.net`,
                new DefaultAzureCredential(),
              ),
          );
  }

  /** Queue names carry the deployment's prefix, like table names. */
  queueName(queue: QueueName): string {
    return this.#prefix === '' ? queue : `${this.#prefix}-${queue}`;
  }

  client(queue: QueueName): Promise<QueueClient> {
    const name = this.queueName(queue);
    let client = this.#queues.get(name);
    if (!client) {
      client = this.#service.then(async (service) => {
        const queueClient = service.getQueueClient(name);
        try {
          await queueClient.createIfNotExists();
        } catch (error) {
          // The deployment creates the queues (infra/app/storage.bicep); an operator who may only
          // send to a queue (its role scoped to that queue) may not create it (403).
          if (!this.#entra || !isStatus(error, 403)) throw error;
        }
        return queueClient;
      });
      this.#queues.set(name, client);
      client.catch(() => this.#queues.delete(name));
    }
    return client;
  }

  async send(queue: QueueName, message: unknown, options: { delayInMs?: number } = {}): Promise<void> {
    const delayInMs = options.delayInMs ?? 0;
    if (delayInMs < 0 || delayInMs > maxDelayInMs)
      throw new RangeError(`a queue message can be delayed 0 to 7 days, got ${delayInMs} ms`);
    const client = await this.client(queue);
    await client.sendMessage(Buffer.from(JSON.stringify(message), 'utf8').toString('base64'), {
      visibilityTimeout: Math.ceil(delayInMs / 1000),
      messageTimeToLive: -1,
    });
  }
}

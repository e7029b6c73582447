import { randomUUID } from 'node:crypto';
import functions, { type FunctionTrigger } from '@azure/functions';
import { QueueServiceClient, type DequeuedMessageItem, type QueueClient } from '@azure/storage-queue';
import type { TimerHandle } from '../../clock.js';
import { hostStorageConnection } from '../../config/index.js';
import type { FunctionDefinition } from '../../functions.js';
import { resolveSettingReferences } from './bindings.js';
import type { QueueSettings } from './host-json.js';
import { reasonCatalogue, type ReasonCodeOf } from '../../model/reasons.js';
import { errorText, invocationContext, parseJsonOrText, track, type HostRuntime } from './runtime.js';

const { trigger } = functions;

/*
 * Queue triggers with the WebJobs Storage Queues extension's semantics (5.x): base64 bodies,
 * batches of batchSize fetched again at newBatchThreshold, back-off to maxPollingInterval while
 * empty, a failed message made visible again after visibilityTimeout, and moved to
 * `<queue>-poison` at maxDequeueCount.
 */

/**
 * The real host fetches with a 10-minute lease and renews it while the function runs; with
 * functionTimeout at most 10 minutes on Consumption, this host takes the lease without renewing.
 */
const fetchLeaseSeconds = 600;
const poisonSuffix = '-poison';

export interface QueueWorker {
  readonly definition: Extract<FunctionDefinition, { kind: 'storageQueue' }>;
  readonly queueName: string;
  readonly client: QueueClient;
  /** Absent for poison queues: the real host gives a `-poison` queue no poison queue of its own. */
  readonly poison: QueueClient | undefined;
  readonly trigger: FunctionTrigger;
  readonly settings: QueueSettings;
  /** The shortest polling interval, where back-off starts after a poll that found messages. */
  readonly pollIntervalMs: number;
  inFlight: number;
  fetching: boolean;
  backoffMs: number;
  timer: TimerHandle | undefined;
}

/**
 * A queue service client per connection string: the app's `AzureWebJobsStorage` unless the
 * trigger names another app setting holding a connection string.
 */
export function queueServices(
  connectionString: string,
  appSettings: Readonly<Record<string, string>>,
): (definition: FunctionDefinition, connection: string | undefined) => QueueServiceClient {
  const services = new Map<string, QueueServiceClient>();
  return (definition, connection) => {
    let chosen = connectionString;
    if (connection && connection !== hostStorageConnection) {
      const named = appSettings[connection] ?? appSettings[`AzureWebJobs${connection}`];
      if (named === undefined)
        throw new Error(
          `function ${definition.name}: connection ${connection} is not an app setting with a connection string (identity-based connections are not supported by the local host)`,
        );
      chosen = named;
    }
    let client = services.get(chosen);
    if (!client) {
      client = QueueServiceClient.fromConnectionString(chosen);
      services.set(chosen, client);
    }
    return client;
  };
}

export interface QueueWorkerOptions {
  readonly appSettings: Readonly<Record<string, string>>;
  /** Lower case; queue names become `${prefix}-${queueName}` unless it is empty. */
  readonly prefix: string;
  readonly settings: QueueSettings;
  readonly pollIntervalMs: number;
  readonly service: ReturnType<typeof queueServices>;
}

/** A queue function's worker, its queue name resolved and checked (an error names the function). */
export function queueWorker(
  definition: Extract<FunctionDefinition, { kind: 'storageQueue' }>,
  options: QueueWorkerOptions,
): QueueWorker {
  const resolved = resolveSettingReferences(
    definition,
    'queueName',
    definition.options.queueName,
    options.appSettings,
  ).toLowerCase();
  const queueName = options.prefix === '' ? resolved : `${options.prefix}-${resolved}`;
  if (!isQueueName(queueName))
    throw new Error(`function ${definition.name}: "${queueName}" is not a valid queue name`);
  const queueService = options.service(definition, definition.options.connection);
  return {
    definition,
    queueName,
    client: queueService.getQueueClient(queueName),
    poison: queueName.endsWith(poisonSuffix)
      ? undefined
      : queueService.getQueueClient(`${queueName}${poisonSuffix}`),
    trigger: trigger.storageQueue({ queueName, connection: definition.options.connection }),
    settings: options.settings,
    pollIntervalMs: options.pollIntervalMs,
    inFlight: 0,
    fetching: false,
    backoffMs: options.pollIntervalMs,
    timer: undefined,
  };
}

/** Azure Storage's queue name rule: 3-63 of a-z, 0-9 and single hyphens, a letter or digit at each end. */
export function isQueueName(name: string): boolean {
  return /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(name);
}

/** As .NET's Convert.FromBase64String accepts it: whitespace ignored, padding required. */
export function isBase64(text: string): boolean {
  return /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text.replace(/\s+/g, ''));
}

/** Starts polling the queue. */
export function startQueue(runtime: HostRuntime, worker: QueueWorker): void {
  void track(runtime, poll(runtime, worker));
}

/** The messages in the queue, invisible ones included. */
export async function queuedMessageCount(worker: QueueWorker): Promise<number> {
  return (await worker.client.getProperties()).approximateMessagesCount ?? 0;
}

async function moveToPoison(
  runtime: HostRuntime,
  worker: QueueWorker,
  message: DequeuedMessageItem,
  fields: Record<string, unknown>,
  reasonCode: ReasonCodeOf<'local'>,
): Promise<void> {
  await worker.poison!.createIfNotExists();
  await worker.poison!.sendMessage(message.messageText);
  await worker.client.deleteMessage(message.messageId, message.popReceipt);
  runtime.logger.warn('MessageMovedToPoison', {
    ...fields,
    poisonQueue: worker.poison!.name,
    reasonCode,
    reasonDetail: reasonCatalogue[reasonCode].meaning,
    maxDequeueCount: worker.settings.maxDequeueCount,
  });
}

async function processMessage(
  runtime: HostRuntime,
  worker: QueueWorker,
  message: DequeuedMessageItem,
): Promise<void> {
  const { logger } = runtime;
  const { maxDequeueCount, visibilityTimeoutMs } = worker.settings;
  const invocationId = randomUUID();
  const fields = {
    functionName: worker.definition.name,
    invocationId,
    queue: worker.queueName,
    messageId: message.messageId,
    dequeueCount: message.dequeueCount,
  };
  try {
    // A message already past the count (its earlier runs died with the process) is moved without running it.
    if (worker.poison && message.dequeueCount > maxDequeueCount)
      return await moveToPoison(runtime, worker, message, fields, 'MaxDequeueCountExceeded');
    // The real host moves a message it cannot decode to the poison queue at once.
    if (!isBase64(message.messageText)) {
      if (worker.poison) await moveToPoison(runtime, worker, message, fields, 'NotBase64');
      else logger.error('MessageNotBase64', fields);
      return;
    }
    const text = Buffer.from(message.messageText, 'base64').toString('utf8');
    const triggerMetadata = {
      queueTrigger: text,
      id: message.messageId,
      dequeueCount: message.dequeueCount,
      insertionTime: message.insertedOn.toISOString(),
      expirationTime: message.expiresOn.toISOString(),
      nextVisibleTime: message.nextVisibleOn.toISOString(),
      popReceipt: message.popReceipt,
    };
    logger.info('InvocationStarted', fields);
    const startedMs = Date.now();
    try {
      await worker.definition.options.handler(
        parseJsonOrText(text),
        invocationContext(logger, worker.definition, invocationId, worker.trigger, triggerMetadata),
      );
    } catch (error) {
      logger.error('InvocationFailed', {
        ...fields,
        durationMs: Date.now() - startedMs,
        error: errorText(error),
      });
      if (!worker.poison) return; // as the real host does: left invisible for the rest of its lease, so a failing poison handler cannot spin
      if (message.dequeueCount >= maxDequeueCount)
        return await moveToPoison(runtime, worker, message, fields, 'MaxDequeueCountReached');
      await worker.client.updateMessage(
        message.messageId,
        message.popReceipt,
        undefined,
        Math.ceil(visibilityTimeoutMs / 1000),
      );
      return;
    }
    logger.info('InvocationSucceeded', { ...fields, durationMs: Date.now() - startedMs });
    await worker.client.deleteMessage(message.messageId, message.popReceipt);
  } catch (error) {
    logger.error('QueueMessageSettleFailed', { ...fields, error: errorText(error) });
  }
}

function schedulePoll(runtime: HostRuntime, worker: QueueWorker, delayMs: number): void {
  if (runtime.stopped || worker.timer !== undefined || worker.fetching) return;
  worker.timer = runtime.timers.setTimeout(() => {
    worker.timer = undefined;
    void track(runtime, poll(runtime, worker));
  }, delayMs);
}

// Only schedulePoll and startQueue call this, so no fetch is under way and in-flight is at or below the threshold.
async function poll(runtime: HostRuntime, worker: QueueWorker): Promise<void> {
  const { batchSize, newBatchThreshold, maxPollingIntervalMs } = worker.settings;
  worker.fetching = true;
  let messages: DequeuedMessageItem[];
  try {
    messages = (
      await worker.client.receiveMessages({
        numberOfMessages: batchSize,
        visibilityTimeout: fetchLeaseSeconds,
      })
    ).receivedMessageItems;
  } catch (error) {
    runtime.logger.error('QueuePollFailed', {
      functionName: worker.definition.name,
      queue: worker.queueName,
      error: errorText(error),
    });
    worker.fetching = false;
    worker.backoffMs = maxPollingIntervalMs;
    return schedulePoll(runtime, worker, worker.backoffMs);
  }
  worker.fetching = false;
  if (runtime.stopped) {
    // Fetched while stopping: hand the messages back rather than hold them for the whole lease.
    await Promise.allSettled(
      messages.map((message) =>
        worker.client.updateMessage(message.messageId, message.popReceipt, undefined, 0),
      ),
    );
    return;
  }
  for (const message of messages) {
    worker.inFlight += 1;
    void track(
      runtime,
      processMessage(runtime, worker, message).finally(() => {
        worker.inFlight -= 1;
        if (worker.inFlight <= newBatchThreshold) schedulePoll(runtime, worker, 0);
      }),
    );
  }
  if (messages.length > 0) {
    worker.backoffMs = worker.pollIntervalMs;
    if (worker.inFlight <= newBatchThreshold) schedulePoll(runtime, worker, 0);
  } else {
    schedulePoll(runtime, worker, worker.backoffMs);
    worker.backoffMs = Math.min(worker.backoffMs * 2, maxPollingIntervalMs);
  }
}

import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { format } from 'node:util';
import functions, {
  type Cookie,
  type FunctionTrigger,
  type HttpMethod,
  type InvocationContext as InvocationContextType,
  type LogLevel,
  type Timer,
} from '@azure/functions';

// @azure/functions is CommonJS whose exports Node cannot name statically: import the whole module.
const { HttpRequest, HttpResponse, InvocationContext, trigger } = functions;
import { QueueServiceClient, type DequeuedMessageItem, type QueueClient } from '@azure/storage-queue';
import type { FunctionDefinition } from '../functions.js';
import { type Now, systemNow, systemTimers, type TimerHandle, type Timers } from '../clock.js';
import { definedOnly } from '../defined.js';
import { jsonLogger, redactUrl, type Logger } from '../log.js';
import { nextOccurrence } from '../ncrontab.js';

/*
 * The Functions host's trigger semantics, run in-process (DESIGN §9). Where this file picks a
 * behaviour, it is the one of the real host (WebJobs Storage Queues extension 5.x, the v4 Node
 * programming model) unless a comment says otherwise.
 */

// ---------------------------------------------------------------------------------------------
// host.json

interface QueueSettings {
  readonly batchSize: number;
  readonly newBatchThreshold: number;
  readonly maxPollingIntervalMs: number;
  readonly visibilityTimeoutMs: number;
  readonly maxDequeueCount: number;
}

/** host.json durations are .NET TimeSpans: "[d.]hh:mm:ss[.fffffff]". */
function parseTimeSpan(value: unknown, name: string): number {
  const match =
    typeof value === 'string'
      ? /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$/.exec(value)
      : null;
  if (!match) throw new Error(`host.json ${name}: ${JSON.stringify(value)} is not a duration (hh:mm:ss)`);
  const [, days = '0', hours = '0', minutes = '0', seconds = '0', fraction = ''] = match;
  return (
    (((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000 +
    Number(`0.${fraction || '0'}`) * 1000
  );
}

async function readQueueSettings(path: string): Promise<QueueSettings> {
  const json = JSON.parse(await readFile(path, 'utf8')) as {
    extensions?: { queues?: Record<string, unknown>; http?: { routePrefix?: unknown } };
  };
  if ((json.extensions?.http?.routePrefix ?? 'api') !== 'api')
    throw new Error('host.json extensions.http.routePrefix: the local host serves functions under /api only');
  const queues = json.extensions?.queues ?? {};
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const value = queues[name] ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
      throw new Error(
        `host.json extensions.queues.${name}: ${JSON.stringify(value)} is not an integer in ${min}-${max}`,
      );
    return value;
  };
  const batchSize = integer('batchSize', 16, 1, 32);
  // emfleet's senders write base64 (lib/fleet/queues), so this host reads nothing else.
  if ((queues['messageEncoding'] ?? 'base64') !== 'base64')
    throw new Error('host.json extensions.queues.messageEncoding: the local host reads base64 messages only');
  const maxPollingIntervalMs = parseTimeSpan(
    queues['maxPollingInterval'] ?? '00:01:00',
    'extensions.queues.maxPollingInterval',
  );
  if (maxPollingIntervalMs < minPollingIntervalMs)
    throw new Error(
      `host.json extensions.queues.maxPollingInterval: below the host's minimum of ${minPollingIntervalMs} ms`,
    );
  return {
    batchSize,
    newBatchThreshold: integer('newBatchThreshold', Math.floor(batchSize / 2), 0, 1000),
    maxPollingIntervalMs,
    visibilityTimeoutMs: parseTimeSpan(
      queues['visibilityTimeout'] ?? '00:00:00',
      'extensions.queues.visibilityTimeout',
    ),
    maxDequeueCount: integer('maxDequeueCount', 5, 1, 1000),
  };
}

// ---------------------------------------------------------------------------------------------
// The host

export interface LocalHostOptions {
  readonly definitions: readonly FunctionDefinition[];
  /** Defaults to host.json in the working directory, where the Functions host reads it from. */
  readonly hostJsonPath?: string;
  /** App settings: `%NAME%` in schedules and queue names, and queue `connection` names. */
  readonly settings: Readonly<Record<string, string>>;
  /** The `AzureWebJobsStorage` connection, used by queue triggers that name no other. */
  readonly connectionString: string;
  /** Queue names become `${prefix}-${queueName}`, as StorageQueueSender writes them. */
  readonly queuePrefix?: string;
  /** 0 (the default) takes a free port. */
  readonly httpPort?: number;
  /** Defaults to a random key. */
  readonly functionKey?: string;
  readonly logger?: Logger;
  /** The clock timers are scheduled by. */
  readonly now?: Now;
  /** Every wait the host takes (polls, schedules, idle checks, the stop deadline) goes through these. */
  readonly timers?: Timers;
  /** The shortest queue polling interval, where back-off starts after a poll that found messages; idle() checks at it too. */
  readonly pollIntervalMs?: number;
  /** How long stop() waits for running invocations before it gives up on them. */
  readonly stopTimeoutMs?: number;
}

export interface LocalHost {
  /** The origin (`http://127.0.0.1:port`); functions are under `/api/`. */
  readonly httpUrl: string;
  readonly functionKey: string;
  /** Runs a timer function now; rejects with the handler's error. */
  runTimer(name: string): Promise<void>;
  /** Resolves once no invocation runs and every triggered queue is empty (invisible messages count). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** The real host's QueuePollingIntervals.Minimum. */
const minPollingIntervalMs = 100;
/**
 * The real host fetches with a 10-minute lease and renews it while the function runs; with
 * functionTimeout at most 10 minutes on Consumption, this host takes the lease without renewing.
 */
const fetchLeaseSeconds = 600;
const poisonSuffix = '-poison';
/** setTimeout's largest delay; longer waits are taken in steps. */
const maxTimerDelayMs = 2 ** 31 - 1;

interface QueueWorker {
  readonly definition: Extract<FunctionDefinition, { kind: 'storageQueue' }>;
  readonly queueName: string;
  readonly client: QueueClient;
  /** Absent for poison queues: the real host gives a `-poison` queue no poison queue of its own. */
  readonly poison: QueueClient | undefined;
  readonly trigger: FunctionTrigger;
  inFlight: number;
  fetching: boolean;
  backoffMs: number;
  timer: TimerHandle | undefined;
}

interface TimerWorker {
  readonly definition: Extract<FunctionDefinition, { kind: 'timer' }>;
  readonly schedule: string;
  readonly trigger: FunctionTrigger;
  last: Date | undefined;
  timer: TimerHandle | undefined;
}

interface Route {
  readonly definition: Extract<FunctionDefinition, { kind: 'http' }>;
  readonly template: string;
  readonly segments: readonly ({ literal: string } | { param: string; optional: boolean })[];
  readonly methods: readonly HttpMethod[];
  readonly authLevel: 'anonymous' | 'function' | 'admin';
  readonly trigger: FunctionTrigger;
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const logger = options.logger ?? jsonLogger();
  const now = options.now ?? systemNow;
  const timers = options.timers ?? systemTimers;
  const pollIntervalMs = options.pollIntervalMs ?? minPollingIntervalMs;
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  const functionKey = options.functionKey ?? randomBytes(32).toString('base64url');
  const queueSettings = await readQueueSettings(options.hostJsonPath ?? join(process.cwd(), 'host.json'));
  const prefix = (options.queuePrefix ?? '').toLowerCase();

  const resolve = (definition: FunctionDefinition, what: string, text: string): string =>
    text.replace(/%([^%]+)%/g, (_whole, name: string) => {
      const value = options.settings[name];
      if (value === undefined)
        throw new Error(
          `function ${definition.name}: ${what} "${text}" names app setting ${name}, which is not set`,
        );
      return value;
    });

  for (const definition of options.definitions) refuseUnboundOptions(definition);

  const services = new Map<string, QueueServiceClient>();
  const service = (definition: FunctionDefinition, connection: string | undefined): QueueServiceClient => {
    let connectionString = options.connectionString;
    if (connection && connection !== 'AzureWebJobsStorage') {
      const named = options.settings[connection] ?? options.settings[`AzureWebJobs${connection}`];
      if (named === undefined)
        throw new Error(
          `function ${definition.name}: connection ${connection} is not an app setting with a connection string (identity-based connections are not supported by the local host)`,
        );
      connectionString = named;
    }
    let client = services.get(connectionString);
    if (!client) {
      client = QueueServiceClient.fromConnectionString(connectionString);
      services.set(connectionString, client);
    }
    return client;
  };

  const timerWorkers: TimerWorker[] = [];
  const queues: QueueWorker[] = [];
  const routes: Route[] = [];
  for (const definition of options.definitions) {
    switch (definition.kind) {
      case 'timer': {
        const schedule = resolve(definition, 'schedule', definition.options.schedule);
        try {
          nextOccurrence(schedule, now());
        } catch (error) {
          throw new Error(
            `function ${definition.name}: schedule "${definition.options.schedule}": ${errorText(error)}`,
            { cause: error },
          );
        }
        timerWorkers.push({
          definition,
          schedule,
          trigger: trigger.timer({
            schedule,
            ...definedOnly({
              runOnStartup: definition.options.runOnStartup,
              useMonitor: definition.options.useMonitor,
            }),
          }),
          last: undefined,
          timer: undefined,
        });
        break;
      }
      case 'storageQueue': {
        const resolved = resolve(definition, 'queueName', definition.options.queueName).toLowerCase();
        const queueName = prefix === '' ? resolved : `${prefix}-${resolved}`;
        if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(queueName))
          throw new Error(`function ${definition.name}: "${queueName}" is not a valid queue name`);
        const queueService = service(definition, definition.options.connection);
        queues.push({
          definition,
          queueName,
          client: queueService.getQueueClient(queueName),
          poison: queueName.endsWith(poisonSuffix)
            ? undefined
            : queueService.getQueueClient(`${queueName}${poisonSuffix}`),
          trigger: trigger.storageQueue({ queueName, connection: definition.options.connection }),
          inFlight: 0,
          fetching: false,
          backoffMs: pollIntervalMs,
          timer: undefined,
        });
        break;
      }
      case 'http':
        routes.push(httpRoute(definition));
        break;
    }
  }
  await Promise.all(queues.map((worker) => worker.client.createIfNotExists()));

  let stopped = false;
  const running = new Set<Promise<unknown>>();
  let started = 0;
  const track = <T>(promise: Promise<T>): Promise<T> => {
    started += 1;
    running.add(promise);
    const forget = (): void => void running.delete(promise);
    promise.then(forget, forget);
    return promise;
  };

  const context = (
    definition: FunctionDefinition,
    invocationId: string,
    triggerOptions: FunctionTrigger,
    triggerMetadata?: Record<string, unknown>,
  ): InvocationContextType =>
    new InvocationContext({
      invocationId,
      functionName: definition.name,
      options: { trigger: triggerOptions },
      ...(triggerMetadata ? { triggerMetadata } : {}),
      logHandler: (level: LogLevel, ...args: unknown[]) =>
        forwardLog(logger, level, { functionName: definition.name, invocationId }, args),
    });

  // ---- timers

  const runTimerOnce = async (worker: TimerWorker): Promise<void> => {
    const invocationId = randomUUID();
    const fields = { functionName: worker.definition.name, invocationId, trigger: 'timer' };
    const at = now();
    // Never past due: without the real host's schedule monitor there is no missed occurrence to report.
    const timer: Timer = {
      isPastDue: false,
      schedule: { adjustForDST: false },
      scheduleStatus: {
        last: (worker.last ?? at).toISOString(),
        next: nextOccurrence(worker.schedule, at).toISOString(),
        lastUpdated: at.toISOString(),
      },
    };
    worker.last = at;
    logger.info('InvocationStarted', fields);
    const startedMs = Date.now();
    try {
      await worker.definition.options.handler(
        timer,
        context(worker.definition, invocationId, worker.trigger),
      );
    } catch (error) {
      logger.error('InvocationFailed', {
        ...fields,
        durationMs: Date.now() - startedMs,
        error: errorText(error),
      });
      throw error;
    }
    logger.info('InvocationSucceeded', { ...fields, durationMs: Date.now() - startedMs });
  };

  const waitFor = (worker: TimerWorker, due: Date): void => {
    worker.timer = timers.setTimeout(
      () => void fire(worker, due),
      Math.min(Math.max(due.getTime() - now().getTime(), 0), maxTimerDelayMs),
    );
  };
  const fire = async (worker: TimerWorker, due: Date): Promise<void> => {
    worker.timer = undefined;
    if (stopped) return;
    // setTimeout may wake a little early, and long waits come in steps.
    if (now().getTime() < due.getTime()) return waitFor(worker, due);
    // Like the real listener, the next occurrence is scheduled only after this one ends, so runs never overlap.
    await track(runTimerOnce(worker)).catch(() => undefined);
    if (!stopped)
      waitFor(worker, nextOccurrence(worker.schedule, new Date(Math.max(now().getTime(), due.getTime()))));
  };

  // ---- queues

  const moveToPoison = async (
    worker: QueueWorker,
    message: DequeuedMessageItem,
    fields: Record<string, unknown>,
    reason: string,
  ): Promise<void> => {
    await worker.poison!.createIfNotExists();
    await worker.poison!.sendMessage(message.messageText);
    await worker.client.deleteMessage(message.messageId, message.popReceipt);
    logger.warn('MessageMovedToPoison', {
      ...fields,
      poisonQueue: worker.poison!.name,
      reason,
      maxDequeueCount: queueSettings.maxDequeueCount,
    });
  };

  const processMessage = async (worker: QueueWorker, message: DequeuedMessageItem): Promise<void> => {
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
      if (worker.poison && message.dequeueCount > queueSettings.maxDequeueCount)
        return await moveToPoison(worker, message, fields, 'MaxDequeueCountExceeded');
      // The real host moves a message it cannot decode to the poison queue at once.
      if (!isBase64(message.messageText)) {
        if (worker.poison) await moveToPoison(worker, message, fields, 'NotBase64');
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
          context(worker.definition, invocationId, worker.trigger, triggerMetadata),
        );
      } catch (error) {
        logger.error('InvocationFailed', {
          ...fields,
          durationMs: Date.now() - startedMs,
          error: errorText(error),
        });
        if (!worker.poison) return; // as the real host does: left invisible for the rest of its lease, so a failing poison handler cannot spin
        if (message.dequeueCount >= queueSettings.maxDequeueCount)
          return await moveToPoison(worker, message, fields, 'MaxDequeueCountReached');
        await worker.client.updateMessage(
          message.messageId,
          message.popReceipt,
          undefined,
          Math.ceil(queueSettings.visibilityTimeoutMs / 1000),
        );
        return;
      }
      logger.info('InvocationSucceeded', { ...fields, durationMs: Date.now() - startedMs });
      await worker.client.deleteMessage(message.messageId, message.popReceipt);
    } catch (error) {
      logger.error('QueueMessageSettleFailed', { ...fields, error: errorText(error) });
    }
  };

  const schedulePoll = (worker: QueueWorker, delayMs: number): void => {
    if (stopped || worker.timer !== undefined || worker.fetching) return;
    worker.timer = timers.setTimeout(() => {
      worker.timer = undefined;
      void track(poll(worker));
    }, delayMs);
  };

  // Only schedulePoll and start() call this, so no fetch is under way and in-flight is at or below the threshold.
  const poll = async (worker: QueueWorker): Promise<void> => {
    worker.fetching = true;
    let messages: DequeuedMessageItem[];
    try {
      messages = (
        await worker.client.receiveMessages({
          numberOfMessages: queueSettings.batchSize,
          visibilityTimeout: fetchLeaseSeconds,
        })
      ).receivedMessageItems;
    } catch (error) {
      logger.error('QueuePollFailed', {
        functionName: worker.definition.name,
        queue: worker.queueName,
        error: errorText(error),
      });
      worker.fetching = false;
      worker.backoffMs = queueSettings.maxPollingIntervalMs;
      return schedulePoll(worker, worker.backoffMs);
    }
    worker.fetching = false;
    if (stopped) {
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
        processMessage(worker, message).finally(() => {
          worker.inFlight -= 1;
          if (worker.inFlight <= queueSettings.newBatchThreshold) schedulePoll(worker, 0);
        }),
      );
    }
    if (messages.length > 0) {
      worker.backoffMs = pollIntervalMs;
      if (worker.inFlight <= queueSettings.newBatchThreshold) schedulePoll(worker, 0);
    } else {
      schedulePoll(worker, worker.backoffMs);
      worker.backoffMs = Math.min(worker.backoffMs * 2, queueSettings.maxPollingIntervalMs);
    }
  };

  // ---- HTTP

  const handleHttp = async (incoming: http.IncomingMessage, outgoing: http.ServerResponse): Promise<void> => {
    const url = new URL(incoming.url ?? '/', origin);
    const method = (incoming.method ?? 'GET').toUpperCase();
    const match = matchRoute(routes, url.pathname, method);
    // A known route with another method is a 404 too: the real host matches routes with their methods.
    if (!match) return void outgoing.writeHead(404).end();
    const { route, params } = match;
    if (
      route.authLevel !== 'anonymous' &&
      !keyMatches(incoming.headers['x-functions-key'] ?? url.searchParams.get('code'), functionKey)
    )
      return void outgoing.writeHead(401).end();
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(incoming.headers))
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    // GET and HEAD carry no body in fetch's Request, which HttpRequest wraps.
    const request = new HttpRequest({
      method,
      url: url.href,
      headers,
      params,
      ...(body.length > 0 && method !== 'GET' && method !== 'HEAD' ? { body: { bytes: body } } : {}),
    });
    const invocationId = randomUUID();
    const fields = {
      functionName: route.definition.name,
      invocationId,
      trigger: 'http',
      method,
      path: url.pathname,
    };
    logger.info('InvocationStarted', fields);
    const startedMs = Date.now();
    let result: unknown;
    try {
      result = await route.definition.options.handler(
        request,
        context(route.definition, invocationId, route.trigger),
      );
      if (result !== undefined && result !== null && typeof result !== 'object')
        throw new TypeError('the HTTP response must be an HttpResponseInit or HttpResponse object');
    } catch (error) {
      logger.error('InvocationFailed', {
        ...fields,
        durationMs: Date.now() - startedMs,
        error: errorText(error),
      });
      return void outgoing.writeHead(500).end();
    }
    if (result === undefined || result === null) {
      logger.info('InvocationSucceeded', { ...fields, durationMs: Date.now() - startedMs, status: 204 });
      return void outgoing.writeHead(204).end();
    }
    const response = result instanceof HttpResponse ? result : new HttpResponse(result);
    const responseHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of response.headers) if (name !== 'set-cookie') responseHeaders[name] = value;
    const cookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
    if (cookies.length > 0) responseHeaders['set-cookie'] = cookies;
    const responseBody = Buffer.from(await response.arrayBuffer());
    logger.info('InvocationSucceeded', {
      ...fields,
      durationMs: Date.now() - startedMs,
      status: response.status,
    });
    outgoing.writeHead(response.status, responseHeaders).end(responseBody);
  };

  const server = http.createServer((incoming, outgoing) => {
    void track(
      handleHttp(incoming, outgoing).catch((error: unknown) => {
        logger.error('HttpRequestFailed', { path: redactUrl(incoming.url ?? ''), error: errorText(error) });
        if (!outgoing.headersSent) outgoing.writeHead(500);
        outgoing.end();
      }),
    );
  });
  server.listen(options.httpPort ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // ---- start

  for (const worker of timerWorkers) {
    waitFor(worker, nextOccurrence(worker.schedule, now()));
    if (worker.definition.options.runOnStartup) void track(runTimerOnce(worker)).catch(() => undefined);
  }
  for (const worker of queues) void track(poll(worker));
  logger.info('LocalHostStarted', {
    httpUrl: origin,
    timers: timerWorkers.map((worker) => ({ name: worker.definition.name, schedule: worker.schedule })),
    queues: queues.map((worker) => ({ name: worker.definition.name, queue: worker.queueName })),
    routes: routes.map((route) => ({
      name: route.definition.name,
      route: `/api/${route.template}`,
      methods: route.methods,
      authLevel: route.authLevel,
    })),
  });

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => timers.setTimeout(resolve, ms));
  let stopping: Promise<void> | undefined;

  return {
    httpUrl: origin,
    functionKey,
    runTimer: (name) => {
      const worker = timerWorkers.find((candidate) => candidate.definition.name === name);
      if (!worker) return Promise.reject(new Error(`no timer function named ${name}`));
      return track(runTimerOnce(worker));
    },
    idle: async () => {
      while (!stopped) {
        if (running.size === 0) {
          const startedBefore = started;
          const counts = await Promise.all(
            queues.map(async (worker) => (await worker.client.getProperties()).approximateMessagesCount ?? 0),
          );
          // Nothing may have started while the counts were being read.
          if (counts.every((count) => count === 0) && running.size === 0 && started === startedBefore) return;
        }
        await sleep(pollIntervalMs);
      }
    },
    stop: () => {
      stopping ??= (async () => {
        stopped = true;
        for (const worker of [...timerWorkers, ...queues]) timers.clearTimeout(worker.timer);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let giveUp: TimerHandle | undefined;
        const deadline = new Promise<'timeout'>(
          (resolve) => (giveUp = timers.setTimeout(() => resolve('timeout'), stopTimeoutMs)),
        );
        if ((await Promise.race([Promise.allSettled([...running]), deadline])) === 'timeout')
          logger.warn('LocalHostStopTimedOut', { stillRunning: running.size, stopTimeoutMs });
        timers.clearTimeout(giveUp);
        server.closeAllConnections();
        await closed;
        logger.info('LocalHostStopped', {});
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Options the local host would otherwise silently drop: it binds triggers only. */
function refuseUnboundOptions(definition: FunctionDefinition): void {
  const options = definition.options as {
    trigger?: unknown;
    return?: { type?: string };
    extraInputs?: unknown[];
    extraOutputs?: unknown[];
    retry?: unknown;
  };
  const unbound = [
    options.trigger !== undefined && 'trigger',
    options.return !== undefined &&
      !(definition.kind === 'http' && options.return.type === 'http') &&
      'return',
    (options.extraInputs?.length ?? 0) > 0 && 'extraInputs',
    (options.extraOutputs?.length ?? 0) > 0 && 'extraOutputs',
    options.retry !== undefined && 'retry',
  ].filter(Boolean);
  if (unbound.length > 0)
    throw new Error(
      `function ${definition.name}: the local host does not support ${unbound.join(', ')}; declare the trigger through its options and write outputs from the handler`,
    );
}

function httpRoute(definition: Extract<FunctionDefinition, { kind: 'http' }>): Route {
  // The library's own trigger builder supplies the defaults the real host gets (authLevel, methods).
  const effective = trigger.http(
    definedOnly({
      authLevel: definition.options.authLevel,
      methods: definition.options.methods,
      route: definition.options.route,
    }),
  );
  const template = (definition.options.route ?? definition.name).replace(/^\/+|\/+$/g, '');
  const segments =
    template === ''
      ? []
      : template.split('/').map((segment) => {
          const param = /^\{([A-Za-z_][A-Za-z0-9_]*)(\?)?\}$/.exec(segment);
          if (param) return { param: param[1]!, optional: param[2] === '?' };
          if (/[{}]/.test(segment))
            throw new Error(
              `function ${definition.name}: route segment "${segment}" uses a template feature the local host does not support (only {name} and {name?})`,
            );
          return { literal: segment };
        });
  const firstOptional = segments.findIndex((segment) => 'param' in segment && segment.optional);
  if (
    firstOptional >= 0 &&
    segments.slice(firstOptional).some((segment) => !('param' in segment && segment.optional))
  )
    throw new Error(`function ${definition.name}: optional route parameters must come last`);
  return {
    definition,
    template,
    segments,
    methods: effective.methods.map((method) => method.toUpperCase() as HttpMethod),
    authLevel: effective.authLevel,
    trigger: effective,
  };
}

/** Routes live under the host's default prefix, /api (emfleet sets no extensions.http.routePrefix). */
function matchRoute(
  routes: readonly Route[],
  pathname: string,
  method: string,
): { route: Route; params: Record<string, string> } | undefined {
  const [prefix, ...path] = pathname.split('/').filter((segment) => segment !== '');
  if (prefix?.toLowerCase() !== 'api') return undefined;
  let best: { route: Route; params: Record<string, string>; literals: number } | undefined;
  for (const route of routes) {
    if (!route.methods.includes(method as HttpMethod) || path.length > route.segments.length) continue;
    const params: Record<string, string> = {};
    let literals = 0;
    const matched = route.segments.every((segment, index) => {
      const actual = path[index];
      if ('literal' in segment) {
        literals += 1;
        return actual !== undefined && actual.toLowerCase() === segment.literal.toLowerCase();
      }
      if (actual === undefined) return segment.optional;
      try {
        params[segment.param] = decodeURIComponent(actual);
      } catch {
        return false;
      }
      return true;
    });
    // As in ASP.NET routing, literal segments take precedence over parameters (rollouts/plan before rollouts/{id}).
    if (matched && (!best || literals > best.literals)) best = { route, params, literals };
  }
  return best && { route: best.route, params: best.params };
}

function keyMatches(given: string | string[] | null | undefined, key: string): boolean {
  if (typeof given !== 'string') return false;
  const [a, b] = [Buffer.from(given), Buffer.from(key)];
  return a.length === b.length && timingSafeEqual(a, b);
}

/** As .NET's Convert.FromBase64String accepts it: whitespace ignored, padding required. */
function isBase64(text: string): boolean {
  return /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text.replace(/\s+/g, ''));
}

/** The Node worker hands a queue message over parsed when it is JSON, else as the string. */
function parseJsonOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.secure) parts.push('Secure');
  if (cookie.httpOnly) parts.push('HttpOnly');
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join('; ');
}

/**
 * Handlers log through context.log; emfleet's invocationLogger writes JSON entries with an
 * `event`, which are lifted into the host's log rather than nested as a string.
 */
function forwardLog(logger: Logger, level: LogLevel, fields: Record<string, unknown>, args: unknown[]): void {
  const method =
    level === 'error' || level === 'critical'
      ? 'error'
      : level === 'warning'
        ? 'warn'
        : level === 'information'
          ? 'info'
          : undefined;
  if (!method) return; // trace and debug sit below host.json's Information default
  const text = format(...args);
  const entry = parseJsonOrText(text);
  if (
    typeof entry === 'object' &&
    entry !== null &&
    typeof (entry as { event?: unknown }).event === 'string'
  ) {
    const { event, ...rest } = entry as { event: string };
    logger[method](event, { ...fields, ...rest });
  } else {
    logger[method]('FunctionLog', { ...fields, message: text });
  }
}

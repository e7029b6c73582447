import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { systemNow, systemTimers, type Now, type TimerHandle, type Timers } from '../../clock.js';
import type { FunctionDefinition } from '../../functions.js';
import { jsonLogger, type Logger } from '../../log.js';
import { refuseUnboundOptions } from './bindings.js';
import { minPollingIntervalMs, readHostJson } from './host-json.js';
import { httpRoute, listenHttp, type Route } from './http.js';
import { queuedMessageCount, queueServices, queueWorker, startQueue, type QueueWorker } from './queues.js';
import { hostRuntime, track } from './runtime.js';
import { runTimerOnce, startTimer, timerWorker, type TimerWorker } from './timers.js';

/*
 * The Functions host's trigger semantics, run in-process (DESIGN §9): this file composes them,
 * each job in its own module (host-json, timers, queues, http; runtime holds what they share).
 * Where a module picks a behaviour, it is the one of the real host (WebJobs Storage Queues
 * extension 5.x, the v4 Node programming model) unless a comment says otherwise.
 */

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

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const runtime = hostRuntime(
    options.logger ?? jsonLogger(),
    options.now ?? systemNow,
    options.timers ?? systemTimers,
  );
  const { logger, timers } = runtime;
  const pollIntervalMs = options.pollIntervalMs ?? minPollingIntervalMs;
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  const functionKey = options.functionKey ?? randomBytes(32).toString('base64url');
  const queueSettings = await readHostJson(options.hostJsonPath ?? join(process.cwd(), 'host.json'));

  for (const definition of options.definitions) refuseUnboundOptions(definition);
  const queueOptions = {
    appSettings: options.settings,
    prefix: (options.queuePrefix ?? '').toLowerCase(),
    settings: queueSettings,
    pollIntervalMs,
    service: queueServices(options.connectionString, options.settings),
  };
  const timerWorkers: TimerWorker[] = [];
  const queues: QueueWorker[] = [];
  const routes: Route[] = [];
  for (const definition of options.definitions) {
    switch (definition.kind) {
      case 'timer':
        timerWorkers.push(timerWorker(definition, options.settings, runtime.now));
        break;
      case 'storageQueue':
        queues.push(queueWorker(definition, queueOptions));
        break;
      case 'http':
        routes.push(httpRoute(definition));
        break;
    }
  }
  await Promise.all(queues.map((worker) => worker.client.createIfNotExists()));
  const { origin, server } = await listenHttp(runtime, routes, functionKey, options.httpPort ?? 0);

  for (const worker of timerWorkers) startTimer(runtime, worker);
  for (const worker of queues) startQueue(runtime, worker);
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
      return track(runtime, runTimerOnce(runtime, worker));
    },
    idle: async () => {
      while (!runtime.stopped) {
        if (runtime.running.size === 0) {
          const startedBefore = runtime.started;
          const counts = await Promise.all(queues.map(queuedMessageCount));
          // Nothing may have started while the counts were being read.
          if (
            counts.every((count) => count === 0) &&
            runtime.running.size === 0 &&
            runtime.started === startedBefore
          )
            return;
        }
        await sleep(pollIntervalMs);
      }
    },
    stop: () => {
      stopping ??= (async () => {
        runtime.stopped = true;
        for (const worker of [...timerWorkers, ...queues]) timers.clearTimeout(worker.timer);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let giveUp: TimerHandle | undefined;
        const deadline = new Promise<'timeout'>(
          (resolve) => (giveUp = timers.setTimeout(() => resolve('timeout'), stopTimeoutMs)),
        );
        if ((await Promise.race([Promise.allSettled([...runtime.running]), deadline])) === 'timeout')
          logger.warn('LocalHostStopTimedOut', { stillRunning: runtime.running.size, stopTimeoutMs });
        timers.clearTimeout(giveUp);
        server.closeAllConnections();
        await closed;
        logger.info('LocalHostStopped', {});
      })();
      return stopping;
    },
  };
}

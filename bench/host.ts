import { serveCommands, type Command } from './ipc.js';

/**
 * The local Functions host in a process of its own (so its memory is its own): every function of
 * the app, the repository's host.json, the settings from the environment the parent gave it.
 */
process.env['EMFLEET_LOCAL_HOST'] = '1';
const { allFunctions } = await import('../functions/index.js');
const { startLocalHost } = await import('../lib/local/host/index.js');
const { silentLogger } = await import('../lib/log.js');

type LocalHost = Awaited<ReturnType<typeof startLocalHost>>;
let host: LocalHost | undefined;
/** Warnings and errors by event (InvocationFailed, QueuePollFailed…): a rollout that needed retries says so. */
const problems: Record<string, number> = {};
const count = (event: string): void => void (problems[event] = (problems[event] ?? 0) + 1);
const logger = { ...silentLogger, warn: count, error: count };

serveCommands(async (command: Command) => {
  switch (command.kind) {
    case 'start': {
      const settings = Object.fromEntries(
        Object.entries(process.env).filter(
          ([name]) => name.startsWith('EMFLEET_') || name === 'AzureWebJobsStorage',
        ),
      ) as Record<string, string>;
      host = await startLocalHost({
        definitions: allFunctions,
        settings,
        connectionString: settings['AzureWebJobsStorage']!,
        // The deployment's queues carry its prefix, as StorageQueueSender names them.
        ...(settings['EMFLEET_QUEUE_PREFIX'] ? { queuePrefix: settings['EMFLEET_QUEUE_PREFIX'] } : {}),
        logger,
        ...(typeof command['hostJsonPath'] === 'string' ? { hostJsonPath: command['hostJsonPath'] } : {}),
      });
      return {};
    }
    case 'runTimer': {
      if (!host) throw new Error('host not started');
      const started = Date.now();
      await host.runTimer(String(command['name']));
      return { ms: Date.now() - started };
    }
    case 'liveHeap': {
      (globalThis as { gc?: () => void }).gc?.();
      return { liveHeapMiB: process.memoryUsage().heapUsed / 1048576 };
    }
    case 'problems':
      return { ...problems };
    case 'stop':
      await host?.stop();
      host = undefined;
      return {};
    default:
      throw new Error(`unknown command ${command.kind}`);
  }
});

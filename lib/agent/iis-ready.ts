import { systemTimers, type Timers } from '../clock.js';
import type { Logger } from '../log.js';

/**
 * What Exchange's web front ends run on: the World Wide Web Publishing Service and the Windows
 * Process Activation Service. The agent runs as a scheduled task at start-up, which cannot declare
 * a service dependency, so it waits for these itself before it repairs or applies anything.
 */
export const iisServices = ['W3SVC', 'WAS'] as const;

/** How often the start-up wait reads the services again. */
export const iisPollEveryInMs = 5_000;

export interface WaitForIisOptions {
  /** A service's status as the service controller names it (Applier.serviceStatus). */
  readonly readStatus: (service: string) => Promise<string>;
  readonly logger: Logger;
  readonly server: string;
  /** How long to wait at most; then the agent carries on (its scheduled restore retries cover the rest). */
  readonly boundInMs: number;
  readonly pollEveryInMs?: number;
  readonly timers?: Timers;
}

/**
 * Waits, bounded, until W3SVC and WAS are Running. Never throws: an agent that does not start
 * cannot be reached to fix anything. Returns whether IIS was ready.
 */
export async function waitForIis({
  readStatus,
  logger,
  server,
  boundInMs,
  pollEveryInMs = iisPollEveryInMs,
  timers = systemTimers,
}: WaitForIisOptions): Promise<boolean> {
  let waitedInMs = 0;
  for (;;) {
    const statuses = await readStatuses(readStatus);
    const notRunning = Object.entries(statuses).filter(([, status]) => status !== 'Running');
    if (notRunning.length === 0) {
      logger.info('IisReady', { server, services: statuses, waitedInMs });
      return true;
    }
    if (waitedInMs >= boundInMs) {
      logger.error('IisNotReady', {
        server,
        services: statuses,
        waitedInMs,
        remedy: 'the agent carries on; failed restores are retried on schedule. Start W3SVC and WAS',
      });
      return false;
    }
    if (waitedInMs === 0)
      logger.warn('WaitingForIis', { server, services: statuses, boundInMs, pollEveryInMs });
    const delayInMs = Math.min(pollEveryInMs, boundInMs - waitedInMs);
    await new Promise<void>((resolve) => timers.setTimeout(resolve, delayInMs));
    waitedInMs += delayInMs;
  }
}

/** Each service's status; one that cannot be read is reported by its error, as not running. */
async function readStatuses(
  readStatus: (service: string) => Promise<string>,
): Promise<Record<string, string>> {
  const entries = await Promise.all(
    iisServices.map(async (service) => {
      try {
        return [service, await readStatus(service)] as const;
      } catch (error) {
        return [service, `unreadable: ${(error as Error).message}`] as const;
      }
    }),
  );
  return Object.fromEntries(entries);
}

import { randomUUID } from 'node:crypto';
import functions, { type FunctionTrigger, type Timer } from '@azure/functions';
import type { Now, TimerHandle } from '../../clock.js';
import { definedOnly } from '../../defined.js';
import type { FunctionDefinition } from '../../functions.js';
import { nextOccurrence } from '../../ncrontab.js';
import { resolveSettingReferences } from './bindings.js';
import { errorText, invocationContext, track, type HostRuntime } from './runtime.js';

const { trigger } = functions;

/** Timer triggers on their NCRONTAB schedule, in UTC, one run at a time. */

/** setTimeout's largest delay; longer waits are taken in steps. */
const maxTimerDelayMs = 2 ** 31 - 1;

export interface TimerWorker {
  readonly definition: Extract<FunctionDefinition, { kind: 'timer' }>;
  /** With `%NAME%` resolved. */
  readonly schedule: string;
  readonly trigger: FunctionTrigger;
  /** When it last ran, for the Timer object's scheduleStatus. */
  last: Date | undefined;
  /** The wait for the next occurrence. */
  timer: TimerHandle | undefined;
}

/** A timer function's worker, its schedule resolved and checked (an error names the function). */
export function timerWorker(
  definition: Extract<FunctionDefinition, { kind: 'timer' }>,
  settings: Readonly<Record<string, string>>,
  now: Now,
): TimerWorker {
  const schedule = resolveSettingReferences(definition, 'schedule', definition.options.schedule, settings);
  try {
    nextOccurrence(schedule, now());
  } catch (error) {
    throw new Error(
      `function ${definition.name}: schedule "${definition.options.schedule}": ${errorText(error)}`,
      { cause: error },
    );
  }
  return {
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
  };
}

/** Runs the function once now; rejects with the handler's error (logged as InvocationFailed). */
export async function runTimerOnce(runtime: HostRuntime, worker: TimerWorker): Promise<void> {
  const { logger, now } = runtime;
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
      invocationContext(logger, worker.definition, invocationId, worker.trigger),
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
}

/** Schedules the next occurrence, and runs the function at once if it asks for runOnStartup. */
export function startTimer(runtime: HostRuntime, worker: TimerWorker): void {
  waitUntil(runtime, worker, nextOccurrence(worker.schedule, runtime.now()));
  if (worker.definition.options.runOnStartup)
    void track(runtime, runTimerOnce(runtime, worker)).catch(() => undefined);
}

function waitUntil(runtime: HostRuntime, worker: TimerWorker, due: Date): void {
  worker.timer = runtime.timers.setTimeout(
    () => void fire(runtime, worker, due),
    Math.min(Math.max(due.getTime() - runtime.now().getTime(), 0), maxTimerDelayMs),
  );
}

async function fire(runtime: HostRuntime, worker: TimerWorker, due: Date): Promise<void> {
  worker.timer = undefined;
  if (runtime.stopped) return;
  // setTimeout may wake a little early, and long waits come in steps.
  if (runtime.now().getTime() < due.getTime()) return waitUntil(runtime, worker, due);
  // Like the real listener, the next occurrence is scheduled only after this one ends, so runs never overlap.
  await track(runtime, runTimerOnce(runtime, worker)).catch(() => undefined);
  if (!runtime.stopped)
    waitUntil(
      runtime,
      worker,
      nextOccurrence(worker.schedule, new Date(Math.max(runtime.now().getTime(), due.getTime()))),
    );
}

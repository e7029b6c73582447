import { format } from 'node:util';
import functions, {
  type FunctionTrigger,
  type InvocationContext as InvocationContextType,
  type LogLevel,
} from '@azure/functions';
import type { Now, Timers } from '../../clock.js';
import type { FunctionDefinition } from '../../functions.js';
import type { Logger } from '../../log.js';

// @azure/functions is CommonJS whose exports Node cannot name statically: import the whole module.
const { InvocationContext } = functions;

/**
 * What the timers, queues and HTTP listener share: where they log, the clock, and the work under
 * way, which idle() and stop() wait for. One per host, passed to each function that needs it.
 */
export interface HostRuntime {
  readonly logger: Logger;
  readonly now: Now;
  /** Every wait the host takes goes through these. */
  readonly timers: Timers;
  /** Invocations and polls under way. */
  readonly running: Set<Promise<unknown>>;
  /** How many were ever tracked: idle() checks that nothing started while it read the queues. */
  started: number;
  /** Set by stop(): nothing new is scheduled after it. */
  stopped: boolean;
}

export function hostRuntime(logger: Logger, now: Now, timers: Timers): HostRuntime {
  return { logger, now, timers, running: new Set(), started: 0, stopped: false };
}

/** Counts `promise` as work under way until it settles. */
export function track<T>(runtime: HostRuntime, promise: Promise<T>): Promise<T> {
  runtime.started += 1;
  runtime.running.add(promise);
  const forget = (): void => void runtime.running.delete(promise);
  promise.then(forget, forget);
  return promise;
}

export const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** The InvocationContext a handler gets, its context.log forwarded to the host's logger. */
export function invocationContext(
  logger: Logger,
  definition: FunctionDefinition,
  invocationId: string,
  triggerOptions: FunctionTrigger,
  triggerMetadata?: Record<string, unknown>,
): InvocationContextType {
  return new InvocationContext({
    invocationId,
    functionName: definition.name,
    options: { trigger: triggerOptions },
    ...(triggerMetadata ? { triggerMetadata } : {}),
    logHandler: (level: LogLevel, ...args: unknown[]) =>
      forwardLog(logger, level, { functionName: definition.name, invocationId }, args),
  });
}

/** The Node worker hands a queue message over parsed when it is JSON, else as the string. */
export function parseJsonOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * Handlers log through context.log; emfleet's invocationLogger writes JSON entries with an
 * `event`, which are lifted into the host's log rather than nested as a string.
 */
export function forwardLog(
  logger: Logger,
  level: LogLevel,
  fields: Record<string, unknown>,
  args: unknown[],
): void {
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

import { readFile } from 'node:fs/promises';

/** host.json's `extensions.queues`, as the queue triggers run by them (defaults: the real host's). */
export interface QueueSettings {
  readonly batchSize: number;
  readonly newBatchThreshold: number;
  readonly maxPollingIntervalMs: number;
  readonly visibilityTimeoutMs: number;
  readonly maxDequeueCount: number;
}

/** The real host's QueuePollingIntervals.Minimum. */
export const minPollingIntervalMs = 100;

/** host.json durations are .NET TimeSpans: "[d.]hh:mm:ss[.fffffff]". */
export function parseTimeSpan(value: unknown, name: string): number {
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

/**
 * The queue settings of a parsed host.json, checked: a value the local host cannot honour (an
 * encoding other than base64, a route prefix other than /api, a batch the real host refuses) is an
 * error naming the key, never silently replaced.
 */
export function parseHostJson(json: unknown): QueueSettings {
  const file = json as {
    extensions?: { queues?: Record<string, unknown>; http?: { routePrefix?: unknown } };
  } | null;
  if ((file?.extensions?.http?.routePrefix ?? 'api') !== 'api')
    throw new Error('host.json extensions.http.routePrefix: the local host serves functions under /api only');
  const queues = file?.extensions?.queues ?? {};
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

export async function readHostJson(path: string): Promise<QueueSettings> {
  return parseHostJson(JSON.parse(await readFile(path, 'utf8')));
}

import { describe, expect, it } from 'vitest';
import { parseHostJson, parseTimeSpan } from '../../../lib/local/host/host-json.js';

/** host.json as the local host reads it: the real host's defaults, and a clear error for what it cannot honour. */

describe('parseTimeSpan', () => {
  it.each([
    { text: '00:00:00', ms: 0 },
    { text: '00:00:01', ms: 1_000 },
    { text: '00:01:00', ms: 60_000 },
    { text: '01:00:00', ms: 3_600_000 },
    { text: '1.02:03:04', ms: ((24 + 2) * 3600 + 3 * 60 + 4) * 1000 },
    { text: '00:00:00.200', ms: 200 },
    { text: '00:00:00.5', ms: 500 },
    { text: '00:00:01.0000001', ms: 1000.0001 },
    { text: '0:0:2', ms: 2_000 },
  ])('$text is $ms ms', ({ text, ms }) => {
    expect(parseTimeSpan(text, 'x')).toBeCloseTo(ms, 6);
  });

  it.each([
    { value: 2000 },
    { value: '2s' },
    { value: '00:00' },
    { value: '000:00:00' },
    { value: '00:00:00.12345678' },
    { value: null },
  ])('refuses $value', ({ value }) => {
    expect(() => parseTimeSpan(value, 'extensions.queues.visibilityTimeout')).toThrow(
      `host.json extensions.queues.visibilityTimeout: ${JSON.stringify(value)} is not a duration (hh:mm:ss)`,
    );
  });
});

describe('parseHostJson', () => {
  const defaults = {
    batchSize: 16,
    newBatchThreshold: 8,
    maxPollingIntervalMs: 60_000,
    visibilityTimeoutMs: 0,
    maxDequeueCount: 5,
  };

  it.each([
    { name: 'no extensions: the real host defaults', json: { version: '2.0' }, settings: defaults },
    { name: 'an empty file', json: {}, settings: defaults },
    {
      name: "the repository's values",
      json: {
        extensions: {
          queues: {
            batchSize: 32,
            newBatchThreshold: 16,
            maxDequeueCount: 5,
            visibilityTimeout: '00:00:30',
            maxPollingInterval: '00:00:02',
            messageEncoding: 'base64',
          },
          http: { routePrefix: 'api' },
        },
      },
      settings: {
        batchSize: 32,
        newBatchThreshold: 16,
        maxPollingIntervalMs: 2_000,
        visibilityTimeoutMs: 30_000,
        maxDequeueCount: 5,
      },
    },
    {
      name: 'newBatchThreshold defaults to half the batch, rounded down',
      json: { extensions: { queues: { batchSize: 5 } } },
      settings: { ...defaults, batchSize: 5, newBatchThreshold: 2 },
    },
    {
      name: 'newBatchThreshold 0 and the shortest polling interval',
      json: { extensions: { queues: { newBatchThreshold: 0, maxPollingInterval: '00:00:00.100' } } },
      settings: { ...defaults, newBatchThreshold: 0, maxPollingIntervalMs: 100 },
    },
  ])('$name', ({ json, settings }) => {
    expect(parseHostJson(json)).toEqual(settings);
  });

  it.each([
    {
      name: 'batch too large',
      queues: { batchSize: 64 },
      error: 'extensions.queues.batchSize: 64 is not an integer in 1-32',
    },
    {
      name: 'batch of 0',
      queues: { batchSize: 0 },
      error: 'extensions.queues.batchSize: 0 is not an integer in 1-32',
    },
    {
      name: 'fractional count',
      queues: { maxDequeueCount: 1.5 },
      error: 'maxDequeueCount: 1.5 is not an integer in 1-1000',
    },
    {
      name: 'count as text',
      queues: { maxDequeueCount: '5' },
      error: 'maxDequeueCount: "5" is not an integer in 1-1000',
    },
    {
      name: 'negative threshold',
      queues: { newBatchThreshold: -1 },
      error: 'newBatchThreshold: -1 is not an integer',
    },
    {
      name: 'interval in ms',
      queues: { maxPollingInterval: 2000 },
      error: 'maxPollingInterval: 2000 is not a duration',
    },
    {
      name: 'interval below the minimum',
      queues: { maxPollingInterval: '00:00:00.050' },
      error: "below the host's minimum of 100 ms",
    },
    {
      name: 'bad visibility',
      queues: { visibilityTimeout: '30s' },
      error: 'visibilityTimeout: "30s" is not a duration',
    },
    { name: 'plain messages', queues: { messageEncoding: 'none' }, error: 'reads base64 messages only' },
  ])('refuses $name', ({ queues, error }) => {
    expect(() => parseHostJson({ extensions: { queues } })).toThrow(error);
  });

  it('refuses a route prefix other than api', () => {
    expect(() => parseHostJson({ extensions: { http: { routePrefix: '' } } })).toThrow(
      'host.json extensions.http.routePrefix: the local host serves functions under /api only',
    );
  });
});

import { createHook } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HttpResponse,
  input,
  output,
  type HttpFunctionOptions,
  type HttpRequest,
  type InvocationContext,
  type Timer,
  type TimerFunctionOptions,
} from '@azure/functions';
import { QueueClient } from '@azure/storage-queue';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { FunctionDefinition } from '../../lib/functions.js';
import { startLocalHost, type LocalHost, type LocalHostOptions } from '../../lib/local/host.js';
import { azuriteConnectionString } from '../helpers/fleet.js';
import { recordingTimers } from '../helpers/clock.js';
import { waitFor } from '../helpers/wait.js';
import { gate, recordingLogger } from '../relay/fixture.js';

/** The local host against the run's Azurite, with test-only definitions and a fast host.json. */

let directory: string;
const hosts: LocalHost[] = [];

const fastQueues = {
  batchSize: 4,
  newBatchThreshold: 2,
  maxDequeueCount: 3,
  visibilityTimeout: '00:00:01',
  maxPollingInterval: '00:00:00.200',
};

async function hostJson(extensions: Record<string, unknown> = { queues: fastQueues }): Promise<string> {
  const path = join(directory, `host-${randomBytes(4).toString('hex')}.json`);
  await writeFile(path, JSON.stringify({ version: '2.0', extensions }));
  return path;
}

async function start(
  definitions: FunctionDefinition[],
  overrides: Partial<LocalHostOptions> & { extensions?: Record<string, unknown> } = {},
): Promise<{ host: LocalHost; prefix: string; logger: ReturnType<typeof recordingLogger> }> {
  const prefix = `h${randomBytes(5).toString('hex')}`;
  const logger = recordingLogger();
  const host = await startLocalHost({
    definitions,
    hostJsonPath: await hostJson(overrides.extensions),
    settings: {},
    connectionString: azuriteConnectionString(),
    queuePrefix: prefix,
    logger,
    pollIntervalMs: 50,
    ...overrides,
  });
  hosts.push(host);
  return { host, prefix, logger };
}

function rawQueue(name: string): QueueClient {
  return new QueueClient(azuriteConnectionString(), name);
}

/** As lib/fleet/queues sends: base64 of the UTF-8 JSON text. */
async function sendJson(name: string, value: unknown): Promise<void> {
  const queue = rawQueue(name);
  await queue.createIfNotExists();
  await queue.sendMessage(Buffer.from(JSON.stringify(value), 'utf8').toString('base64'));
}

async function messageCount(name: string): Promise<number> {
  const queue = rawQueue(name);
  return (await queue.exists()) ? ((await queue.getProperties()).approximateMessagesCount ?? 0) : 0;
}

/**
 * Azurite behind a loopback proxy that sees, may hold, and may refuse (with a status) each request for
 * messages, and sees every other request (`onRequest`).
 */
async function azuriteProxy(
  onReceive: (path: string) => void | number | Promise<void>,
  onRequest: (method: string, path: string) => void = () => undefined,
): Promise<{ connectionString: string; close(): void }> {
  const target = new URL(/QueueEndpoint=([^;]+)/.exec(azuriteConnectionString())![1]!);
  const proxy = http.createServer((incoming, outgoing) => {
    const path = incoming.url ?? '/';
    onRequest(incoming.method ?? 'GET', path);
    void (async () => {
      const refusal =
        incoming.method === 'GET' && /\/messages(\?|$)/.test(path) ? await onReceive(path) : undefined;
      if (refusal !== undefined) return void outgoing.writeHead(refusal).end();
      const forwarded = http.request(
        {
          host: target.hostname,
          port: target.port,
          path,
          method: incoming.method,
          headers: incoming.headers,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      incoming.pipe(forwarded);
    })();
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return {
    connectionString: azuriteConnectionString().replace(
      /QueueEndpoint=[^;]+/,
      `QueueEndpoint=http://127.0.0.1:${(proxy.address() as AddressInfo).port}${target.pathname}`,
    ),
    close: () => {
      proxy.closeAllConnections();
      proxy.close();
    },
  };
}

const queueFunction = (
  name: string,
  queueName: string,
  handler: (message: unknown, context: InvocationContext) => unknown,
): FunctionDefinition => ({
  kind: 'storageQueue',
  name,
  options: {
    queueName,
    connection: 'AzureWebJobsStorage',
    handler: async (message, context) => void (await handler(message, context)),
  },
});

const timerFunction = (
  name: string,
  schedule: string,
  handler: (timer: Timer, context: InvocationContext) => unknown,
  runOnStartup?: boolean,
): FunctionDefinition => ({
  kind: 'timer',
  name,
  options: {
    schedule,
    handler: async (timer, context) => void (await handler(timer, context)),
    ...(runOnStartup === undefined ? {} : { runOnStartup }),
  },
});

/** Once a year, so only runOnStartup and runTimer fire it during a test. */
const yearly = '0 0 0 1 1 *';

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'emfleet-host-'));
});

/** Before a proxy in front of Azurite closes too: a host polling a closed port waits out the storage client's retries. */
const stopHosts = async (): Promise<void> =>
  void (await Promise.all(hosts.splice(0).map((host) => host.stop())));

afterEach(stopHosts);

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('queue triggers', () => {
  it('hands over the parsed JSON with the trigger metadata, deletes the message, and logs the invocation', async () => {
    const seen: {
      message: unknown;
      metadata: Record<string, unknown> | undefined;
      invocationId: string;
      functionName: string;
    }[] = [];
    const { host, prefix, logger } = await start(
      [
        queueFunction(
          'work',
          '%WORK_QUEUE%',
          (message, context) =>
            void seen.push({
              message,
              metadata: context.triggerMetadata,
              invocationId: context.invocationId,
              functionName: context.functionName,
            }),
        ),
      ],
      { settings: { WORK_QUEUE: 'work-items' } },
    );
    const queue = `${prefix}-work-items`;
    await sendJson(queue, { server: 'ex01', wave: 2 });
    await rawQueue(queue).sendMessage(Buffer.from('plain text', 'utf8').toString('base64'));
    await host.idle();

    expect(seen.map((entry) => entry.message)).toEqual(
      expect.arrayContaining([{ server: 'ex01', wave: 2 }, 'plain text']),
    );
    const json = seen.find((entry) => typeof entry.message === 'object')!;
    expect(json.functionName).toBe('work');
    expect(json.metadata).toMatchObject({
      dequeueCount: 1,
      queueTrigger: '{"server":"ex01","wave":2}',
      id: expect.any(String),
      popReceipt: expect.any(String),
    });
    for (const key of ['insertionTime', 'expirationTime', 'nextVisibleTime'])
      expect(new Date(json.metadata![key] as string).getTime()).not.toBeNaN();
    expect(await messageCount(queue)).toBe(0);
    const started = logger
      .named('InvocationStarted')
      .find((entry) => entry.fields['invocationId'] === json.invocationId);
    expect(started?.fields).toMatchObject({
      functionName: 'work',
      messageId: json.metadata!['id'],
      dequeueCount: 1,
      queue,
    });
    expect(logger.named('InvocationSucceeded')).toHaveLength(2);
  });

  it('retries a failing message after visibilityTimeout and moves it to <queue>-poison, same body, at maxDequeueCount', async () => {
    const attempts: unknown[] = [];
    const releases: string[] = [];
    // The wait between attempts is Azurite's to keep: what the host owes is to release the message for visibilityTimeout (1 s).
    const proxy = await azuriteProxy(
      () => undefined,
      (method, path) =>
        void (
          method === 'PUT' &&
          path.includes('-flaky/messages/') &&
          releases.push(new URL(path, 'http://azurite').searchParams.get('visibilitytimeout') ?? 'none')
        ),
    );
    try {
      const { host, prefix, logger } = await start(
        [
          queueFunction('flaky', 'flaky', (_message, context) => {
            attempts.push(context.triggerMetadata?.['dequeueCount']);
            throw new Error('agent unreachable');
          }),
        ],
        { connectionString: proxy.connectionString },
      );
      const queue = `${prefix}-flaky`;
      await sendJson(queue, { operation: 'op-1' });
      const body = Buffer.from(JSON.stringify({ operation: 'op-1' }), 'utf8').toString('base64');
      await host.idle();

      expect(attempts).toEqual([1, 2, 3]);
      expect(releases).toEqual(['1', '1']);
      expect(await messageCount(queue)).toBe(0);
      const poisoned = (await rawQueue(`${queue}-poison`).receiveMessages({ numberOfMessages: 32 }))
        .receivedMessageItems;
      expect(poisoned.map((message) => message.messageText)).toEqual([body]);
      expect(logger.named('InvocationFailed').map((entry) => entry.fields)).toEqual(
        [1, 2, 3].map((dequeueCount) =>
          expect.objectContaining({
            functionName: 'flaky',
            dequeueCount,
            error: 'agent unreachable',
            messageId: expect.any(String),
            invocationId: expect.any(String),
          }),
        ),
      );
      expect(logger.named('MessageMovedToPoison')[0]?.fields).toMatchObject({
        poisonQueue: `${queue}-poison`,
        reason: 'MaxDequeueCountReached',
      });
    } finally {
      await stopHosts();
      proxy.close();
    }
  });

  it('moves a message that is not base64, or is already past maxDequeueCount, to poison without running the function', async () => {
    const prefix = `h${randomBytes(5).toString('hex')}`;
    const queue = rawQueue(`${prefix}-strict`);
    await queue.createIfNotExists();
    await queue.sendMessage(Buffer.from('"worn out"').toString('base64'));
    // Received four times (past maxDequeueCount 3) by a consumer that died each time.
    for (let receipt = 0; receipt < 4; receipt += 1) {
      const [message] = (await queue.receiveMessages()).receivedMessageItems;
      await queue.updateMessage(message!.messageId, message!.popReceipt, undefined, 0);
    }
    await queue.sendMessage('{"not":"base64"}');
    const calls: unknown[] = [];
    const { host, logger } = await start(
      [queueFunction('strict', 'strict', (message) => void calls.push(message))],
      { queuePrefix: prefix },
    );
    await host.idle();

    expect(calls).toEqual([]);
    const poisoned = (await rawQueue(`${prefix}-strict-poison`).receiveMessages({ numberOfMessages: 32 }))
      .receivedMessageItems;
    expect(poisoned.map((message) => message.messageText).sort()).toEqual(
      [Buffer.from('"worn out"').toString('base64'), '{"not":"base64"}'].sort(),
    );
    expect(
      logger
        .named('MessageMovedToPoison')
        .map((entry) => entry.fields['reason'])
        .sort(),
    ).toEqual(['MaxDequeueCountExceeded', 'NotBase64']);
  });

  it('gives a poison queue no poison queue: a failing or undecodable message is left invisible for the lease', async () => {
    const calls: number[] = [];
    const settled: string[] = [];
    // A release (PUT, with visibilityTimeout) or a delete would be seen here; a message left alone stays leased.
    const proxy = await azuriteProxy(
      () => undefined,
      (method, path) =>
        void (method !== 'GET' && path.includes('-apply-poison/messages/') && settled.push(method)),
    );
    const { prefix, logger } = await start(
      [
        {
          kind: 'storageQueue',
          name: 'onPoison',
          // A connection named by app setting, as a function on another storage account would have it.
          options: {
            queueName: 'apply-poison',
            connection: 'EmfleetQueues',
            handler: (_message, context) => {
              calls.push(context.triggerMetadata?.['dequeueCount'] as number);
              throw new Error('still failing');
            },
          },
        },
      ],
      {
        settings: { EmfleetQueues: proxy.connectionString },
        connectionString: 'UseDevelopmentStorage=false;not a connection string',
      },
    );
    try {
      await sendJson(`${prefix}-apply-poison`, { server: 'ex02' });
      await rawQueue(`${prefix}-apply-poison`).sendMessage('not base64!');
      await waitFor(
        'the failed invocation and the undecodable message to be logged',
        () => logger.named('InvocationFailed').length === 1 && logger.named('MessageNotBase64').length === 1,
      );
      expect(calls).toEqual([1]);
      expect(settled).toEqual([]);
      expect(await messageCount(`${prefix}-apply-poison`)).toBe(2);
      expect(
        (await rawQueue(`${prefix}-apply-poison`).peekMessages({ numberOfMessages: 32 })).peekedMessageItems,
      ).toEqual([]);
      expect(await rawQueue(`${prefix}-apply-poison-poison`).exists()).toBe(false);
    } finally {
      await stopHosts();
      proxy.close();
    }
  });

  it('runs at most batchSize at once when newBatchThreshold is 0, and batchSize + newBatchThreshold otherwise', async () => {
    /** `running`: how many invocations the host has started, and not yet seen ended, before each of the ten ends. */
    const measure = async (
      queues: Record<string, unknown>,
      running: readonly number[],
    ): Promise<{ max: number; done: number }> => {
      const held: (() => void)[] = [];
      let max = 0;
      let done = 0;
      const prefix = `h${randomBytes(5).toString('hex')}`;
      // Queued before the host starts; the test ends the invocations one at a time, each once the host has started what it may.
      for (let index = 0; index < 10; index += 1) await sendJson(`${prefix}-busy`, { index });
      const { host } = await start(
        [
          queueFunction('busy', 'busy', async () => {
            const release = gate();
            held.push(release.open);
            max = Math.max(max, held.length);
            await release.opened;
            done += 1;
          }),
        ],
        { extensions: { queues }, queuePrefix: prefix },
      );
      for (const [ended, count] of running.entries()) {
        await waitFor(`${count} invocations running after ${ended} ended`, () => held.length === count);
        held.shift()!();
      }
      await host.idle();
      return { max, done };
    };
    // A new batch only once all three have ended.
    expect(
      await measure({ ...fastQueues, batchSize: 3, newBatchThreshold: 0 }, [3, 2, 1, 3, 2, 1, 3, 2, 1, 1]),
    ).toEqual({ max: 3, done: 10 });
    // A new batch of two as soon as one is left running.
    expect(
      await measure({ ...fastQueues, batchSize: 2, newBatchThreshold: 1 }, [2, 3, 2, 3, 2, 3, 2, 3, 2, 1]),
    ).toEqual({ max: 3, done: 10 });
  });

  it('backs off to maxPollingInterval while the queue is empty and polls fast again after a message', async () => {
    // The waits the host asks for, in order, not how long they took: the same on an idle machine and a busy one.
    const timers = recordingTimers();
    const handled: unknown[] = [];
    const { prefix } = await start(
      [queueFunction('watched', 'watched', (message) => void handled.push(message))],
      {
        timers,
        pollIntervalMs: 50,
        extensions: { queues: { ...fastQueues, maxPollingInterval: '00:00:00.400' } },
      },
    );
    await waitFor('six empty polls', () => timers.delays.length >= 6);
    await sendJson(`${prefix}-watched`, { wake: true });
    await waitFor('the message to be handled', () => handled.length === 1);
    await waitFor('an empty poll after the message', () => timers.delays.lastIndexOf(50) > 0);

    const wake = timers.delays.indexOf(0);
    // Doubling from pollIntervalMs, then held at maxPollingInterval.
    expect(timers.delays.slice(0, wake)).toEqual([50, 100, 200, ...Array<number>(wake - 3).fill(400)]);
    // A poll that found a message polls again at once, then backs off from pollIntervalMs again.
    expect(timers.delays.slice(wake, wake + 2)).toEqual([0, 50]);
  });

  it('logs a failed poll and tries again at maxPollingInterval', async () => {
    let refusals = 2;
    let polls = 0;
    const timers = recordingTimers();
    const proxy = await azuriteProxy((path) => {
      if (!path.includes('-refused/messages')) return undefined;
      polls += 1;
      return refusals-- > 0 ? 403 : undefined;
    });
    try {
      const handled: unknown[] = [];
      const { prefix, logger } = await start(
        [queueFunction('refused', 'refused', (message) => void handled.push(message))],
        {
          connectionString: proxy.connectionString,
          timers,
          extensions: { queues: { ...fastQueues, maxPollingInterval: '00:00:00.300' } },
        },
      );
      await sendJson(`${prefix}-refused`, { after: 'refusals' });
      await waitFor('the message after two refused polls', () => handled.length === 1);
      expect(logger.named('QueuePollFailed')).toHaveLength(2);
      expect(logger.named('QueuePollFailed')[0]?.fields).toMatchObject({
        functionName: 'refused',
        queue: `${prefix}-refused`,
      });
      expect(polls).toBeGreaterThanOrEqual(3);
      expect(timers.delays.slice(0, 2)).toEqual([300, 300]);
    } finally {
      await stopHosts();
      proxy.close();
    }
  });

  it('idle() waits for follow-up messages that handlers enqueue, and for the invocations they start', async () => {
    const finished: string[] = [];
    let prefix = '';
    const started = await start([
      queueFunction('first', 'first', async (message) => {
        await sendJson(`${prefix}-second`, { from: message });
        finished.push('first');
      }),
      queueFunction('second', 'second', async () => {
        // Still running when the first function's invocations have ended.
        await rawQueue(`${prefix}-second`).getProperties();
        finished.push('second');
      }),
    ]);
    prefix = started.prefix;
    await sendJson(`${prefix}-first`, 1);
    await sendJson(`${prefix}-first`, 2);
    await started.host.idle();
    expect(finished.sort()).toEqual(['first', 'first', 'second', 'second']);
  });

  it('lifts JSON log entries written through context.log into the host log', async () => {
    const { host, prefix, logger } = await start([
      queueFunction('chatty', 'chatty', (_message, context) => {
        context.log(JSON.stringify({ event: 'WaveStarted', wave: 1 }));
        context.warn('plain', 'words');
        context.debug('below the default level');
      }),
    ]);
    await sendJson(`${prefix}-chatty`, {});
    await host.idle();
    expect(logger.named('WaveStarted')[0]).toMatchObject({
      level: 'info',
      fields: { wave: 1, functionName: 'chatty', invocationId: expect.any(String) },
    });
    expect(logger.named('FunctionLog').map((entry) => [entry.level, entry.fields['message']])).toEqual([
      ['warn', 'plain words'],
    ]);
  });
});

describe('timer triggers', () => {
  it('fires a %SETTING% schedule of every second in UTC, with the Timer object', async () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'Date'],
      now: new Date('2025-06-01T10:00:00.250Z'),
    });
    try {
      const timers: Timer[] = [];
      await start([timerFunction('tick', '%TICK_SCHEDULE%', (timer) => void timers.push(timer))], {
        settings: { TICK_SCHEDULE: '*/1 * * * * *' },
      });
      await vi.advanceTimersByTimeAsync(2_500);
      // Exactly the two occurrences in 2.5 s of the pinned clock, on the second.
      expect(timers.map((timer) => timer.scheduleStatus)).toEqual([
        {
          last: '2025-06-01T10:00:01.000Z',
          next: '2025-06-01T10:00:02.000Z',
          lastUpdated: '2025-06-01T10:00:01.000Z',
        },
        {
          last: '2025-06-01T10:00:01.000Z',
          next: '2025-06-01T10:00:03.000Z',
          lastUpdated: '2025-06-01T10:00:02.000Z',
        },
      ]);
      expect(timers[0]).toMatchObject({ isPastDue: false, schedule: { adjustForDST: false } });
      await stopHosts();
    } finally {
      vi.useRealTimers();
    }
  });

  it('honours runOnStartup and runs a timer at once with runTimer, which rejects with the handler error', async () => {
    const calls: string[] = [];
    let manual: Timer | undefined;
    const { host, logger } = await start(
      [
        timerFunction('startup', yearly, () => void calls.push('startup'), true),
        timerFunction('manual', yearly, (timer) => {
          calls.push('manual');
          manual = timer;
        }),
        timerFunction('broken', yearly, () => {
          throw new Error('feed down');
        }),
      ],
      { now: () => new Date('2025-06-01T10:00:00Z') },
    );
    await waitFor('the runOnStartup invocation', () => calls.includes('startup'));
    await host.runTimer('manual');
    expect(calls).toEqual(['startup', 'manual']);
    expect(manual?.scheduleStatus).toEqual({
      last: '2025-06-01T10:00:00.000Z',
      next: '2026-01-01T00:00:00.000Z',
      lastUpdated: '2025-06-01T10:00:00.000Z',
    });
    await expect(host.runTimer('broken')).rejects.toThrow('feed down');
    expect(logger.named('InvocationFailed')[0]?.fields).toMatchObject({
      functionName: 'broken',
      trigger: 'timer',
      error: 'feed down',
    });
    await expect(host.runTimer('nothing')).rejects.toThrow('no timer function named nothing');
  });

  it('refuses a bad schedule or an unset setting, naming the function and the expression', async () => {
    await expect(start([timerFunction('badCron', '0 0 * * *', () => undefined)])).rejects.toThrow(
      /function badCron: schedule "0 0 \* \* \*".*expected 6 fields/,
    );
    await expect(start([timerFunction('badStep', '*/0 * * * * *', () => undefined)])).rejects.toThrow(
      /function badStep: schedule "\*\/0 \* \* \* \* \*"/,
    );
    await expect(start([timerFunction('noSetting', '%MISSING_SCHEDULE%', () => undefined)])).rejects.toThrow(
      'function noSetting: schedule "%MISSING_SCHEDULE%" names app setting MISSING_SCHEDULE, which is not set',
    );
  });
});

describe('HTTP triggers', () => {
  /** Handlers may return what the type forbids (nothing), to see what the host makes of it. */
  const httpFunction = (
    name: string,
    options: Omit<HttpFunctionOptions, 'handler'> & {
      handler: (request: HttpRequest, context: InvocationContext) => unknown;
    },
  ): FunctionDefinition => ({ kind: 'http', name, options: options as HttpFunctionOptions });

  const definitions: FunctionDefinition[] = [
    httpFunction('status', {
      authLevel: 'function',
      methods: ['GET'],
      handler: () => ({
        jsonBody: { ok: true },
        headers: { 'x-emfleet': 'yes' },
        cookies: [{ name: 'seen', value: '1', httpOnly: true }],
      }),
    }),
    httpFunction('rolloutAction', {
      authLevel: 'function',
      methods: ['POST'],
      route: 'rollouts/{id}/{action}',
      handler: async (request) => ({
        jsonBody: { params: request.params, body: await request.json(), query: request.query.get('dry') },
      }),
    }),
    httpFunction('rolloutPlan', {
      authLevel: 'function',
      methods: ['POST'],
      route: 'rollouts/plan/{action}',
      handler: () => ({ body: 'literal first' }),
    }),
    httpFunction('rollout', {
      authLevel: 'anonymous',
      methods: ['GET'],
      route: 'rollouts/{id}/{view?}',
      handler: (request) => new HttpResponse({ status: 202, jsonBody: request.params }),
    }),
    httpFunction('defaults', { handler: () => ({ body: 'library defaults' }) }),
    httpFunction('admin', { authLevel: 'admin', handler: () => ({ body: 'admin' }) }),
    httpFunction('nothing', { authLevel: 'anonymous', handler: () => undefined }),
    httpFunction('throws', { authLevel: 'anonymous', handler: () => Promise.reject(new Error('boom')) }),
    httpFunction('text', { authLevel: 'anonymous', handler: () => 'not a response' }),
  ];

  it('requires the function key in x-functions-key or ?code= for authLevel function', async () => {
    const { host } = await start(definitions, { functionKey: 'test-key' });
    expect(host.functionKey).toBe('test-key');
    expect((await fetch(`${host.httpUrl}/api/status`)).status).toBe(401);
    expect(
      (await fetch(`${host.httpUrl}/api/status`, { headers: { 'x-functions-key': 'wrong-key' } })).status,
    ).toBe(401);
    expect(
      (await fetch(`${host.httpUrl}/api/status`, { headers: { 'x-functions-key': 'test-key' } })).status,
    ).toBe(200);
    expect((await fetch(`${host.httpUrl}/api/status?code=test-key`)).status).toBe(200);
    // One key locally: it stands for the master key that authLevel admin asks for.
    expect((await fetch(`${host.httpUrl}/api/admin`)).status).toBe(401);
    expect((await fetch(`${host.httpUrl}/api/admin?code=test-key`)).status).toBe(200);
    // The v4 library registers an HTTP trigger without authLevel as anonymous, with GET and POST.
    expect((await fetch(`${host.httpUrl}/api/defaults`)).status).toBe(200);
    expect((await fetch(`${host.httpUrl}/api/defaults`, { method: 'POST' })).status).toBe(200);
    expect((await fetch(`${host.httpUrl}/api/defaults`, { method: 'PUT' })).status).toBe(404);
  });

  it('returns jsonBody with its content type, headers and cookies', async () => {
    const { host, logger } = await start(definitions);
    const response = await fetch(`${host.httpUrl}/api/status`, {
      headers: { 'x-functions-key': host.functionKey },
    });
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-emfleet')).toBe('yes');
    expect(response.headers.getSetCookie()).toEqual(['seen=1; HttpOnly']);
    expect(await response.json()).toEqual({ ok: true });
    expect(logger.named('InvocationSucceeded')[0]?.fields).toMatchObject({
      functionName: 'status',
      trigger: 'http',
      status: 200,
      invocationId: expect.any(String),
    });
  });

  it('routes {param} segments, literal segments first, with optional trailing parameters', async () => {
    const { host } = await start(definitions);
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(`${host.httpUrl}${path}`, {
        method: 'POST',
        headers: { 'x-functions-key': host.functionKey, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const action = await post('/api/rollouts/r%2042/pause?dry=1', { reason: 'bake' });
    expect(await action.json()).toEqual({
      params: { id: 'r 42', action: 'pause' },
      body: { reason: 'bake' },
      query: '1',
    });
    expect(await (await post('/api/Rollouts/PLAN/pause', {})).text()).toBe('literal first');
    const shown = await fetch(`${host.httpUrl}/api/rollouts/r1`);
    expect(shown.status).toBe(202);
    expect(await shown.json()).toEqual({ id: 'r1' });
    expect(await (await fetch(`${host.httpUrl}/api/rollouts/r1/waves`)).json()).toEqual({
      id: 'r1',
      view: 'waves',
    });
  });

  it('answers 404 for unknown routes and for methods a route does not take (as the real host does), 500 when the handler throws, 204 when it returns nothing', async () => {
    const { host, logger } = await start(definitions);
    const key = { 'x-functions-key': host.functionKey };
    expect((await fetch(`${host.httpUrl}/api/missing`, { headers: key })).status).toBe(404);
    expect((await fetch(`${host.httpUrl}/status`, { headers: key })).status).toBe(404);
    expect((await fetch(`${host.httpUrl}/api/status`, { method: 'POST', headers: key })).status).toBe(404);
    expect(
      (await fetch(`${host.httpUrl}/api/rollouts/r1/pause`, { method: 'DELETE', headers: key })).status,
    ).toBe(404);
    expect((await fetch(`${host.httpUrl}/api/throws`)).status).toBe(500);
    expect(logger.named('InvocationFailed')[0]?.fields).toMatchObject({
      functionName: 'throws',
      error: 'boom',
    });
    expect((await fetch(`${host.httpUrl}/api/text`)).status).toBe(500);
    expect(logger.named('InvocationFailed')[1]?.fields['error']).toMatch(
      /must be an HttpResponseInit or HttpResponse/,
    );
    expect((await fetch(`${host.httpUrl}/api/nothing`)).status).toBe(204);
  });

  it('refuses route templates and bindings it cannot honour', async () => {
    await expect(
      start([httpFunction('catchAll', { route: 'files/{*path}', handler: () => undefined })]),
    ).rejects.toThrow(/function catchAll: route segment "\{\*path\}"/);
    await expect(
      start([httpFunction('constrained', { route: 'items/{id:int}', handler: () => undefined })]),
    ).rejects.toThrow(/function constrained/);
    await expect(
      start([httpFunction('optionalFirst', { route: 'items/{id?}/history', handler: () => undefined })]),
    ).rejects.toThrow('function optionalFirst: optional route parameters must come last');
    await expect(
      start([
        httpFunction('withOutput', {
          extraOutputs: [{ type: 'queue', name: 'out', queueName: 'x', connection: 'AzureWebJobsStorage' }],
          handler: () => undefined,
        }),
      ]),
    ).rejects.toThrow(/function withOutput: .*extraOutputs/);
    const everything: TimerFunctionOptions = {
      schedule: yearly,
      handler: () => undefined,
      trigger: { type: 'timerTrigger', name: 'timer', schedule: yearly },
      return: output.storageQueue({ queueName: 'x', connection: 'AzureWebJobsStorage' }),
      extraInputs: [input.storageBlob({ path: 'c/b', connection: 'AzureWebJobsStorage' })],
      retry: { strategy: 'fixedDelay', maxRetryCount: 2, delayInterval: 1000 },
    };
    await expect(start([{ kind: 'timer', name: 'overDeclared', options: everything }])).rejects.toThrow(
      'function overDeclared: the local host does not support trigger, return, extraInputs, retry',
    );
    // app.http adds an HTTP return binding itself; declaring it is harmless.
    await start([httpFunction('httpReturn', { return: output.http({}), handler: () => undefined })]);
    await expect(
      start([
        {
          kind: 'storageQueue',
          name: 'elsewhere',
          options: { queueName: 'q', connection: 'OtherStorage', handler: () => undefined },
        },
      ]),
    ).rejects.toThrow(/function elsewhere: connection OtherStorage/);
  });
});

describe('configuration', () => {
  it('refuses host.json values and queue names it cannot honour', async () => {
    const noop = queueFunction('noop', 'noop', () => undefined);
    await expect(start([noop], { extensions: { queues: { batchSize: 64 } } })).rejects.toThrow(
      'host.json extensions.queues.batchSize: 64 is not an integer in 1-32',
    );
    await expect(start([noop], { extensions: { queues: { maxPollingInterval: 2000 } } })).rejects.toThrow(
      'host.json extensions.queues.maxPollingInterval: 2000 is not a duration',
    );
    await expect(
      start([noop], { extensions: { queues: { maxPollingInterval: '00:00:00.050' } } }),
    ).rejects.toThrow("below the host's minimum of 100 ms");
    await expect(start([noop], { extensions: { queues: { messageEncoding: 'none' } } })).rejects.toThrow(
      'base64 messages only',
    );
    await expect(start([noop], { extensions: { http: { routePrefix: '' } } })).rejects.toThrow(
      'under /api only',
    );
    await expect(start([queueFunction('shouting', 'Bad--Name', () => undefined)])).rejects.toThrow(
      /function shouting: ".*-bad--name" is not a valid queue name/,
    );
  });
});

describe('stop()', () => {
  it('waits for running invocations, then leaves no timers, sockets or servers behind', async () => {
    // Which timers and servers the host makes, tracked from their creation, since vitest's own
    // timers come and go in process.getActiveResourcesInfo().
    const tracked = new Map<number, { type: string; resource: { hasRef?: () => boolean } }>();
    const hook = createHook({
      init: (id, type, _trigger, resource: { hasRef?: () => boolean }) =>
        void (['Timeout', 'TCPSERVERWRAP'].includes(type) && tracked.set(id, { type, resource })),
      destroy: (id) => void tracked.delete(id),
    }).enable();
    // Unref'd ones (undici's clock, for one) cannot keep the process alive.
    const live = (): string[] =>
      [...tracked.values()].filter(({ resource }) => resource.hasRef?.() !== false).map(({ type }) => type);
    const sockets = (): number =>
      process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;
    const socketsBefore = sockets();
    const held = gate();
    const release = gate();
    let finished = false;
    try {
      const { host, prefix } = await start([
        queueFunction('slow', 'slow', async () => {
          held.open();
          await release.opened;
          finished = true;
        }),
        // A far-off occurrence: its timeout stays pending unless stop() clears it.
        timerFunction('yearly', yearly, () => undefined),
      ]);
      await fetch(`${host.httpUrl}/api/anything`);
      await sendJson(`${prefix}-slow`, {});
      await held.opened;
      expect(live()).toEqual(expect.arrayContaining(['Timeout', 'TCPSERVERWRAP']));
      expect(sockets()).toBeGreaterThan(socketsBefore);
      const stopping = host.stop();
      await new Promise((resolve) => setImmediate(resolve));
      expect(finished).toBe(false);
      release.open();
      await stopping;
      expect(finished).toBe(true);
      // Destroy hooks are delivered on a later turn of the loop.
      for (let turn = 0; turn < 3; turn += 1) await new Promise((resolve) => setImmediate(resolve));
      expect(live()).toEqual([]);
      expect(sockets()).toBeLessThanOrEqual(socketsBefore);
    } finally {
      hook.disable();
    }
  });

  it('hands back messages whose fetch ends after stop(), unprocessed and visible', async () => {
    const asked = gate();
    const answer = gate();
    const calls: unknown[] = [];
    const proxy = await azuriteProxy(async (path) => {
      if (!path.includes('-late/messages')) return;
      asked.open();
      await answer.opened;
    });
    try {
      const { host, prefix } = await start(
        [queueFunction('late', 'late', (message) => void calls.push(message))],
        { connectionString: proxy.connectionString },
      );
      await sendJson(`${prefix}-late`, { late: true });
      await asked.opened;
      const stopped = host.stop();
      answer.open();
      await stopped;
      expect(calls).toEqual([]);
      const [message] = (await rawQueue(`${prefix}-late`).receiveMessages()).receivedMessageItems;
      expect(message?.dequeueCount).toBe(2);
    } finally {
      await stopHosts();
      proxy.close();
    }
  });

  it('gives up on an invocation that outlives stopTimeoutMs', async () => {
    const held = gate();
    const release = gate();
    const { host, prefix, logger } = await start(
      [
        queueFunction('stuck', 'stuck', async () => {
          held.open();
          await release.opened;
        }),
      ],
      { stopTimeoutMs: 200 },
    );
    await sendJson(`${prefix}-stuck`, {});
    await held.opened;
    // Resolves although the invocation is still held: stop() gave up on it.
    await host.stop();
    expect(logger.named('LocalHostStopTimedOut')[0]?.fields).toMatchObject({
      stillRunning: 1,
      stopTimeoutMs: 200,
    });
    release.open();
  });
});

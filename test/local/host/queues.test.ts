import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isBase64, isQueueName } from '../../../lib/local/host/queues.js';
import { recordingTimers } from '../../helpers/clock.js';
import { waitFor } from '../../helpers/wait.js';
import { gate } from '../../relay/fixture.js';
import {
  azuriteProxy,
  fastQueues,
  messageCount,
  queueFunction,
  rawQueue,
  sendJson,
  start,
  stopHosts,
  useLocalHosts,
} from './fixture.js';

/** Queue triggers against the run's Azurite, with test-only definitions and a fast host.json. */

useLocalHosts();

describe('isBase64', () => {
  it.each([
    {
      name: 'JSON as lib/fleet/queues sends it',
      text: Buffer.from('{"a":1}').toString('base64'),
      base64: true,
    },
    { name: 'empty', text: '', base64: true },
    { name: 'one pad', text: 'YWI=', base64: true },
    { name: 'two pads', text: 'YQ==', base64: true },
    { name: 'whitespace ignored, as .NET does', text: 'YW Jj\nZA==', base64: true },
    { name: 'plain JSON', text: '{"a":1}', base64: false },
    { name: 'padding missing', text: 'YQ', base64: false },
    { name: 'base64url alphabet', text: 'a-_b', base64: false },
    { name: 'padding in the middle', text: 'YQ==YQ==', base64: false },
  ])('$name: $base64', ({ text, base64 }) => {
    expect(isBase64(text)).toBe(base64);
  });
});

describe('isQueueName', () => {
  it.each([
    { name: 'prefixed', queue: 'h0a1b2c3d4e-waves', valid: true },
    { name: 'poison queue', queue: 'waves-poison', valid: true },
    { name: 'shortest', queue: 'abc', valid: true },
    { name: 'longest', queue: 'a'.repeat(63), valid: true },
    { name: 'too short', queue: 'ab', valid: false },
    { name: 'too long', queue: 'a'.repeat(64), valid: false },
    { name: 'upper case', queue: 'Waves', valid: false },
    { name: 'double hyphen', queue: 'bad--name', valid: false },
    { name: 'hyphen first', queue: '-waves', valid: false },
    { name: 'hyphen last', queue: 'waves-', valid: false },
    { name: 'underscore', queue: 'wave_s', valid: false },
  ])('$name ($queue): $valid', ({ queue, valid }) => {
    expect(isQueueName(queue)).toBe(valid);
  });
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
        reasonCode: 'MaxDequeueCountReached',
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
        .map((entry) => entry.fields['reasonCode'])
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

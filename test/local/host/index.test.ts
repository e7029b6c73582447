import { createHook } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { gate } from '../../relay/fixture.js';
import {
  azuriteProxy,
  queueFunction,
  rawQueue,
  sendJson,
  start,
  stopHosts,
  timerFunction,
  useLocalHosts,
  yearly,
} from './fixture.js';

/** The host as a whole: what it refuses to start with, and how it stops. */

useLocalHosts();

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

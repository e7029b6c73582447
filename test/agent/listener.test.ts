import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer } from 'ws';
import { startRelayListener, type ListenerState } from '../../lib/agent/listener.js';
import { createSasToken } from '../../lib/relay/sas.js';
import { RelayUnreachableError } from '../../lib/relay/sender.js';
import { ConfigError } from '../../lib/errors.js';
import {
  gate,
  listenToken,
  recordingLogger,
  relayFixture,
  rules,
  testAgent,
  waitFor,
} from '../relay/fixture.js';

/** Whether `promise` has settled, seen after the turns of the loop that settle an already settled one. */
const settled = (promise: Promise<unknown>): Promise<boolean> =>
  Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
  ]);

type Fixture = Awaited<ReturnType<typeof relayFixture>>;

describe('startRelayListener (hyco-https) against the relay emulator', () => {
  let relay: Fixture;
  afterEach(() => relay.close());

  it('with a bad listen key never becomes ready, logs why, and keeps retrying', async () => {
    relay = await relayFixture();
    const logger = recordingLogger();
    const states: ListenerState[] = [];
    const listener = relay.listen(testAgent().handler, {
      token: listenToken(relay.hybridConnection, { keyName: rules.listen.keyName, key: 'wrong' }),
      logger,
      onState: (state) => states.push(state),
    });
    // Refused, retried at once, refused, retried after 1 s, refused: and still not ready.
    await waitFor(() => logger.named('RelayListenerRejected').length >= 3, 'three refused attempts');
    expect(await settled(listener.ready)).toBe(false);
    expect(relay.emulator.listenerCount(relay.hybridConnection)).toBe(0);
    const rejections = logger.named('RelayListenerRejected');
    expect(rejections[0]).toMatchObject({
      level: 'error',
      fields: {
        status: 401,
        hybridConnection: relay.hybridConnection,
        reasonCode: 'ListenTokenRefused',
        reasonDetail: expect.stringContaining('listen rule') as unknown,
      },
    });
    expect(states).toEqual(['reconnecting']);
    // Each retry says why with a catalogue code: the refused control channel closed.
    expect(logger.named('RelayListenerReconnecting')[0]?.fields).toMatchObject({
      reasonCode: 'ControlChannelClosed',
      reasonDetail: expect.stringContaining('reconnects') as unknown,
      attempt: 1,
    });
    await listener.close();
    await expect(listener.ready).rejects.toMatchObject({ code: 'ListenerClosed' });
    expect(states).toEqual(['reconnecting', 'closed']);
  });

  it('comes back after the relay drops the control channel, and requests work again', async () => {
    relay = await relayFixture();
    const states: ListenerState[] = [];
    const listener = relay.listen(testAgent().handler, { onState: (state) => states.push(state) });
    await listener.ready;
    expect((await relay.client.ping(relay.hybridConnection, { nonce: 'before' })).nonce).toBe('before');

    for (let drop = 1; drop <= 2; drop++) {
      expect(relay.emulator.dropListeners(relay.hybridConnection)).toBe(1);
      await waitFor(
        () => states.filter((state) => state === 'listening').length === drop + 1,
        'the listener to reconnect',
      );
      expect(relay.emulator.listenerCount(relay.hybridConnection)).toBe(1);
      expect((await relay.client.ping(relay.hybridConnection, { nonce: `after-${drop}` })).nonce).toBe(
        `after-${drop}`,
      );
    }
    expect(states).toEqual(['listening', 'reconnecting', 'listening', 'reconnecting', 'listening']);
  });

  it('close() ends it for good: no reconnect afterwards, even from the middle of a reconnect wait', async () => {
    relay = await relayFixture();
    const timers = (): number =>
      process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    const timersBefore = timers();
    const listener = relay.listen(testAgent().handler, {
      token: listenToken(relay.hybridConnection, { keyName: rules.listen.keyName, key: 'wrong' }),
    });
    // Two refusals in (the first retry is immediate), the next attempt waits 1 s: close inside that wait.
    await waitFor(
      () => relay.emulatorLog.named('RelayEmulatorListenerRejected').length === 2,
      'two refused attempts',
    );
    await listener.close();
    // The reconnect wait's timer is gone with it: nothing is left that could connect again.
    expect(timers()).toBeLessThanOrEqual(timersBefore);
    expect(relay.emulatorLog.named('RelayEmulatorListenerRejected')).toHaveLength(2);

    const good = relay.listen(testAgent().handler);
    await good.ready;
    await good.close();
    await waitFor(
      () => relay.emulator.listenerCount(relay.hybridConnection) === 0,
      'the relay to see the listener go',
    );
    // Nothing of ours is left ticking that would keep an agent process from exiting.
    expect(timers()).toBeLessThanOrEqual(timersBefore);
    await expect(relay.client.ping(relay.hybridConnection)).rejects.toBeInstanceOf(RelayUnreachableError);
  });

  it('spreads requests over two listeners on one hybrid connection', async () => {
    relay = await relayFixture();
    const first = testAgent('ex01.contoso.com');
    const second = testAgent('ex02.contoso.com');
    await Promise.all([relay.listen(first.handler).ready, relay.listen(second.handler).ready]);
    expect(relay.emulator.listenerCount(relay.hybridConnection)).toBe(2);
    const answeredBy = new Set<string>();
    for (let round = 0; round < 40; round++)
      answeredBy.add((await relay.client.ping(relay.hybridConnection)).server);
    expect(answeredBy).toEqual(new Set(['ex01.contoso.com', 'ex02.contoso.com']));
    expect(first.requests.length + second.requests.length).toBe(40);
  });

  it('gives the handler method, path after the hybrid connection, query, headers and body', async () => {
    relay = await relayFixture();
    const agent = testAgent();
    agent.overrides.set('/echo', async (request) =>
      agent.json(200, {
        method: request.method,
        path: request.path,
        type: request.headers['content-type'],
        body: request.body.toString('utf8'),
      }),
    );
    await relay.listen(agent.handler).ready;
    const response = await relay.sender.send(relay.hybridConnection, {
      method: 'PUT',
      path: '/echo',
      headers: { 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(JSON.parse(response.body.toString('utf8'))).toEqual({
      method: 'PUT',
      path: '/echo',
      type: 'text/plain',
      body: 'hello',
    });
    const withQuery = await relay.sender.send(relay.hybridConnection, {
      method: 'GET',
      path: '/status?verbose=1',
    });
    expect(withQuery.status).toBe(404);
    expect(agent.requests.at(-1)?.path).toBe('/status?verbose=1');
  });

  it('does not read a request body past its cap: the rendezvous is closed at the frame header, the handler never sees it, and the listener keeps serving', async () => {
    relay = await relayFixture();
    const agent = testAgent();
    const logger = recordingLogger();
    await relay.listen(agent.handler, { maxBodyBytes: 100_000, logger }).ready;
    const request = (characters: number, operationId: string) => ({
      operationId,
      packageBase64: 'A'.repeat(characters),
      mitigationIds: ['EM1'],
    });

    // Before: the whole body was buffered and handed over, whatever its size.
    await expect(relay.client.apply(relay.hybridConnection, request(150_000, 'too-big'))).rejects.toThrow();
    expect(agent.requests.filter((seen) => seen.path === '/apply')).toEqual([]);
    // Refused by ws at the frame header (1009), not read and then refused.
    await waitFor(
      () =>
        logger
          .named('RelayListenerRendezvousFailed')
          .some((line) => /Max payload size exceeded/.test(String(line.fields.error))),
      'the refused frame to be logged',
    );
    expect(logger.named('RelayListenerRequestTooLarge')).toEqual([]);

    const fits = await relay.client.apply(relay.hybridConnection, request(90_000, 'fits'));
    expect(fits.outcomes['EM1']?.outcome).toBe('Applied');
    expect((await relay.client.ping(relay.hybridConnection, { nonce: 'after' })).nonce).toBe('after');
  });

  it('logs a failed request with its secrets masked: a token in the query never reaches the log', async () => {
    relay = await relayFixture();
    const agent = testAgent();
    const logger = recordingLogger();
    const path = '/boom?code=secret-function-key&token=secret-token&top=5';
    agent.overrides.set(path, () => Promise.reject(new Error('handler broke')));
    await relay.listen(agent.handler, { logger }).ready;
    const failed = await relay.sender.send(relay.hybridConnection, { method: 'GET', path });
    expect(failed.status).toBe(500);
    await waitFor(() => logger.named('RelayListenerHandlerFailed').length === 1, 'the failure to be logged');
    const logged = JSON.stringify(logger.named('RelayListenerHandlerFailed'));
    expect(logged).not.toContain('secret-');
    expect(logger.named('RelayListenerHandlerFailed')[0]?.fields['path']).toContain(
      '/boom?code=***&token=***&top=5',
    );
  });

  it('survives a reply whose rendezvous the relay refuses (the request expired) and keeps serving', async () => {
    relay = await relayFixture({ emulator: { deadlineInMs: 200 } });
    const agent = testAgent();
    const logger = recordingLogger();
    const late = gate();
    agent.overrides.set('/big', async () => {
      await late.opened;
      return { status: 200, body: Buffer.alloc(100 * 1024, 1) };
    });
    await relay.listen(agent.handler, { logger }).ready;
    await expect(
      relay.sender.send(relay.hybridConnection, { method: 'GET', path: '/big' }),
    ).rejects.toMatchObject({ name: 'RelayTimeoutError' });
    late.open();
    await waitFor(
      () => logger.named('RelayListenerRendezvousFailed').length === 1,
      'the refused rendezvous to be logged',
    );
    expect(logger.named('RelayListenerRendezvousFailed')[0]?.fields['error']).toContain('403');
    expect((await relay.client.ping(relay.hybridConnection, { nonce: 'still here' })).nonce).toBe(
      'still here',
    );
  });

  it('refuses a listen URI that is not a hybrid connection address', () => {
    expect(() =>
      startRelayListener({
        listenUri: 'https://contoso.servicebus.windows.net/hc1',
        token: () => 't',
        handler: async () => ({ status: 200, body: '' }),
      }),
    ).toThrow(ConfigError);
  });

  it('renews its token on the control channel; a refused renewal makes it reconnect with a fresh token', async () => {
    relay = await relayFixture();
    const good = listenToken(relay.hybridConnection);
    let calls = 0;
    // connect, renew, renew (refused: the relay closes the channel with 1008), reconnect, ...
    const token = (): string =>
      ++calls === 3
        ? createSasToken(`http://127.0.0.1/${relay.hybridConnection}`, rules.listen.keyName, 'wrong')
        : good();
    const states: ListenerState[] = [];
    const listener = relay.listen(testAgent().handler, {
      token,
      renewEveryMs: 150,
      onState: (state) => states.push(state),
    });
    await listener.ready;
    await waitFor(() => states.length >= 3, 'a reconnect after the refused renewal');
    expect(states.slice(0, 3)).toEqual(['listening', 'reconnecting', 'listening']);
    expect(calls).toBeGreaterThanOrEqual(4);
    expect((await relay.client.ping(relay.hybridConnection, { nonce: 'renewed' })).nonce).toBe('renewed');
  });
});

describe('startRelayListener keep-alive', () => {
  it('sends pongs on an idle control channel and stops when closed', async () => {
    const relayStandIn = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => relayStandIn.once('listening', () => resolve()));
    let pongs = 0;
    relayStandIn.on('connection', (socket) => socket.on('pong', () => pongs++));
    const { port } = relayStandIn.address() as AddressInfo;
    // Only the listener's intervals are faked: the keep-alive's period is stepped, not waited for.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const listener = startRelayListener({
        listenUri: `ws://127.0.0.1:${port}/$hc/hc1?sb-hc-action=listen`,
        token: () => 'token',
        keepAliveMs: 40,
        handler: async () => ({ status: 200, body: '' }),
      });
      try {
        await listener.ready;
        vi.advanceTimersByTime(4 * 40);
        // At least: waitFor steps faked timers too while it polls, so more periods may pass.
        await waitFor(() => pongs >= 4, 'four pongs after four keep-alive periods');
      } finally {
        await listener.close();
      }
      // Closed: no interval is left to send another.
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
      relayStandIn.close();
    }
  });
});

import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket, type RawData } from 'ws';
import { startRelayEmulator, type RelayEmulator, type RelayRule } from '../../lib/local/relay.js';
import { createSasToken } from '../../lib/relay/sas.js';
import { waitFor } from '../helpers/wait.js';
import { listenToken, recordingLogger, rules } from '../relay/fixture.js';

/**
 * The emulator against the protocol document, with a bare `ws` listener written from it (the
 * hyco-https path is covered in test/relay).
 */

const sendToken = (hybridConnection: string, rule: RelayRule = rules.send): string =>
  createSasToken(`http://127.0.0.1/${hybridConnection}`, rule.keyName, rule.key);

interface Frame {
  readonly text?: unknown;
  readonly binary?: Buffer;
}

/** A WebSocket whose frames can be awaited one by one. */
async function openSocket(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ socket: WebSocket; next(): Promise<Frame> }> {
  const socket = new WebSocket(url, { headers, perMessageDeflate: false });
  const frames: Frame[] = [];
  const waiting: ((frame: Frame) => void)[] = [];
  socket.on('message', (data: RawData, isBinary: boolean) => {
    const buffer = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    const frame = isBinary ? { binary: buffer } : { text: JSON.parse(buffer.toString('utf8')) as unknown };
    const waiter = waiting.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    next: () =>
      frames.length > 0
        ? Promise.resolve(frames.shift()!)
        : new Promise<Frame>((resolve) => waiting.push(resolve)),
  };
}

/** Where an upgrade attempt ends: 'open', or the HTTP status it was refused with. */
function upgradeOutcome(url: string, headers: Record<string, string> = {}): Promise<number | 'open'> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { headers });
    // Terminating a refused handshake reports an error we already know about.
    socket.on('error', () => {});
    socket.once('open', () => {
      socket.close();
      resolve('open');
    });
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
      socket.terminate();
    });
  });
}

interface RequestMessage {
  request: {
    address: string;
    id: string;
    method?: string;
    requestTarget?: string;
    requestHeaders?: Record<string, string>;
    body?: boolean;
  };
}

describe('relay emulator', () => {
  let emulator: RelayEmulator;
  const log = recordingLogger();
  const hc = 'hc1';

  beforeEach(async () => {
    emulator = await startRelayEmulator({ rules, logger: log, deadlineInMs: 1000 });
  });
  afterEach(() => emulator.stop());

  it('lets a listener in with a Listen token in the header or the sb-hc-token query, and refuses others during the upgrade', async () => {
    const uri = emulator.listenUri(hc);
    expect(uri).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/\$hc\/hc1\?sb-hc-action=listen$/);
    expect(await upgradeOutcome(uri, { ServiceBusAuthorization: listenToken(hc)() })).toBe('open');
    expect(await upgradeOutcome(`${uri}&sb-hc-token=${encodeURIComponent(listenToken(hc)())}`)).toBe('open');
    expect(await upgradeOutcome(uri)).toBe(401);
    expect(
      await upgradeOutcome(uri, {
        ServiceBusAuthorization: listenToken(hc, { keyName: 'listen', key: 'wrong' })(),
      }),
    ).toBe(401);
    expect(await upgradeOutcome(uri, { ServiceBusAuthorization: sendToken(hc) })).toBe(401);
    expect(await upgradeOutcome(uri, { ServiceBusAuthorization: listenToken('other')() })).toBe(403);
    expect(
      await upgradeOutcome(uri.replace('sb-hc-action=listen', 'sb-hc-action=connect'), {
        ServiceBusAuthorization: listenToken(hc)(),
      }),
    ).toBe(400);
  });

  it('survives a listener that resets its connection while being refused (no unhandled socket error)', async () => {
    const { port } = new URL(emulator.baseUrl);
    for (let attempt = 0; attempt < 5; attempt++) {
      const socket = connect(Number(port), '127.0.0.1');
      socket.on('error', () => {});
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        `GET /$hc/${hc}?sb-hc-action=listen HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nServiceBusAuthorization: ${listenToken(hc, { keyName: 'listen', key: 'wrong' })()}\r\n\r\n`,
      );
      // Once the 401 is here the emulator has ended its side; a reset now reaches a half-closed socket.
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      socket.resetAndDestroy();
    }
    expect(await upgradeOutcome(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() })).toBe(
      'open',
    );
  });

  it('answers senders itself: 401 without or with a bad token, 403 for another entity, 502 with no listener', async () => {
    const url = `${emulator.baseUrl}/${hc}/ping`;
    expect((await fetch(url, { method: 'POST' })).status).toBe(401);
    expect(
      (
        await fetch(url, {
          method: 'POST',
          headers: { ServiceBusAuthorization: sendToken(hc, { keyName: 'send', key: 'wrong' }) },
        })
      ).status,
    ).toBe(401);
    expect(
      (await fetch(url, { method: 'POST', headers: { ServiceBusAuthorization: listenToken(hc)() } })).status,
    ).toBe(401);
    expect(
      (await fetch(url, { method: 'POST', headers: { ServiceBusAuthorization: sendToken('other') } })).status,
    ).toBe(403);
    const noListener = await fetch(url, {
      method: 'POST',
      headers: { ServiceBusAuthorization: sendToken(hc) },
    });
    expect(noListener.status).toBe(502);
    expect(noListener.headers.get('via')).toBeNull();
  });

  it('sends a small request on the control channel as a request message and one binary frame, without relay credentials', async () => {
    const listener = await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    const pending = fetch(
      `${emulator.baseUrl}/${hc}/apply?x=1&sb-hc-token=${encodeURIComponent(sendToken(hc))}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-custom': 'kept' },
        body: '{"a":1}',
      },
    );
    const head = (await listener.next()).text as RequestMessage;
    expect(head.request).toMatchObject({ method: 'POST', requestTarget: `/${hc}/apply?x=1`, body: true });
    expect(head.request.address).toMatch(
      new RegExp(
        `^ws://127\\.0\\.0\\.1:\\d+/\\$hc/${hc}\\?sb-hc-action=request&sb-hc-id=${head.request.id}$`,
      ),
    );
    expect(head.request.requestHeaders).toMatchObject({
      'content-type': 'application/json',
      'x-custom': 'kept',
    });
    for (const name of Object.keys(head.request.requestHeaders ?? {}))
      expect(['host', 'connection', 'content-length', 'servicebusauthorization']).not.toContain(name);
    expect((await listener.next()).binary?.toString('utf8')).toBe('{"a":1}');

    listener.socket.send(
      JSON.stringify({
        response: {
          requestId: head.request.id,
          statusCode: 202,
          statusDescription: 'Accepted',
          responseHeaders: { 'content-type': 'application/json', connection: 'close' },
          body: true,
        },
      }),
    );
    listener.socket.send(Buffer.from('{"ok":true}'), { binary: true });
    const response = await pending;
    expect(response.status).toBe(202);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('via')).toMatch(/^1\.1 127\.0\.0\.1:\d+$/);
    expect(await response.text()).toBe('{"ok":true}');
    listener.socket.close();
  });

  it('takes the Authorization header as the token only when no other is there, and then keeps it from the listener', async () => {
    const listener = await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    const pending = fetch(`${emulator.baseUrl}/${hc}/status`, { headers: { authorization: sendToken(hc) } });
    const head = (await listener.next()).text as RequestMessage;
    expect(head.request).toMatchObject({ method: 'GET', body: false });
    expect(head.request.requestHeaders).not.toHaveProperty('authorization');
    listener.socket.send(
      JSON.stringify({ response: { requestId: head.request.id, statusCode: 200, body: false } }),
    );
    expect((await pending).status).toBe(200);
    listener.socket.close();
  });

  it('delivers a request over 64 KiB on a rendezvous socket, and takes a response over a rendezvous socket', async () => {
    const listener = await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    const big = Buffer.alloc(64 * 1024 + 1, 3);
    const pending = fetch(`${emulator.baseUrl}/${hc}/apply`, {
      method: 'POST',
      headers: { ServiceBusAuthorization: sendToken(hc) },
      body: big,
    });
    const announce = (await listener.next()).text as RequestMessage;
    expect(Object.keys(announce.request).sort()).toEqual(['address', 'id']);
    const rendezvous = await openSocket(announce.request.address);
    const head = (await rendezvous.next()).text as RequestMessage;
    expect(head.request).toMatchObject({
      id: announce.request.id,
      method: 'POST',
      requestTarget: `/${hc}/apply`,
      body: true,
    });
    expect((await rendezvous.next()).binary?.equals(big)).toBe(true);
    rendezvous.socket.send(
      JSON.stringify({ response: { requestId: head.request.id, statusCode: 200, body: true } }),
    );
    rendezvous.socket.send(big, { binary: true });
    const response = await pending;
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(big)).toBe(true);

    // A control-channel request whose listener answers over rendezvous.
    const second = fetch(`${emulator.baseUrl}/${hc}/status`, {
      headers: { ServiceBusAuthorization: sendToken(hc) },
    });
    const small = (await listener.next()).text as RequestMessage;
    const answer = await openSocket(small.request.address);
    answer.socket.send(
      JSON.stringify({ response: { requestId: small.request.id, statusCode: 200, body: true } }),
    );
    answer.socket.send(big, { binary: true });
    expect((await (await second).arrayBuffer()).byteLength).toBe(big.length);
    expect(await upgradeOutcome(small.request.address)).toBe(403);
    listener.socket.close();
  });

  it('answers 504 when the listener is silent past the deadline, and 502 when it goes away mid-request', async () => {
    const listener = await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    const silent = await fetch(`${emulator.baseUrl}/${hc}/ping`, {
      method: 'POST',
      headers: { ServiceBusAuthorization: sendToken(hc) },
    });
    expect(silent.status).toBe(504);
    expect(await silent.text()).toBe('the listener did not answer within 1000 ms');
    await listener.next();

    const pending = fetch(`${emulator.baseUrl}/${hc}/ping`, {
      method: 'POST',
      headers: { ServiceBusAuthorization: sendToken(hc) },
    });
    await listener.next();
    listener.socket.terminate();
    expect((await pending).status).toBe(502);
  });

  it('counts and drops listeners, and stop() fails what is in flight', async () => {
    const first = await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    expect(emulator.listenerCount(hc)).toBe(2);
    expect(emulator.listenerCount('other')).toBe(0);
    expect(emulator.dropListeners(hc)).toBe(2);
    await waitFor(
      'the dropped listeners to be gone',
      () => emulator.listenerCount(hc) === 0 && first.socket.readyState === WebSocket.CLOSED,
    );

    const last = await openSocket(emulator.listenUri(hc), { ServiceBusAuthorization: listenToken(hc)() });
    const pending = fetch(`${emulator.baseUrl}/${hc}/ping`, {
      method: 'POST',
      headers: { ServiceBusAuthorization: sendToken(hc) },
    });
    // In flight: the listener has the request.
    await last.next();
    await emulator.stop();
    expect((await pending).status).toBe(502);
  });
});

describe('relay emulator with rules per hybrid connection', () => {
  it('knows only the listed hybrid connections, each with its own rules', async () => {
    const other = { listen: { keyName: 'l2', key: 'key-2' }, send: { keyName: 's2', key: 'key-2s' } };
    const emulator = await startRelayEmulator({ rules: { hybridConnections: { hc1: rules, hc2: other } } });
    try {
      expect(
        await upgradeOutcome(emulator.listenUri('hc1'), { ServiceBusAuthorization: listenToken('hc1')() }),
      ).toBe('open');
      expect(
        await upgradeOutcome(emulator.listenUri('hc2'), { ServiceBusAuthorization: listenToken('hc2')() }),
      ).toBe(401);
      expect(
        await upgradeOutcome(emulator.listenUri('hc2'), {
          ServiceBusAuthorization: listenToken('hc2', other.listen)(),
        }),
      ).toBe('open');
      expect(
        await upgradeOutcome(emulator.listenUri('hc3'), { ServiceBusAuthorization: listenToken('hc3')() }),
      ).toBe(404);
      expect(
        (
          await fetch(`${emulator.baseUrl}/hc3/ping`, {
            method: 'POST',
            headers: { ServiceBusAuthorization: sendToken('hc3') },
          })
        ).status,
      ).toBe(404);
      expect(
        (
          await fetch(`${emulator.baseUrl}/hc2/ping`, {
            method: 'POST',
            headers: { ServiceBusAuthorization: sendToken('hc2') },
          })
        ).status,
      ).toBe(401);
      expect(
        (
          await fetch(`${emulator.baseUrl}/hc2/ping`, {
            method: 'POST',
            headers: { ServiceBusAuthorization: sendToken('hc2', other.send) },
          })
        ).status,
      ).toBe(502);
    } finally {
      await emulator.stop();
    }
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors.js';
import type { StatusReply } from '../../lib/relay/protocol.js';
import {
  AgentClient,
  AgentError,
  AgentReplyError,
  AgentRequestError,
  RelayAuthError,
  RelaySender,
  RelayTimeoutError,
  RelayUnreachableError,
  defaultAzureCredentialAuth,
  relayEntraScope,
} from '../../lib/relay/sender.js';
import { gate, relayFixture, rules, testAgent } from './fixture.js';

type Fixture = Awaited<ReturnType<typeof relayFixture>>;

describe('AgentClient through the relay emulator to a hyco-https listener', () => {
  let relay: Fixture;
  let agent: ReturnType<typeof testAgent>;

  beforeEach(async () => {
    relay = await relayFixture();
    agent = testAgent();
    await relay.listen(agent.handler).ready;
  });
  afterEach(() => relay.close());

  it('round-trips apply, status, remove and ping', async () => {
    const hc = relay.hybridConnection;
    const applied = await relay.client.apply(hc, {
      operationId: 'r1:ex01:1',
      packageBase64: 'PEVPQ1MvPg==',
      mitigationIds: ['EM1', 'EM2'],
    });
    expect(applied).toEqual({
      operationId: 'r1:ex01:1',
      status: 'Completed',
      outcomes: {
        EM1: { outcome: 'Applied', detail: 'package of 12 base64 characters' },
        EM2: { outcome: 'Applied', detail: 'package of 12 base64 characters' },
      },
    });

    const status = await relay.client.status(hc);
    expect(status).toMatchObject({
      server: 'ex01.contoso.com',
      applied: ['EM1', 'EM2'],
      journal: { entries: 2, pending: 0 },
    });

    const removed = await relay.client.remove(hc, {
      operationId: 'r1:ex01:2',
      mitigationIds: ['EM2', 'EM9'],
    });
    expect(removed.outcomes).toEqual({
      EM2: { outcome: 'Removed', detail: '' },
      EM9: { outcome: 'NotApplicable', detail: '' },
    });

    expect(await relay.client.ping(hc, { nonce: 'n-42' })).toEqual({
      server: 'ex01.contoso.com',
      build: '15.2.1544.4',
      agentVersion: '0.1.0',
      nonce: 'n-42',
    });
    expect(await relay.client.ping(hc)).not.toHaveProperty('nonce');

    expect(agent.requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'POST /apply',
      'GET /status',
      'POST /remove',
      'POST /ping',
      'POST /ping',
    ]);
    // The relay took the token out: the agent never sees the sender's credentials.
    for (const request of agent.requests)
      expect(Object.keys(request.headers).map((name) => name.toLowerCase())).not.toContain(
        'servicebusauthorization',
      );
  });

  it('carries a 100 KiB request body (rendezvous) and a 100 KiB reply (rendezvous), then small ones on the same connection', async () => {
    const hc = relay.hybridConnection;
    const packageBase64 = Buffer.alloc(76 * 1024, 7).toString('base64');
    expect(packageBase64.length).toBeGreaterThan(100 * 1024);
    const applied = await relay.client.apply(hc, {
      operationId: 'big-1',
      packageBase64,
      mitigationIds: ['EM1'],
    });
    expect(applied.outcomes['EM1']?.detail).toBe(`package of ${packageBase64.length} base64 characters`);
    expect(agent.requests.at(-1)?.body.toString('utf8')).toContain(packageBase64);

    const detail = 'x'.repeat(2000);
    const operations = Array.from({ length: 60 }, (_, index) => ({
      operationId: `op-${index}`,
      status: 'Completed' as const,
      outcomes: { EM1: { outcome: 'Applied' as const, detail } },
    }));
    const big: StatusReply = {
      server: 'ex01.contoso.com',
      build: '15.2.1544.4',
      agentVersion: '0.1.0',
      applied: ['EM1'],
      blocked: [],
      drifted: [],
      journal: { entries: 1, pending: 0 },
      operations,
    };
    agent.overrides.set('/status', async () => agent.json(200, big));
    // One connection, so the requests after a big reply surely use the connection it came back on.
    const oneConnection = new RelaySender({
      baseUrl: relay.emulator.baseUrl,
      auth: { kind: 'sas', ...rules.send },
      maxSockets: 1,
      timeoutMs: 5000,
    });
    const client = new AgentClient(oneConnection);
    try {
      for (let round = 0; round < 3; round++) {
        const status = await client.status(hc);
        expect(status.operations).toHaveLength(60);
        expect(JSON.stringify(status).length).toBeGreaterThan(100 * 1024);
        // The relay routes this connection's next request over the rendezvous socket the reply opened.
        expect((await client.ping(hc, { nonce: `after-${round}` })).nonce).toBe(`after-${round}`);
      }
    } finally {
      oneConnection.close();
    }
  });

  it('validates requests before sending: nothing leaves', async () => {
    const sent = agent.requests.length;
    await expect(
      relay.client.apply(relay.hybridConnection, {
        operationId: 'x',
        packageBase64: 'AA==',
        mitigationIds: [],
      }),
    ).rejects.toMatchObject({ name: 'AgentRequestError', field: 'mitigationIds' });
    await expect(
      relay.client.remove(relay.hybridConnection, { operationId: 'has space', mitigationIds: ['EM1'] }),
    ).rejects.toBeInstanceOf(AgentRequestError);
    expect(agent.requests.length).toBe(sent);
  });

  it('turns a reply that breaks the protocol schema into AgentReplyError naming the field', async () => {
    agent.overrides.set('/status', async () =>
      agent.json(200, {
        server: 'ex01',
        build: '15.2.1544.4',
        agentVersion: '1',
        applied: [],
        journal: { entries: 'two', pending: 0 },
      }),
    );
    const error = await relay.client.status(relay.hybridConnection).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AgentReplyError);
    expect(error).toMatchObject({ code: 'BadReply', field: 'journal.entries' });
    expect((error as Error).message).toContain('journal.entries');

    agent.overrides.set('/ping', async () => ({ status: 200, body: 'pong' }));
    await expect(relay.client.ping(relay.hybridConnection)).rejects.toMatchObject({
      name: 'AgentReplyError',
      field: '(body)',
    });

    agent.overrides.set('/ping', async () => agent.json(500, { message: 'not an errorReply' }));
    await expect(relay.client.ping(relay.hybridConnection)).rejects.toMatchObject({
      name: 'AgentReplyError',
      field: 'error',
    });
  });

  it("turns an error reply into AgentError with the agent's code, and a handler that throws into a 500 InternalError", async () => {
    agent.overrides.set('/apply', async () =>
      agent.json(422, { error: 'BadSignature', detail: 'signature does not verify' }),
    );
    const refused = await relay.client
      .apply(relay.hybridConnection, { operationId: 'op', packageBase64: 'AA==', mitigationIds: ['EM1'] })
      .catch((caught: unknown) => caught);
    expect(refused).toBeInstanceOf(AgentError);
    expect(refused).toMatchObject({ code: 'BadSignature', status: 422, detail: 'signature does not verify' });

    agent.overrides.set('/status', async () => {
      throw new Error('journal unreadable');
    });
    await expect(relay.client.status(relay.hybridConnection)).rejects.toMatchObject({
      name: 'AgentError',
      code: 'InternalError',
      status: 500,
      detail: expect.stringContaining('journal unreadable') as unknown,
    });
  });
});

describe('RelaySender failures', () => {
  let current: Fixture | undefined;
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  const fixture = async (options: Parameters<typeof relayFixture>[0] = {}): Promise<Fixture> =>
    (current = await relayFixture(options));

  it('bad send key → RelayAuthError that names the send rule', async () => {
    const relay = await fixture({
      sender: { auth: { kind: 'sas', keyName: rules.send.keyName, key: 'not-the-key' } },
    });
    await relay.listen(testAgent().handler).ready;
    const error = await relay.client.ping(relay.hybridConnection).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RelayAuthError);
    expect(error).toMatchObject({ code: 'RelayAuth' });
    expect((error as Error).message).toMatch(/401 Unauthorized.*send rule/);
  });

  it('a listen rule used to send → RelayAuthError', async () => {
    const relay = await fixture({ sender: { auth: { kind: 'sas', ...rules.listen } } });
    await expect(relay.client.ping(relay.hybridConnection)).rejects.toBeInstanceOf(RelayAuthError);
  });

  it('no listener → RelayUnreachableError', async () => {
    const relay = await fixture();
    const error = await relay.client.ping(relay.hybridConnection).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RelayUnreachableError);
    expect(error).toMatchObject({
      code: 'Unreachable',
      message: expect.stringContaining('no agent is listening') as unknown,
    });
  });

  it('nothing at the address → RelayUnreachableError', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sender = new RelaySender({
      baseUrl: `http://127.0.0.1:${port}`,
      auth: { kind: 'sas', ...rules.send },
    });
    await expect(sender.send('hc', { method: 'GET', path: '/status' })).rejects.toMatchObject({
      name: 'RelayUnreachableError',
      message: expect.stringContaining('ECONNREFUSED') as unknown,
    });
    sender.close();
  });

  it("the relay's deadline passes → RelayTimeoutError (504)", async () => {
    const relay = await fixture({ emulator: { deadlineInMs: 300 } });
    const agent = testAgent();
    const slow = gate();
    agent.overrides.set('/ping', async () => {
      await slow.opened;
      return agent.json(200, {});
    });
    await relay.listen(agent.handler).ready;
    const error = await relay.client.ping(relay.hybridConnection).catch((caught: unknown) => caught);
    slow.open();
    expect(error).toBeInstanceOf(RelayTimeoutError);
    expect((error as Error).message).toContain('504');
  });

  it('our own deadline passes first → RelayTimeoutError; deadlines of 60 s or more are refused', async () => {
    const relay = await fixture({ sender: { timeoutMs: 300 } });
    const agent = testAgent();
    const slow = gate();
    agent.overrides.set('/ping', async () => {
      await slow.opened;
      return agent.json(200, {});
    });
    await relay.listen(agent.handler).ready;
    // The agent never answers until the gate opens: only the sender's deadline ends the call.
    const error = await relay.client.ping(relay.hybridConnection).catch((caught: unknown) => caught);
    slow.open();
    expect(error).toMatchObject({
      name: 'RelayTimeoutError',
      code: 'Timeout',
      message: expect.stringContaining('within 300 ms') as unknown,
    });
    expect(
      () =>
        new RelaySender({
          baseUrl: relay.emulator.baseUrl,
          auth: { kind: 'sas', ...rules.send },
          timeoutMs: 60_000,
        }),
    ).toThrow(ConfigError);
  });
});

describe('RelaySender with Microsoft Entra', () => {
  it('asks for the relay scope once, sends the raw access token in ServiceBusAuthorization, and reports a refusal as RelayAuthError', async () => {
    const scopes: (string | string[])[] = [];
    const credential: TokenCredential = {
      getToken: async (scope): Promise<AccessToken> => {
        scopes.push(scope);
        return { token: 'eyJ.entra.token', expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    const seen: http.IncomingHttpHeaders[] = [];
    const relayStandIn = http.createServer((request, response) => {
      seen.push(request.headers);
      const allowed = seen.length === 1;
      response.writeHead(
        allowed ? 200 : 403,
        allowed ? { via: '1.1 stand-in', 'content-type': 'application/json' } : {},
      );
      response.end(allowed ? '{"server":"ex01","build":"15.2.1544.4","agentVersion":"1"}' : 'no Send claim');
    });
    await new Promise<void>((resolve) => relayStandIn.listen(0, '127.0.0.1', resolve));
    const sender = new RelaySender({
      baseUrl: `http://127.0.0.1:${(relayStandIn.address() as AddressInfo).port}`,
      auth: { kind: 'entra', credential },
    });
    try {
      const ok = await sender.send('hc1', { method: 'POST', path: '/ping', body: '{}' });
      expect(ok.status).toBe(200);
      const refused = await sender
        .send('hc1', { method: 'POST', path: '/ping', body: '{}' })
        .catch((caught: unknown) => caught);
      expect(refused).toBeInstanceOf(RelayAuthError);
      expect((refused as Error).message).toMatch(/403 Forbidden.*role/);
      expect(scopes).toEqual([relayEntraScope]);
      expect(seen.map((headers) => headers['servicebusauthorization'])).toEqual([
        'eyJ.entra.token',
        'eyJ.entra.token',
      ]);
    } finally {
      sender.close();
      relayStandIn.closeAllConnections();
      await new Promise<void>((resolve) => relayStandIn.close(() => resolve()));
    }
  });

  it('a credential that cannot produce a token → RelayAuthError, and DefaultAzureCredential is built on request', async () => {
    const sender = new RelaySender({
      baseUrl: 'https://contoso.servicebus.windows.net',
      auth: {
        kind: 'entra',
        credential: { getToken: async () => Promise.reject(new Error('no managed identity here')) },
      },
    });
    await expect(sender.send('hc1', { method: 'GET', path: '/status' })).rejects.toMatchObject({
      name: 'RelayAuthError',
      message: expect.stringContaining('no managed identity here') as unknown,
    });
    sender.close();
    const auth = await defaultAzureCredentialAuth();
    expect(auth.kind).toBe('entra');
  });
});

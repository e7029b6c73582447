import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHubForwarder, type HubAgent } from '../../lib/agent/hub.js';
import type { IncomingRelayRequest, RelayReply } from '../../lib/agent/listener.js';
import {
  NonceCache,
  parseSiteSecret,
  signatureWindowMs,
  signSiteRequest,
  startSiteLinkListener,
  verifySiteRequest,
  type SiteLinkListener,
} from '../../lib/agent/site-link.js';
import { ConfigError } from '../../lib/errors.js';
import { issueCertificate, type IssuedCertificate } from '../../lib/package/dev-pki.js';
import { gate } from '../relay/fixture.js';
import { recordingLogger } from '../helpers/logs.js';

const secret = randomBytes(32);
const request = {
  method: 'POST',
  path: '/apply',
  relayPath: 'ex01.contoso.com',
  body: Buffer.from('{"operationId":"r1"}'),
};
const now = new Date('2026-12-07T12:00:00Z');

describe('site request signatures', () => {
  const signed = signSiteRequest(secret, request, { now, nonce: 'n-1' });

  it.each([
    { name: 'the request as signed', header: signed, changed: {}, at: now, reason: undefined },
    { name: 'no header', header: undefined, changed: {}, at: now, reason: 'Missing' },
    { name: 'not v1:{time}:{nonce}:{mac}', header: 'Bearer x', changed: {}, at: now, reason: 'BadFormat' },
    {
      name: 'another body',
      header: signed,
      changed: { body: Buffer.from('{"operationId":"r2"}') },
      at: now,
      reason: 'BadSignature',
    },
    { name: 'another path', header: signed, changed: { path: '/remove' }, at: now, reason: 'BadSignature' },
    { name: 'another method', header: signed, changed: { method: 'GET' }, at: now, reason: 'BadSignature' },
    {
      name: "signed with another site's secret",
      header: signSiteRequest(randomBytes(32), request, { now }),
      changed: {},
      at: now,
      reason: 'BadSignature',
    },
    {
      name: 'five minutes and a second late',
      header: signed,
      changed: {},
      at: new Date(now.getTime() + signatureWindowMs + 1000),
      reason: 'Stale',
    },
    {
      name: 'for another server (signed for it)',
      header: signSiteRequest(secret, { ...request, relayPath: 'ex02.contoso.com' }, { now }),
      changed: { relayPath: 'ex02.contoso.com' },
      at: now,
      reason: 'WrongServer',
    },
  ])('$name', ({ header, changed, at, reason }) => {
    const verdict = verifySiteRequest(
      secret,
      header,
      { ...request, ...changed },
      { ownRelayPath: 'EX01.contoso.com', nonces: new NonceCache(), now: at },
    );
    expect(verdict.ok ? undefined : verdict.reason).toBe(reason);
  });

  it('a captured request sent again is refused as Replayed', () => {
    const nonces = new NonceCache();
    const options = { ownRelayPath: 'ex01.contoso.com', nonces, now };
    expect(verifySiteRequest(secret, signed, request, options)).toEqual({ ok: true });
    expect(verifySiteRequest(secret, signed, request, options)).toMatchObject({
      ok: false,
      reason: 'Replayed',
    });
  });

  it.each([
    { name: 'base64 of 32 bytes', text: randomBytes(32).toString('base64'), ok: true },
    { name: 'base64 of 16 bytes', text: randomBytes(16).toString('base64'), ok: false },
    { name: 'not base64', text: 'correct horse battery staple correct horse battery', ok: false },
  ])('site secret: $name', ({ text, ok }) => {
    if (ok) expect(parseSiteSecret(text, 'site.secret')).toHaveLength(32);
    else expect(() => parseSiteSecret(text, 'site.secret')).toThrow(ConfigError);
  });
});

describe('a hub forwarding to an agent over the LAN', () => {
  let agentTls: IssuedCertificate;
  let otherTls: IssuedCertificate;
  const listeners: SiteLinkListener[] = [];
  const seen: IncomingRelayRequest[] = [];
  let hold: ReturnType<typeof gate> | undefined;

  const agentHandler = async (incoming: IncomingRelayRequest): Promise<RelayReply> => {
    seen.push(incoming);
    if (hold) await hold.opened;
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ server: 'ex01.contoso.com', build: '15.2.1544.4', agentVersion: '0.1.0' }),
    };
  };

  async function agent(tls: IssuedCertificate, agentSecret = secret): Promise<SiteLinkListener> {
    const listener = await startSiteLinkListener({
      host: '127.0.0.1',
      port: 0,
      certificatePem: tls.certificatePem,
      privateKeyPem: tls.privateKeyPem,
      secret: agentSecret,
      relayPath: 'ex01.contoso.com',
      handler: agentHandler,
    });
    listeners.push(listener);
    return listener;
  }

  function hub(target: HubAgent, forwardTimeoutInMs = 5000) {
    const logger = recordingLogger();
    return {
      logger,
      ...createHubForwarder({
        hubName: 'hub1',
        site: 'Amsterdam',
        agents: new Map([['ex01.contoso.com', target]]),
        secret,
        forwardTimeoutInMs,
        logger,
      }),
    };
  }

  const ping = {
    method: 'POST',
    path: '/ex01.contoso.com/ping',
    headers: { 'content-type': 'application/json', authorization: 'not for the LAN' },
    body: Buffer.from('{}'),
  };
  const answer = (reply: RelayReply): { status: number; json: Record<string, unknown> } => ({
    status: reply.status,
    json: JSON.parse(reply.body.toString()) as Record<string, unknown>,
  });

  beforeAll(async () => {
    [agentTls, otherTls] = await Promise.all([
      issueCertificate({ subjectCn: 'ex01.contoso.com' }),
      issueCertificate({ subjectCn: 'ex01.contoso.com' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all(listeners.map((listener) => listener.close()));
  });

  it('forwards to the pinned agent with the agent path and only the protocol headers, and passes its answer back', async () => {
    const listener = await agent(agentTls);
    const forwarder = hub({ url: listener.url, certificateSha256: listener.certificateSha256 });
    seen.length = 0;
    expect(answer(await forwarder.handle(ping))).toEqual({
      status: 200,
      json: { server: 'ex01.contoso.com', build: '15.2.1544.4', agentVersion: '0.1.0' },
    });
    expect(
      seen.map((incoming) => [
        incoming.method,
        incoming.path,
        incoming.headers['authorization'],
        incoming.headers['content-type'],
      ]),
    ).toEqual([['POST', '/ping', undefined, 'application/json']]);
    forwarder.close();
  });

  it('a path that would name another host (//host/...) stays a path on the pinned agent', async () => {
    const listener = await agent(agentTls);
    const forwarder = hub({ url: listener.url, certificateSha256: listener.certificateSha256 });
    seen.length = 0;
    expect((await forwarder.handle({ ...ping, path: '/ex01.contoso.com//evil.example/ping' })).status).toBe(
      200,
    );
    expect(seen.map((incoming) => incoming.path)).toEqual(['/evil.example/ping']);
    forwarder.close();
  });

  it("an agent restarted on its port: the hub's kept-alive connection to it is dead, and the request goes through on a new one", async () => {
    const first = await agent(agentTls);
    const forwarder = hub({ url: first.url, certificateSha256: first.certificateSha256 });
    expect((await forwarder.handle(ping)).status).toBe(200);
    await first.close();
    const port = Number(new URL(first.url).port);
    const restarted = await startSiteLinkListener({
      host: '127.0.0.1',
      port,
      certificatePem: agentTls.certificatePem,
      privateKeyPem: agentTls.privateKeyPem,
      secret,
      relayPath: 'ex01.contoso.com',
      handler: agentHandler,
    });
    listeners.push(restarted);
    seen.length = 0;
    expect(answer(await forwarder.handle(ping))).toMatchObject({ status: 200 });
    expect(seen).toHaveLength(1);
    expect(forwarder.logger.named('HubForwardFailed')).toEqual([]);
    forwarder.close();
  });

  it('an agent showing another certificate than the pinned one gets nothing: 503 AgentUnreachable naming both', async () => {
    const impostor = await agent(otherTls);
    const forwarder = hub({ url: impostor.url, certificateSha256: agentTls.certificate.fingerprint256 });
    seen.length = 0;
    const reply = answer(await forwarder.handle(ping));
    expect(reply).toMatchObject({
      status: 503,
      json: { error: 'AgentUnreachable', detail: expect.stringContaining('CERT_PIN_MISMATCH') },
    });
    expect(seen).toEqual([]);
    forwarder.close();
  });

  it('an agent with another site secret refuses the hub; the hub answers 503 AgentUnreachable, and the agent did nothing', async () => {
    const listener = await agent(agentTls, randomBytes(32));
    const forwarder = hub({ url: listener.url, certificateSha256: listener.certificateSha256 });
    seen.length = 0;
    expect(answer(await forwarder.handle(ping))).toMatchObject({
      status: 503,
      json: { error: 'AgentUnreachable', detail: expect.stringContaining('HubSignatureBadSignature') },
    });
    expect(seen).toEqual([]);
    forwarder.close();
  });

  it('an agent that does not answer within the forward deadline: 503 AgentTimeout', async () => {
    const listener = await agent(agentTls);
    const forwarder = hub({ url: listener.url, certificateSha256: listener.certificateSha256 }, 1000);
    hold = gate();
    try {
      expect(answer(await forwarder.handle(ping))).toMatchObject({
        status: 503,
        json: {
          error: 'AgentTimeout',
          detail:
            'hub hub1 of site Amsterdam could not get an answer from ex01.contoso.com at ' +
            listener.url +
            ': no answer within 1000 ms',
        },
      });
    } finally {
      hold.open();
      hold = undefined;
      forwarder.close();
    }
  });

  it.each([
    { name: 'another server', path: '/ex02.contoso.com/ping' },
    { name: 'no server at all', path: '/' },
  ])('a request for $name is refused 404 NotBehindThisHub', async ({ path }) => {
    const forwarder = hub({ url: 'https://127.0.0.1:1', certificateSha256: 'AA'.repeat(32) });
    const reply = answer(await forwarder.handle({ ...ping, path }));
    expect(reply).toMatchObject({ status: 404, json: { error: 'NotBehindThisHub' } });
    expect(forwarder.logger.named('HubRefused')).toHaveLength(1);
  });

  it('an unsigned request straight to the agent on the LAN is refused 401', async () => {
    const listener = await agent(agentTls);
    seen.length = 0;
    const status = await new Promise<number>((resolve, reject) => {
      https
        .request(`${listener.url}/apply`, { method: 'POST', rejectUnauthorized: false }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        })
        .on('error', reject)
        .end('{}');
    });
    expect(status).toBe(401);
    expect(seen).toEqual([]);
  });
});

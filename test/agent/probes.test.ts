import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, LookupFunction } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultHealthEndpoints, Prober } from '../../lib/agent/probes.js';
import { issueCertificate, type IssuedCertificate } from '../../lib/package/dev-pki.js';
import { manualTimers } from '../helpers/clock.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The prober against real loopback servers: plain HTTP, and HTTPS with self-signed certificates
 * for localhost, for the server's own name, and for some other name.
 */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

const seen: Seen[] = [];
const hanging = new Set<http.ServerResponse>();

function answer(request: http.IncomingMessage, response: http.ServerResponse): void {
  seen.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers });
  const path = (request.url ?? '').replace(/^\/ex01/, '');
  if (path.startsWith('/owa/')) return void response.writeHead(200).end('200 OK');
  if (path.startsWith('/ecp/')) return void response.writeHead(503).end('Service Unavailable');
  if (path.startsWith('/ews/')) return void hanging.add(response);
  if (path.startsWith('/mapi/')) return void request.socket.destroy();
  response.writeHead(404).end();
}

async function listen(server: http.Server | https.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Resolves every name to loopback, as if DNS pointed it here. */
const toLoopback: LookupFunction = (_hostname, options, callback) => {
  if (typeof options === 'object' && options.all)
    (callback as unknown as (error: null, addresses: { address: string; family: number }[]) => void)(null, [
      { address: '127.0.0.1', family: 4 },
    ]);
  else callback(null, '127.0.0.1', 4);
};

let plain: http.Server;
let plainPort: number;
const tlsServers: Record<string, { server: https.Server; port: number; certificate: IssuedCertificate }> = {};

beforeAll(async () => {
  plain = http.createServer(answer);
  plainPort = await listen(plain);
  for (const name of ['localhost', 'ex01.contoso.com', 'evil.example', 'other.contoso.com']) {
    const certificate = await issueCertificate({ subjectCn: name });
    const server = https.createServer(
      { key: certificate.privateKeyPem, cert: certificate.certificatePem },
      answer,
    );
    tlsServers[name] = { server, port: await listen(server), certificate };
  }
});

afterAll(async () => {
  for (const response of hanging) response.socket?.destroy();
  for (const server of [plain, ...Object.values(tlsServers).map((entry) => entry.server)]) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const endpoints = [
  '/owa/healthcheck.htm',
  '/ecp/healthcheck.htm',
  '/ews/healthcheck.htm',
  '/mapi/healthcheck.htm',
];

describe('health', () => {
  it('200 is healthy; 503, a hang (after the timeout) and a reset connection are not, each saying why', async () => {
    // The hang's timeout fires when the test says, once the other three have their answers: however
    // slow the machine, the reset is seen as a reset, not overtaken by a timeout.
    const timers = manualTimers();
    const prober = new Prober({
      baseUrl: `http://127.0.0.1:${plainPort}`,
      ownNames: ['ex01.contoso.com'],
      endpoints,
      timeoutInMs: 300,
      timers,
    });
    const before = seen.length;
    const health = prober.health();
    const [hang] = await waitFor(
      'all four requests sent and all but the hung one answered',
      () => seen.length === before + 4 && timers.pending.length === 1 && timers.pending,
    );
    expect(hang!.delayMs).toBe(300);
    hang!.fire();
    expect(await health).toEqual([
      { endpoint: '/owa/healthcheck.htm', healthy: true, detail: '200' },
      { endpoint: '/ecp/healthcheck.htm', healthy: false, detail: '503' },
      { endpoint: '/ews/healthcheck.htm', healthy: false, detail: 'timeout after 300 ms' },
      {
        endpoint: '/mapi/healthcheck.htm',
        healthy: false,
        detail: 'aborted (connection reset without an answer)',
      },
    ]);
  });

  it('keeps the base URL path as a prefix (one simulated front end serves many servers)', async () => {
    const prober = new Prober({
      baseUrl: `http://127.0.0.1:${plainPort}/ex01/`,
      ownNames: ['ex01'],
      endpoints: ['/owa/healthcheck.htm'],
    });
    expect(await prober.health()).toEqual([
      { endpoint: '/owa/healthcheck.htm', healthy: true, detail: '200' },
    ]);
    expect(seen.at(-1)?.url).toBe('/ex01/owa/healthcheck.htm');
  });

  it('nothing listening: unhealthy, connection refused', async () => {
    const closed = http.createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const prober = new Prober({
      baseUrl: `http://127.0.0.1:${port}`,
      ownNames: ['ex01'],
      endpoints: ['/owa/healthcheck.htm'],
    });
    expect(await prober.health()).toEqual([
      { endpoint: '/owa/healthcheck.htm', healthy: false, detail: 'connection refused' },
    ]);
  });

  it('probes the nine Exchange endpoints by default', () => {
    const prober = new Prober({ baseUrl: 'https://ex01.contoso.com', ownNames: ['ex01.contoso.com'] });
    expect(prober.endpoints).toEqual(defaultHealthEndpoints);
    expect(prober.endpoints).toHaveLength(9);
  });

  it('a round ends at its deadline however many requests hang: those not yet sent are not sent', async () => {
    const prober = new Prober({
      baseUrl: `http://127.0.0.1:${plainPort}`,
      ownNames: ['ex01'],
      endpoints: Array.from({ length: 6 }, () => '/ews/healthcheck.htm'),
      timeoutInMs: 5000,
      roundDeadlineInMs: 400,
      concurrency: 2,
    });
    // The requests hang for good: the details, not a stopwatch, show the round deadline (400 ms) ended it, not the 5 s probe timeout.
    const health = await prober.health();
    expect(health.every((endpoint) => !endpoint.healthy)).toBe(true);
    expect(health.slice(0, 2).map((endpoint) => endpoint.detail)).toEqual(
      Array.from({ length: 2 }, () => "timeout: the probe round's 400 ms deadline passed"),
    );
    expect(health.slice(2).map((endpoint) => endpoint.detail)).toEqual(
      Array.from({ length: 4 }, () => "not sent: the probe round's 400 ms deadline passed"),
    );
  });
});

describe('probe requests', () => {
  it('sends method, headers and cookie as given', async () => {
    const prober = new Prober({ baseUrl: `http://127.0.0.1:${plainPort}`, ownNames: ['ex01'] });
    const answer = await prober.send({
      method: 'POST',
      path: '/owa/x?a=%2F&b=1',
      headers: [{ name: 'X-Probe', value: 'yes' }],
      cookie: 'a=b',
    });
    expect(answer).toEqual({ kind: 'response', status: 200 });
    expect(seen.at(-1)).toMatchObject({
      method: 'POST',
      url: '/owa/x?a=%2F&b=1',
      headers: { 'x-probe': 'yes', cookie: 'a=b' },
    });
  });

  it('a connection closed without an answer is "aborted" (what AbortRequest does)', async () => {
    const prober = new Prober({ baseUrl: `http://127.0.0.1:${plainPort}`, ownNames: ['ex01'] });
    expect(await prober.send({ method: 'GET', path: '/mapi/' })).toEqual({
      kind: 'aborted',
      detail: 'connection reset without an answer',
    });
  });
});

describe('TLS: checks relaxed only for the server itself', () => {
  const probe = (baseUrl: string): Promise<unknown> =>
    new Prober({
      baseUrl,
      ownNames: ['ex01.contoso.com'],
      endpoints: ['/owa/healthcheck.htm'],
      lookup: toLoopback,
      timeoutInMs: 3000,
    }).health();

  it('localhost by address, with a self-signed certificate for localhost: accepted', async () => {
    expect(await probe(`https://127.0.0.1:${tlsServers.localhost!.port}`)).toEqual([
      { endpoint: '/owa/healthcheck.htm', healthy: true, detail: '200' },
    ]);
  });

  it('the server by its own name, with its own self-signed certificate: accepted', async () => {
    expect(await probe(`https://ex01.contoso.com:${tlsServers['ex01.contoso.com']!.port}`)).toEqual([
      { endpoint: '/owa/healthcheck.htm', healthy: true, detail: '200' },
    ]);
    expect(await probe(`https://EX01:${tlsServers['ex01.contoso.com']!.port}`)).toEqual([
      { endpoint: '/owa/healthcheck.htm', healthy: true, detail: '200' },
    ]);
  });

  it('the server itself presenting a certificate for another name: refused, even relaxed', async () => {
    const [health] = (await probe(`https://127.0.0.1:${tlsServers['evil.example']!.port}`)) as {
      healthy: boolean;
      detail: string;
    }[];
    expect(health).toMatchObject({
      healthy: false,
      detail: expect.stringMatching(/^certificate for CN=evil\.example, not this server/),
    });
  });

  it('another host keeps full verification: its self-signed certificate is refused though the name matches', async () => {
    const prober = new Prober({
      baseUrl: `https://other.contoso.com:${tlsServers['other.contoso.com']!.port}`,
      ownNames: ['ex01.contoso.com'],
      endpoints: ['/owa/healthcheck.htm'],
      lookup: toLoopback,
    });
    expect(prober.relaxedTls).toBe(false);
    const [health] = await prober.health();
    expect(health).toMatchObject({
      healthy: false,
      detail: expect.stringMatching(/^certificate: .*self[- ]signed/i),
    });
  });

  it.each([
    ['https://ex01.contoso.com', true],
    ['https://ex01', true],
    ['https://localhost:444', true],
    ['https://127.0.0.2', true],
    ['https://[::1]:8443', true],
    ['https://ex01.contoso.com.evil.example', false],
    ['https://ex02.contoso.com', false],
    ['https://10.0.0.5', false],
    ['http://127.0.0.1', false],
  ])('%s relaxed: %s', (baseUrl, relaxed) => {
    expect(new Prober({ baseUrl, ownNames: ['ex01.contoso.com'] }).relaxedTls).toBe(relaxed);
  });

  it.each(['ftp://ex01', 'https://ex01/?x=1', 'https://user:pass@ex01', 'not a url'])(
    'refuses base URL %s',
    (baseUrl) => {
      expect(() => new Prober({ baseUrl, ownNames: ['ex01'] })).toThrow();
    },
  );
});

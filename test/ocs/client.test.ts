import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '../../lib/package/dev-pki.js';
import { fetchFeed, OcsError, proxyFor } from '../../lib/ocs/client.js';

/** A feed on loopback whose behaviour each test picks by path. */
let feed: http.Server;
let base: string;
const body = '<EOCS version="1.0.4"/>';

beforeAll(async () => {
  feed = http.createServer((request, response) => {
    switch (request.url) {
      case '/feed':
        if (request.headers['if-none-match'] === '"v1"') {
          response.writeHead(304, { etag: '"v1"' }).end();
        } else {
          response
            .writeHead(200, {
              etag: '"v1"',
              'last-modified': 'Mon, 23 Nov 2026 10:00:00 GMT',
              'content-type': 'application/xml',
            })
            .end(body);
        }
        return;
      case '/error':
        response.writeHead(503, 'Service Unavailable').end('busy');
        return;
      case '/slow':
        response.writeHead(200);
        response.write('<EOCS');
        return; // never ends
      case '/big-declared':
        response.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
        response.write('x');
        return;
      case '/big-streamed': {
        response.writeHead(200);
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const write = (left: number): void => {
          if (left === 0 || response.destroyed) return void response.end();
          response.write(chunk, () => write(left - 1));
        };
        write(200);
        return;
      }
      default:
        response.writeHead(404).end();
    }
  });
  feed.listen(0, '127.0.0.1');
  await once(feed, 'listening');
  base = `http://127.0.0.1:${(feed.address() as AddressInfo).port}`;
});

afterAll(() => {
  feed.closeAllConnections();
  feed.close();
});

async function failure(promise: Promise<unknown>): Promise<OcsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(OcsError);
  return error as OcsError;
}

describe('fetchFeed', () => {
  it('fetches the body with its validators, then gets 304 with them', async () => {
    const first = await fetchFeed({ url: `${base}/feed`, proxy: null });
    expect(first).toMatchObject({
      kind: 'fetched',
      etag: '"v1"',
      lastModified: 'Mon, 23 Nov 2026 10:00:00 GMT',
    });
    expect(first.kind === 'fetched' && first.bytes.toString()).toBe(body);
    const second = await fetchFeed({ url: `${base}/feed`, etag: '"v1"', proxy: null });
    expect(second).toEqual({ kind: 'unchanged', etag: '"v1"' });
  });

  it('names an HTTP error status', async () => {
    const error = await failure(fetchFeed({ url: `${base}/error`, proxy: null }));
    expect(error.kind).toBe('HttpStatus');
    expect(error.message).toMatch(/HTTP 503 Service Unavailable/);
    expect(error.context['status']).toBe(503);
  });

  it('gives up at the deadline', async () => {
    // /slow never completes its answer: only the deadline ends the fetch.
    const error = await failure(fetchFeed({ url: `${base}/slow`, timeoutInMs: 300, proxy: null }));
    expect(error.kind).toBe('Timeout');
    expect(error.message).toContain('300 ms');
  });

  it('refuses a body over the cap, declared or streamed', async () => {
    expect((await failure(fetchFeed({ url: `${base}/big-declared`, proxy: null }))).kind).toBe('TooLarge');
    const streamed = await failure(
      fetchFeed({ url: `${base}/big-streamed`, maxBytes: 256 * 1024, proxy: null }),
    );
    expect(streamed.kind).toBe('TooLarge');
    expect(streamed.message).toMatch(/exceeds 262144 bytes/);
  });

  it('names a DNS failure', async () => {
    const error = await failure(
      fetchFeed({ url: 'https://emfleet-test.invalid/feed', proxy: null, timeoutInMs: 10_000 }),
    );
    expect(error.kind).toBe('Dns');
  });

  it('names a TLS failure', async () => {
    const certificate = await issueCertificate({ subjectCn: 'untrusted.local', ca: true });
    const server = https.createServer(
      { cert: certificate.certificatePem, key: certificate.privateKeyPem },
      (_request, response) => response.end(body),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const error = await failure(
        fetchFeed({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/feed`, proxy: null }),
      );
      expect(error.kind).toBe('Tls');
    } finally {
      server.close();
    }
  });

  it('goes through the proxy from HTTPS_PROXY and names a dead proxy', async () => {
    const tunnels: string[] = [];
    const proxy = net.createServer((client) => {
      client.once('data', (head) => {
        const [, target] = /^CONNECT ([^ ]+) HTTP/.exec(head.toString()) ?? [];
        if (!target) return void client.destroy();
        tunnels.push(target);
        const [host, port] = target.split(':');
        const upstream = net.connect(Number(port), host!, () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          upstream.pipe(client).pipe(upstream);
        });
        upstream.on('error', () => client.destroy());
      });
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const result = await fetchFeed({ url: `${base}/feed`, environment: { HTTP_PROXY: proxyUrl } });
      expect(result.kind).toBe('fetched');
      expect(tunnels).toEqual([new URL(base).host]);
    } finally {
      proxy.close();
    }
    const dead = await failure(
      fetchFeed({
        url: `${base}/feed`,
        environment: { HTTP_PROXY: 'http://127.0.0.1:9' },
        timeoutInMs: 5_000,
      }),
    );
    expect(dead.message).toMatch(/via proxy http:\/\/127\.0\.0\.1:9|through proxy/);
  });
});

describe('proxyFor', () => {
  it.each([
    {
      name: 'https uses HTTPS_PROXY',
      url: 'https://officeclient.microsoft.com/x',
      env: { HTTPS_PROXY: 'http://proxy:8080' },
      expected: 'http://proxy:8080',
    },
    {
      name: 'lower-case names work',
      url: 'https://officeclient.microsoft.com/x',
      env: { https_proxy: 'http://proxy:8080' },
      expected: 'http://proxy:8080',
    },
    {
      name: 'NO_PROXY by domain suffix',
      url: 'https://officeclient.microsoft.com/x',
      env: { HTTPS_PROXY: 'http://proxy:8080', NO_PROXY: 'localhost,.microsoft.com' },
      expected: null,
    },
    {
      name: 'NO_PROXY exact host',
      url: 'https://feed.contoso.com/x',
      env: { HTTPS_PROXY: 'http://proxy:8080', NO_PROXY: 'feed.contoso.com' },
      expected: null,
    },
    {
      name: 'NO_PROXY does not match a longer name',
      url: 'https://notcontoso.com/x',
      env: { HTTPS_PROXY: 'http://proxy:8080', NO_PROXY: 'contoso.com' },
      expected: 'http://proxy:8080',
    },
    { name: 'no proxy set', url: 'https://officeclient.microsoft.com/x', env: {}, expected: null },
  ])('$name', ({ url, env, expected }) => {
    expect(proxyFor(new URL(url), env)).toBe(expected);
  });
});

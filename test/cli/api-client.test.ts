import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** A stand-in function app: answers each request with the status and body queued for it. */
let answer: { status: number; type: string; body: string } = { status: 200, type: 'text/plain', body: '' };
let server: http.Server;
let apiUrl: string;

beforeAll(async () => {
  server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () =>
      response.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const fromCloud = () => runCli(['test-connectivity', '--from-cloud', '--api-url', apiUrl, '--api-key', 'k']);

describe('the CLI against the admin API: a problem is one line on stderr with its catalogue code', () => {
  it('says the API’s code and detail, `emfleet: <Code>: <detail>`, on stderr only, exit 1', async () => {
    answer = {
      status: 403,
      type: 'application/json',
      body: JSON.stringify({
        code: 'Forbidden',
        detail: 'rita@contoso.com needs the app role emfleet.Operator',
      }),
    };
    const run = await fromCloud();
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      `emfleet: Forbidden: rita@contoso.com needs the app role emfleet.Operator (POST ${apiUrl}/api/connectivity answered 403)`,
    ]);
  });

  it('an answer that is not the API’s problem JSON (a proxy’s page) is AdminApiFailed with what came back', async () => {
    answer = { status: 502, type: 'text/html', body: '<html>Bad Gateway</html>' };
    const run = await fromCloud();
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^emfleet: AdminApiFailed: POST \S+ answered 502: <html>Bad Gateway<\/html>\n$/,
    );
  });
});

import {
  HttpResponse,
  input,
  output,
  type HttpFunctionOptions,
  type HttpRequest,
  type InvocationContext,
  type TimerFunctionOptions,
} from '@azure/functions';
import { describe, expect, it } from 'vitest';
import type { FunctionDefinition } from '../../../lib/functions.js';
import {
  httpRoute,
  keyMatches,
  matchRoute,
  serializeCookie,
  type Route,
} from '../../../lib/local/host/http.js';
import { start, useLocalHosts, yearly } from './fixture.js';

/** HTTP triggers: the pure routing first, then requests to a host on loopback. */

useLocalHosts();

/** Handlers may return what the type forbids (nothing), to see what the host makes of it. */
const httpFunction = (
  name: string,
  options: Omit<HttpFunctionOptions, 'handler'> & {
    handler: (request: HttpRequest, context: InvocationContext) => unknown;
  },
): FunctionDefinition => ({ kind: 'http', name, options: options as HttpFunctionOptions });

const routeOf = (name: string, options: Omit<HttpFunctionOptions, 'handler'> = {}): Route =>
  httpRoute(
    httpFunction(name, { ...options, handler: () => undefined }) as Extract<
      FunctionDefinition,
      { kind: 'http' }
    >,
  );

describe('httpRoute', () => {
  it.each([
    {
      name: 'no route: the function name, with the library defaults',
      function: 'status',
      options: {},
      template: 'status',
      methods: ['GET', 'POST'],
      authLevel: 'anonymous',
    },
    {
      name: 'slashes trimmed, parameters kept',
      function: 'action',
      options: { route: '/rollouts/{id}/{action}/', methods: ['POST'], authLevel: 'function' },
      template: 'rollouts/{id}/{action}',
      methods: ['POST'],
      authLevel: 'function',
    },
    {
      name: 'optional trailing parameter',
      function: 'rollout',
      options: { route: 'rollouts/{id}/{view?}', methods: ['GET'] },
      template: 'rollouts/{id}/{view?}',
      methods: ['GET'],
      authLevel: 'anonymous',
    },
  ] as const)('$name', ({ function: name, options, template, methods, authLevel }) => {
    const route = routeOf(name, options as Omit<HttpFunctionOptions, 'handler'>);
    expect({ template: route.template, methods: route.methods, authLevel: route.authLevel }).toEqual({
      template,
      methods,
      authLevel,
    });
  });

  it.each([
    {
      name: 'catch-all',
      route: 'files/{*path}',
      error: /route segment "\{\*path\}" uses a template feature/,
    },
    { name: 'constraint', route: 'items/{id:int}', error: /route segment "\{id:int\}"/ },
    { name: 'partly literal', route: 'items/x{id}', error: /route segment "x\{id\}"/ },
    {
      name: 'optional first',
      route: 'items/{id?}/history',
      error: /optional route parameters must come last/,
    },
  ])('refuses a $name route ($route)', ({ route, error }) => {
    expect(() => routeOf('bad', { route })).toThrow(error);
  });
});

describe('matchRoute', () => {
  const routes = [
    routeOf('status', { methods: ['GET'] }),
    routeOf('rolloutAction', { methods: ['POST'], route: 'rollouts/{id}/{action}' }),
    routeOf('rolloutPlan', { methods: ['POST'], route: 'rollouts/plan/{action}' }),
    routeOf('rollout', { methods: ['GET'], route: 'rollouts/{id}/{view?}' }),
  ];

  it.each([
    { name: 'a literal route', method: 'GET', path: '/api/status', match: 'status', params: {} },
    { name: 'case-insensitive literals', method: 'GET', path: '/API/Status', match: 'status', params: {} },
    { name: 'repeated slashes', method: 'GET', path: '//api//status/', match: 'status', params: {} },
    {
      name: 'parameters, decoded',
      method: 'POST',
      path: '/api/rollouts/r%201/pause',
      match: 'rolloutAction',
      params: { id: 'r 1', action: 'pause' },
    },
    {
      name: 'literal segments before parameters',
      method: 'POST',
      path: '/api/rollouts/plan/apply',
      match: 'rolloutPlan',
      params: { action: 'apply' },
    },
    {
      name: 'optional parameter absent',
      method: 'GET',
      path: '/api/rollouts/r1',
      match: 'rollout',
      params: { id: 'r1' },
    },
    {
      name: 'optional parameter present',
      method: 'GET',
      path: '/api/rollouts/r1/waves',
      match: 'rollout',
      params: { id: 'r1', view: 'waves' },
    },
    {
      name: 'a known route with another method',
      method: 'POST',
      path: '/api/status',
      match: undefined,
      params: undefined,
    },
    { name: 'outside /api', method: 'GET', path: '/status', match: undefined, params: undefined },
    {
      name: 'too many segments',
      method: 'GET',
      path: '/api/status/more',
      match: undefined,
      params: undefined,
    },
    {
      name: 'a required parameter missing',
      method: 'POST',
      path: '/api/rollouts/r1',
      match: undefined,
      params: undefined,
    },
    {
      name: 'bad percent-encoding',
      method: 'GET',
      path: '/api/rollouts/%E0%A4%A',
      match: undefined,
      params: undefined,
    },
  ])('$name: $method $path', ({ method, path, match, params }) => {
    const found = matchRoute(routes, path, method);
    expect(found && { match: found.route.definition.name, params: found.params }).toEqual(
      match === undefined ? undefined : { match, params },
    );
  });
});

describe('keyMatches', () => {
  it.each([
    { name: 'the key', given: 'k3y', matches: true },
    { name: 'another key of the same length', given: 'k3z', matches: false },
    { name: 'a prefix', given: 'k3', matches: false },
    { name: 'no key', given: undefined, matches: false },
    { name: 'null (no ?code=)', given: null, matches: false },
    { name: 'a repeated header', given: ['k3y', 'k3y'], matches: false },
  ])('$name: $matches', ({ given, matches }) => {
    expect(keyMatches(given, 'k3y')).toBe(matches);
  });
});

describe('serializeCookie', () => {
  it.each([
    { name: 'name and value', cookie: { name: 'a', value: '1' }, header: 'a=1' },
    {
      name: 'every attribute, in order',
      cookie: {
        name: 'seen',
        value: '1',
        domain: 'example.com',
        path: '/',
        expires: Date.UTC(2030, 0, 1),
        maxAge: 60,
        secure: true,
        httpOnly: true,
        sameSite: 'Strict' as const,
      },
      header:
        'seen=1; Domain=example.com; Path=/; Expires=Tue, 01 Jan 2030 00:00:00 GMT; Max-Age=60; Secure; HttpOnly; SameSite=Strict',
    },
  ])('$name', ({ cookie, header }) => {
    expect(serializeCookie(cookie)).toBe(header);
  });
});

describe('HTTP triggers', () => {
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

import { randomUUID, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import functions, { type Cookie, type FunctionTrigger, type HttpMethod } from '@azure/functions';
import { definedOnly } from '../../defined.js';
import type { FunctionDefinition } from '../../functions.js';
import { redactUrl } from '../../log.js';
import { errorText, invocationContext, track, type HostRuntime } from './runtime.js';

// @azure/functions is CommonJS whose exports Node cannot name statically: import the whole module.
const { HttpRequest, HttpResponse, trigger } = functions;

/** HTTP triggers on a loopback port, under /api, with the function key checked as the real host does. */

export type RouteSegment =
  | { readonly literal: string }
  | { readonly param: string; readonly optional: boolean };

export interface Route {
  readonly definition: Extract<FunctionDefinition, { kind: 'http' }>;
  /** Without leading or trailing slashes; the function's name when it declares no route. */
  readonly template: string;
  readonly segments: readonly RouteSegment[];
  readonly methods: readonly HttpMethod[];
  readonly authLevel: 'anonymous' | 'function' | 'admin';
  readonly trigger: FunctionTrigger;
}

/** An HTTP function's route, checked: only `{name}` and trailing `{name?}` parameters. */
export function httpRoute(definition: Extract<FunctionDefinition, { kind: 'http' }>): Route {
  // The library's own trigger builder supplies the defaults the real host gets (authLevel, methods).
  const effective = trigger.http(
    definedOnly({
      authLevel: definition.options.authLevel,
      methods: definition.options.methods,
      route: definition.options.route,
    }),
  );
  const template = (definition.options.route ?? definition.name).replace(/^\/+|\/+$/g, '');
  const segments: RouteSegment[] =
    template === ''
      ? []
      : template.split('/').map((segment) => {
          const param = /^\{([A-Za-z_][A-Za-z0-9_]*)(\?)?\}$/.exec(segment);
          if (param) return { param: param[1]!, optional: param[2] === '?' };
          if (/[{}]/.test(segment))
            throw new Error(
              `function ${definition.name}: route segment "${segment}" uses a template feature the local host does not support (only {name} and {name?})`,
            );
          return { literal: segment };
        });
  const firstOptional = segments.findIndex((segment) => 'param' in segment && segment.optional);
  if (
    firstOptional >= 0 &&
    segments.slice(firstOptional).some((segment) => !('param' in segment && segment.optional))
  )
    throw new Error(`function ${definition.name}: optional route parameters must come last`);
  return {
    definition,
    template,
    segments,
    methods: effective.methods.map((method) => method.toUpperCase() as HttpMethod),
    authLevel: effective.authLevel,
    trigger: effective,
  };
}

/**
 * The route for a request, with its parameters decoded. Routes live under the host's default
 * prefix, /api (emfleet sets no extensions.http.routePrefix); a known route with another method
 * does not match, as in the real host.
 */
export function matchRoute<R extends Pick<Route, 'segments' | 'methods'>>(
  routes: readonly R[],
  pathname: string,
  method: string,
): { route: R; params: Record<string, string> } | undefined {
  const [prefix, ...path] = pathname.split('/').filter((segment) => segment !== '');
  if (prefix?.toLowerCase() !== 'api') return undefined;
  let best: { route: R; params: Record<string, string>; literals: number } | undefined;
  for (const route of routes) {
    if (!route.methods.includes(method as HttpMethod) || path.length > route.segments.length) continue;
    const params: Record<string, string> = {};
    let literals = 0;
    const matched = route.segments.every((segment, index) => {
      const actual = path[index];
      if ('literal' in segment) {
        literals += 1;
        return actual !== undefined && actual.toLowerCase() === segment.literal.toLowerCase();
      }
      if (actual === undefined) return segment.optional;
      try {
        params[segment.param] = decodeURIComponent(actual);
      } catch {
        return false;
      }
      return true;
    });
    // As in ASP.NET routing, literal segments take precedence over parameters (rollouts/plan before rollouts/{id}).
    if (matched && (!best || literals > best.literals)) best = { route, params, literals };
  }
  return best && { route: best.route, params: best.params };
}

/** The `x-functions-key` header or `?code=` against the host's key, in constant time. */
export function keyMatches(given: string | string[] | null | undefined, key: string): boolean {
  if (typeof given !== 'string') return false;
  const [a, b] = [Buffer.from(given), Buffer.from(key)];
  return a.length === b.length && timingSafeEqual(a, b);
}

export function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.secure) parts.push('Secure');
  if (cookie.httpOnly) parts.push('HttpOnly');
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join('; ');
}

export interface HttpListener {
  /** The origin (`http://127.0.0.1:port`). */
  readonly origin: string;
  readonly server: http.Server;
}

/** Listens on 127.0.0.1 (`port` 0 takes a free one) and serves the routes; each request is tracked work. */
export async function listenHttp(
  runtime: HostRuntime,
  routes: readonly Route[],
  functionKey: string,
  port: number,
): Promise<HttpListener> {
  let origin = '';
  const server = http.createServer((incoming, outgoing) => {
    void track(
      runtime,
      serveRequest(runtime, { routes, functionKey, origin }, incoming, outgoing).catch((error: unknown) => {
        runtime.logger.error('HttpRequestFailed', {
          path: redactUrl(incoming.url ?? ''),
          error: errorText(error),
        });
        if (!outgoing.headersSent) outgoing.writeHead(500);
        outgoing.end();
      }),
    );
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, server };
}

async function serveRequest(
  runtime: HostRuntime,
  site: { readonly routes: readonly Route[]; readonly functionKey: string; readonly origin: string },
  incoming: http.IncomingMessage,
  outgoing: http.ServerResponse,
): Promise<void> {
  const { logger } = runtime;
  const url = new URL(incoming.url ?? '/', site.origin);
  const method = (incoming.method ?? 'GET').toUpperCase();
  const match = matchRoute(site.routes, url.pathname, method);
  // A known route with another method is a 404 too: the real host matches routes with their methods.
  if (!match) return void outgoing.writeHead(404).end();
  const { route, params } = match;
  if (
    route.authLevel !== 'anonymous' &&
    !keyMatches(incoming.headers['x-functions-key'] ?? url.searchParams.get('code'), site.functionKey)
  )
    return void outgoing.writeHead(401).end();
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming.headers))
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  // GET and HEAD carry no body in fetch's Request, which HttpRequest wraps.
  const request = new HttpRequest({
    method,
    url: url.href,
    headers,
    params,
    ...(body.length > 0 && method !== 'GET' && method !== 'HEAD' ? { body: { bytes: body } } : {}),
  });
  const invocationId = randomUUID();
  const fields = {
    functionName: route.definition.name,
    invocationId,
    trigger: 'http',
    method,
    path: url.pathname,
  };
  logger.info('InvocationStarted', fields);
  const startedMs = Date.now();
  let result: unknown;
  try {
    result = await route.definition.options.handler(
      request,
      invocationContext(logger, route.definition, invocationId, route.trigger),
    );
    if (result !== undefined && result !== null && typeof result !== 'object')
      throw new TypeError('the HTTP response must be an HttpResponseInit or HttpResponse object');
  } catch (error) {
    logger.error('InvocationFailed', {
      ...fields,
      durationMs: Date.now() - startedMs,
      error: errorText(error),
    });
    return void outgoing.writeHead(500).end();
  }
  if (result === undefined || result === null) {
    logger.info('InvocationSucceeded', { ...fields, durationMs: Date.now() - startedMs, status: 204 });
    return void outgoing.writeHead(204).end();
  }
  const response = result instanceof HttpResponse ? result : new HttpResponse(result);
  const responseHeaders: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) if (name !== 'set-cookie') responseHeaders[name] = value;
  const cookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
  if (cookies.length > 0) responseHeaders['set-cookie'] = cookies;
  const responseBody = Buffer.from(await response.arrayBuffer());
  logger.info('InvocationSucceeded', {
    ...fields,
    durationMs: Date.now() - startedMs,
    status: response.status,
  });
  outgoing.writeHead(response.status, responseHeaders).end(responseBody);
}

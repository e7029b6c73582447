import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readSimulatedServer, defaultSimulatedServer, type SimulatedServer } from './simulated.js';
import { effectiveRules, evaluateInbound, RewriteRuleError } from '../../iis/rewrite.js';
import { defaultIisSite } from '../../package/format.js';

/**
 * The Exchange front end (the "Default Web Site") of simulated servers, for local runs and tests:
 * the agents probe it over real HTTP exactly as they probe a real server. Each request reads the
 * server's simulated model (the file its SimulatedApplier writes; parsed again only when the file
 * changed), so what a mitigation changes shows at once:
 *
 * 1. W3SVC stopped: the connection is closed without an answer (IIS is not listening).
 * 2. The app pool behind the URL stopped (or a service it needs stopped): 503, as http.sys answers
 *    for a stopped pool.
 * 3. The site's inbound URL Rewrite rules, evaluated as IIS does (lib/iis/rewrite.ts):
 *    AbortRequest closes the connection, CustomResponse answers its status, Redirect its status
 *    and Location; a rule IIS would refuse makes every request 500.52, as IIS does.
 * 4. Otherwise the protocol answers: `healthcheck.htm` 200 "200 OK", anything else under the
 *    virtual directory 200; paths outside every virtual directory 404.
 */

/** A protocol's virtual directory on the front end and what must run for it to answer. */
export interface FrontEndProtocol {
  readonly virtualDirectory: string;
  readonly appPool: string;
  readonly services: readonly string[];
}

/**
 * Which app pool serves which health endpoint, as Exchange 2016/2019 set up the front end. Every
 * protocol needs IIS (W3SVC); none needs MSExchangeUM, MSExchangeIS or the transport services:
 * healthcheck.htm is answered by the protocol's front end without a trip to the mailbox.
 */
export const frontEndProtocols: readonly FrontEndProtocol[] = [
  { virtualDirectory: '/owa', appPool: 'MSExchangeOWAAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/ecp', appPool: 'MSExchangeECPAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/ews', appPool: 'MSExchangeServicesAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/Autodiscover', appPool: 'MSExchangeAutodiscoverAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/mapi', appPool: 'MSExchangeMapiFrontEndAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/Microsoft-Server-ActiveSync', appPool: 'MSExchangeSyncAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/oab', appPool: 'MSExchangeOABAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/rpc', appPool: 'MSExchangeRpcProxyFrontEndAppPool', services: ['W3SVC'] },
  { virtualDirectory: '/powershell', appPool: 'MSExchangePowerShellFrontEndAppPool', services: ['W3SVC'] },
];

/**
 * Extra dependencies of one simulated server, by virtual directory: a server where stopping
 * something takes down more than a mitigation declares (a "broken" server for `npm start --break`).
 */
export type Couplings = Readonly<
  Record<
    string,
    { readonly appPools?: readonly string[] | undefined; readonly services?: readonly string[] | undefined }
  >
>;

/** The `--break` server: stopping the OWA pool (EM2, which declares only OWA down) also takes ECP down. */
export const owaPoolTakesDownEcp: Couplings = { '/ecp': { appPools: ['MSExchangeOWAAppPool'] } };

export interface SimulatedFrontEnd {
  /** The URL path segment this server is served under (e.g. its short name): letters, digits, . _ - */
  readonly name: string;
  /** The SimulatedApplier's state file of this server. */
  readonly stateFile: string;
  /** The server's own name, as its health pages say. */
  readonly server?: string;
  readonly couplings?: Couplings;
}

export interface SimulatedExchange {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Serves one server's front end; returns the base URL its agent probes (`probes.baseUrl`). */
  add(frontEnd: SimulatedFrontEnd): string;
  remove(name: string): void;
  stop(): Promise<void>;
}

/**
 * One loopback HTTP listener serving the front ends of many simulated servers, each under `/<name>`.
 * `unref`: do not keep the process alive for it (a test file's shared front end).
 */
export async function startSimulatedExchange(
  options: { port?: number; unref?: boolean } = {},
): Promise<SimulatedExchange> {
  const frontEnds = new Map<string, SimulatedFrontEnd>();
  const server = http.createServer((request, response) => {
    void serve(frontEnds, request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500).end('simulated front end error');
    });
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  if (options.unref) server.unref();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    add: (frontEnd) => {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(frontEnd.name))
        throw new TypeError(`simulated front end name "${frontEnd.name}" must be letters, digits, . _ -`);
      frontEnds.set(frontEnd.name.toLowerCase(), frontEnd);
      return `${url}/${frontEnd.name}`;
    },
    remove: (name) => void frontEnds.delete(name.toLowerCase()),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function serve(
  frontEnds: ReadonlyMap<string, SimulatedFrontEnd>,
  request: http.IncomingMessage,
  response: http.ServerResponse,
): Promise<void> {
  const raw = request.url ?? '/';
  const match = /^\/([^/?]+)(.*)$/.exec(raw);
  const frontEnd = match ? frontEnds.get(match[1]!.toLowerCase()) : undefined;
  if (!match || !frontEnd) return void response.writeHead(404).end('no such simulated server');
  const url = match[2]!.startsWith('/') ? match[2]! : `/${match[2]!}`;
  const state = (await readSimulatedServer(frontEnd.stateFile)) ?? defaultSimulatedServer();
  if (!running(state, 'W3SVC')) return void request.socket.destroy();
  const down = unavailable(state, frontEnd, url);
  if (down)
    return void response
      .writeHead(503, { 'content-type': 'text/plain' })
      .end(`Service Unavailable (${down})`);

  let verdict: ReturnType<typeof evaluateInbound>['verdict'];
  try {
    // The rules in force where the request lands: an application's web.config can clear or remove the site's.
    const site = state.sites[defaultIisSite];
    verdict = evaluateInbound(site ? effectiveRules(site, pathOf(url)) : [], {
      method: request.method ?? 'GET',
      url,
      headers: flatten(request.headers),
      serverVariables: { HTTPS: 'off' },
    }).verdict;
  } catch (error) {
    if (!(error instanceof RewriteRuleError)) throw error;
    return void response
      .writeHead(500, 'URL Rewrite Module Error.', { 'content-type': 'text/plain' })
      .end(`500.52 ${error.message}`);
  }
  switch (verdict.kind) {
    case 'aborted':
      return void request.socket.destroy();
    case 'customResponse':
      return void response
        .writeHead(verdict.statusCode, verdict.reason || undefined, { 'content-type': 'text/plain' })
        .end(`${verdict.statusCode}.${verdict.subStatusCode} ${verdict.reason}`);
    case 'redirected':
      return void response.writeHead(verdict.statusCode, { location: verdict.url }).end();
    case 'passed': {
      const rewrittenDown = unavailable(state, frontEnd, verdict.url);
      if (rewrittenDown) return void response.writeHead(503).end(`Service Unavailable (${rewrittenDown})`);
      const protocol = protocolOf(verdict.url);
      if (!protocol) return void response.writeHead(404).end();
      if (/\/healthcheck\.htm$/i.test(pathOf(verdict.url)))
        return void response
          .writeHead(200, { 'content-type': 'text/html' })
          .end(`200 OK<br/>${(frontEnd.server ?? frontEnd.name).toUpperCase()}`);
      return void response
        .writeHead(200, { 'content-type': 'text/html' })
        .end(`${protocol.virtualDirectory.slice(1)} on ${frontEnd.server ?? frontEnd.name}`);
    }
  }
}

/** Why the URL's protocol cannot answer (its pool or a service it needs is stopped), or undefined. */
function unavailable(state: SimulatedServer, frontEnd: SimulatedFrontEnd, url: string): string | undefined {
  const protocol = protocolOf(url);
  if (!protocol) return undefined;
  const coupled = Object.entries(frontEnd.couplings ?? {}).find(
    ([directory]) => directory.toLowerCase() === protocol.virtualDirectory.toLowerCase(),
  )?.[1];
  const pools = [protocol.appPool, ...(coupled?.appPools ?? [])];
  const services = [...protocol.services, ...(coupled?.services ?? [])];
  const pool = pools.find((name) => state.appPools[name]?.state !== 'Started');
  if (pool) return `app pool ${pool} is stopped`;
  const service = services.find((name) => !running(state, name));
  return service ? `service ${service} is stopped` : undefined;
}

function running(state: SimulatedServer, service: string): boolean {
  return state.services[service]?.status === 'Running';
}

function protocolOf(url: string): FrontEndProtocol | undefined {
  const first = pathOf(url).split('/')[1]?.toLowerCase() ?? '';
  return frontEndProtocols.find((protocol) => protocol.virtualDirectory.slice(1).toLowerCase() === first);
}

function pathOf(url: string): string {
  const question = url.indexOf('?');
  return question === -1 ? url : url.slice(0, question);
}

function flatten(headers: http.IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).flatMap(([name, value]) =>
      value === undefined ? [] : [[name, Array.isArray(value) ? value.join(', ') : value]],
    ),
  );
}

import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import { systemTimers, type Timers } from '../clock.js';
import { mapWithConcurrency } from '../concurrency.js';

/**
 * The Exchange health endpoints (2013 and later): each protocol's front end answers
 * `/<protocol>/healthcheck.htm` with 200 while it can serve, without authentication. Load
 * balancers use the same pages.
 */
export const defaultHealthEndpoints = [
  '/owa/healthcheck.htm',
  '/ecp/healthcheck.htm',
  '/ews/healthcheck.htm',
  '/Autodiscover/healthcheck.htm',
  '/mapi/healthcheck.htm',
  '/Microsoft-Server-ActiveSync/healthcheck.htm',
  '/oab/healthcheck.htm',
  '/rpc/healthcheck.htm',
  '/powershell/healthcheck.htm',
] as const;

export const defaultProbeTimeoutInMs = 5000;
/** A round (all health endpoints, or all of a rule's probes) ends by then, well within the agent's reply budget. */
export const defaultProbeRoundDeadlineInMs = 15_000;

/** One request to the server itself. */
export interface ProbeRequest {
  readonly method: string;
  /** Path and query as sent on the wire, relative to the base URL. */
  readonly path: string;
  readonly headers?: readonly { readonly name: string; readonly value: string }[];
  readonly cookie?: string;
}

/** What came back: a status, a connection closed without an answer (URL Rewrite's AbortRequest), nothing in time, or no connection. */
export type ProbeAnswer =
  | { readonly kind: 'response'; readonly status: number }
  | { readonly kind: 'aborted'; readonly detail: string }
  | { readonly kind: 'timeout'; readonly detail: string }
  | { readonly kind: 'failed'; readonly detail: string };

export interface EndpointHealth {
  readonly endpoint: string;
  /** HTTP 200, nothing else. */
  readonly healthy: boolean;
  /** "200", "503", "timeout after 5000 ms", "connection refused"… */
  readonly detail: string;
}

export interface ProberOptions {
  /** The server's own front end, e.g. https://ex01.contoso.com; a path prefix is kept (the simulated front end serves many servers). */
  readonly baseUrl: string;
  /** The server's own names (FQDN; its first label counts too): the only certificate names accepted when checks are relaxed. */
  readonly ownNames: readonly string[];
  readonly endpoints?: readonly string[];
  readonly timeoutInMs?: number;
  readonly roundDeadlineInMs?: number;
  /** Requests in flight at once within a round. */
  readonly concurrency?: number;
  /** Name resolution for the base URL's host (tests point a server name at loopback without DNS). */
  readonly lookup?: LookupFunction;
  /** Each request's timeout is set on these. */
  readonly timers?: Timers;
}

/**
 * Real HTTP(S) requests to the server's own front end, for the health and effectiveness checks.
 * Nothing hangs: every request ends at its timeout, every round at its deadline.
 *
 * TLS: Exchange's front end often presents its self-signed certificate to the server itself, so
 * when the base URL names the server itself (one of its own names, localhost or a loopback
 * address) the chain is not checked, but the certificate must still be issued to the server's own
 * name or localhost. Any other host gets Node's full verification.
 */
export class Prober {
  readonly baseUrl: string;
  readonly endpoints: readonly string[];
  readonly #url: URL;
  readonly #acceptedNames: readonly string[];
  readonly #relaxed: boolean;
  readonly #timeoutInMs: number;
  readonly #roundDeadlineInMs: number;
  readonly #concurrency: number;
  readonly #lookup: LookupFunction | undefined;
  readonly #timers: Timers;

  constructor(options: ProberOptions) {
    const url = new URL(options.baseUrl);
    if (
      (url.protocol !== 'https:' && url.protocol !== 'http:') ||
      url.search !== '' ||
      url.hash !== '' ||
      url.username !== '' ||
      url.password !== ''
    ) {
      throw new TypeError(
        `probe base URL must be http(s)://host[:port][/prefix] without query or credentials, got ${options.baseUrl}`,
      );
    }
    this.#url = url;
    this.baseUrl = options.baseUrl;
    this.endpoints = options.endpoints ?? defaultHealthEndpoints;
    const own = options.ownNames.flatMap((name) => [name.toLowerCase(), name.toLowerCase().split('.')[0]!]);
    this.#acceptedNames = [...new Set([...own, 'localhost'])];
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    this.#relaxed = url.protocol === 'https:' && (this.#acceptedNames.includes(host) || isLoopback(host));
    this.#timeoutInMs = options.timeoutInMs ?? defaultProbeTimeoutInMs;
    this.#roundDeadlineInMs = options.roundDeadlineInMs ?? defaultProbeRoundDeadlineInMs;
    this.#concurrency = options.concurrency ?? 16;
    this.#timers = options.timers ?? systemTimers;
    this.#lookup = options.lookup;
  }

  /** Whether certificate chains are left unchecked for this base URL (only ever the server itself). */
  get relaxedTls(): boolean {
    return this.#relaxed;
  }

  /** Every health endpoint once; 200 is healthy. */
  async health(): Promise<EndpointHealth[]> {
    const answers = await this.sendAll(this.endpoints.map((endpoint) => ({ method: 'GET', path: endpoint })));
    return answers.map((answer, index) => ({
      endpoint: this.endpoints[index]!,
      healthy: answer.kind === 'response' && answer.status === 200,
      detail: describeAnswer(answer),
    }));
  }

  /** One round: at most `concurrency` at a time, each within its timeout, all within the round's deadline. */
  async sendAll(requests: readonly ProbeRequest[]): Promise<ProbeAnswer[]> {
    const deadline = Date.now() + this.#roundDeadlineInMs;
    return mapWithConcurrency(requests, this.#concurrency, (request) => {
      const left = deadline - Date.now();
      if (left <= 0)
        return Promise.resolve({
          kind: 'timeout',
          detail: `not sent: the probe round's ${this.#roundDeadlineInMs} ms deadline passed`,
        } as const);
      // Cut short by the round, the answer says so: the request's own timeout did not pass.
      return left < this.#timeoutInMs
        ? this.send(request, left, `timeout: the probe round's ${this.#roundDeadlineInMs} ms deadline passed`)
        : this.send(request);
    });
  }

  send(
    request: ProbeRequest,
    timeoutInMs = this.#timeoutInMs,
    timeoutDetail = `timeout after ${timeoutInMs} ms`,
  ): Promise<ProbeAnswer> {
    const url = this.#url;
    const prefix = url.pathname.replace(/\/+$/, '');
    const headers: Record<string, string> = { 'user-agent': 'emfleet-agent-probe' };
    for (const header of request.headers ?? []) headers[header.name.toLowerCase()] = header.value;
    if (request.cookie !== undefined) headers.cookie = request.cookie;
    const options: https.RequestOptions = {
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? undefined : Number(url.port),
      method: request.method,
      path: `${prefix}${request.path}`,
      headers,
      // A fresh connection per probe: a reused socket would skip the certificate check below.
      agent: false,
      ...(this.#lookup ? { lookup: this.#lookup } : {}),
      ...(this.#relaxed ? { rejectUnauthorized: false } : {}),
    };
    return new Promise<ProbeAnswer>((resolve) => {
      let settled = false;
      const settle = (answer: ProbeAnswer): void => {
        if (settled) return;
        settled = true;
        this.#timers.clearTimeout(timer);
        resolve(answer);
      };
      const outgoing = (url.protocol === 'https:' ? https : http).request(options, (response) => {
        settle({ kind: 'response', status: response.statusCode ?? 0 });
        response.resume();
        outgoing.destroy();
      });
      const timer = this.#timers.setTimeout(() => {
        settle({ kind: 'timeout', detail: timeoutDetail });
        outgoing.destroy();
      }, timeoutInMs);
      outgoing.on('error', (error: NodeJS.ErrnoException) => settle(classifyError(error)));
      if (this.#relaxed) {
        outgoing.on('socket', (socket) => {
          socket.once('secureConnect', () => {
            const refusal = this.#certificateRefusal((socket as TLSSocket).getPeerCertificate());
            if (refusal) outgoing.destroy(Object.assign(new Error(refusal), { code: 'EMFLEET_CERT_NAME' }));
          });
        });
      }
      outgoing.end();
    });
  }

  #certificateRefusal(certificate: PeerCertificate): string | undefined {
    if (!certificate || Object.keys(certificate).length === 0)
      return 'certificate: the server presented none';
    if (this.#acceptedNames.some((name) => checkServerIdentity(name, certificate) === undefined))
      return undefined;
    const names = certificate.subjectaltname ?? `CN=${certificate.subject?.CN ?? '?'}`;
    return `certificate for ${names}, not this server (${this.#acceptedNames.join(', ')})`;
  }
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

function classifyError(error: NodeJS.ErrnoException): ProbeAnswer {
  switch (error.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return { kind: 'aborted', detail: 'connection reset without an answer' };
    case 'ECONNREFUSED':
      return { kind: 'failed', detail: 'connection refused' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { kind: 'failed', detail: `name not found (${error.code})` };
    case 'EMFLEET_CERT_NAME':
      return { kind: 'failed', detail: error.message };
  }
  if (
    error.code?.startsWith('ERR_TLS') ||
    /certificate|self[- ]signed|UNABLE_TO|CERT_/i.test(`${error.code ?? ''} ${error.message}`)
  ) {
    return { kind: 'failed', detail: `certificate: ${error.message}` };
  }
  return { kind: 'failed', detail: error.message || String(error.code) };
}

/** "200", "503", "aborted (connection reset without an answer)", "timeout after 5000 ms". */
export function describeAnswer(answer: ProbeAnswer): string {
  switch (answer.kind) {
    case 'response':
      return String(answer.status);
    case 'aborted':
      return `aborted (${answer.detail})`;
    case 'timeout':
    case 'failed':
      return answer.detail;
  }
}

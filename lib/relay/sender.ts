import http from 'node:http';
import https from 'node:https';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type { z } from 'zod';
import { ConfigError, EmfleetError } from '../errors.js';
import { isReasonCode } from '../model/reasons.js';
import {
  agentPaths,
  applyRequest,
  errorReply,
  hubRefusals,
  operationReply,
  pingReply,
  pingRequest,
  removeRequest,
  statusReply,
  type ApplyRequest,
  type ErrorReply,
  type OperationReply,
  type PingReply,
  type RemoveRequest,
  type StatusReply,
} from './protocol.js';
import { parseRelayAddress } from './route.js';
import { createSasToken } from './sas.js';

type ErrorOptions = { cause?: unknown; context?: Record<string, unknown> };

/** No listener answered: none connected (502), the hybrid connection does not exist, or the network failed. Retry later. */
export class RelayUnreachableError extends EmfleetError {
  override readonly name = 'RelayUnreachableError';

  constructor(message: string, options: ErrorOptions = {}) {
    super('Unreachable', message, options);
  }
}

/** The relay refused our token; retrying will not help until the send rule or role assignment is fixed. */
export class RelayAuthError extends EmfleetError {
  override readonly name = 'RelayAuthError';

  constructor(message: string, options: ErrorOptions = {}) {
    super('RelayAuth', message, options);
  }
}

/** No reply in time (the relay's 504, or our own deadline); the agent may still have done the work. */
export class RelayTimeoutError extends EmfleetError {
  override readonly name = 'RelayTimeoutError';

  constructor(message: string, options: ErrorOptions = {}) {
    super('Timeout', message, options);
  }
}

/** The agent answered something the protocol does not allow; `field` names what was wrong. */
export class AgentReplyError extends EmfleetError {
  override readonly name = 'AgentReplyError';
  readonly field: string;

  constructor(field: string, message: string, options: ErrorOptions = {}) {
    super('BadReply', message, { ...options, context: { field, ...options.context } });
    this.field = field;
  }
}

/**
 * The agent understood and refused (its errorReply); `code` is the agent's own code, or
 * `AgentRefused` for a code this release's catalogue does not have (a newer agent's), which the
 * message keeps.
 */
export class AgentError extends EmfleetError {
  override readonly name = 'AgentError';
  readonly status: number;
  readonly detail: string;

  constructor(code: string, status: number, detail: string, options: ErrorOptions = {}) {
    super(isReasonCode(code) ? code : 'AgentRefused', `agent replied ${status} ${code}: ${detail}`, options);
    this.status = status;
    this.detail = detail;
  }
}

/** We were about to send a request the protocol does not allow; nothing was sent. */
export class AgentRequestError extends EmfleetError {
  override readonly name = 'AgentRequestError';
  readonly field: string;

  constructor(field: string, message: string) {
    super('InvalidRequest', message, { context: { field } });
    this.field = field;
  }
}

/** The audience Azure Relay accepts Microsoft Entra tokens for. */
export const relayEntraScope = 'https://relay.azure.net/.default';

export type SenderAuth =
  | { readonly kind: 'sas'; readonly keyName: string; readonly key: string }
  /** The identity needs the Azure Relay Sender role on the namespace or hybrid connection. */
  | { readonly kind: 'entra'; readonly credential: TokenCredential };

/** Keyless sending with the app's managed identity (or a developer's Azure CLI login). */
export async function defaultAzureCredentialAuth(): Promise<SenderAuth> {
  // Loaded here only: a SAS-only deployment and the tests never pay for the identity stack.
  const { DefaultAzureCredential } = await import('@azure/identity');
  return { kind: 'entra', credential: new DefaultAzureCredential() };
}

export interface RelaySenderOptions {
  /** https://{namespace} in Azure, http://127.0.0.1:PORT against the emulator. */
  readonly baseUrl: string;
  readonly auth: SenderAuth;
  /** Per request, default 30 s; must stay under the relay's own 60 s. */
  readonly timeoutMs?: number;
  /** Connections kept per hybrid connection (keep-alive, default 4); requests beyond wait for one. */
  readonly maxSockets?: number;
  readonly maxResponseBytes?: number;
}

export interface RelayRequest {
  readonly method: string;
  /** The path after the hybrid connection name, e.g. /status. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | string;
  readonly timeoutMs?: number;
}

export interface RelayResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

const relayLimitMs = 60_000;
/** Hybrid connections with kept-alive sockets at once; a fleet rollout works through a bounded window. */
const maxPooledConnections = 256;
const tokenLifetimeSeconds = 3600;
/** Tokens are replaced this long before they expire, so none expires in flight. */
const tokenRefreshMarginMs = 5 * 60_000;
const networkFailures = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
]);

/**
 * Sends HTTPS requests through Azure Relay Hybrid Connections to `{baseUrl}/{hc}/{path}`.
 * The token travels in the `ServiceBusAuthorization` header (never the query string, which ends up
 * in logs); the relay strips it before the listener sees the request.
 */
export class RelaySender {
  readonly #base: URL;
  readonly #auth: SenderAuth;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #agents = new Map<string, http.Agent>();
  readonly #maxSocketsPerConnection: number;
  readonly #sasTokens = new Map<string, { token: string; renewAt: number }>();
  #entraToken: { token: string; renewAt: number } | undefined;
  #entraPending: Promise<string> | undefined;

  constructor(options: RelaySenderOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch (error) {
      throw new ConfigError(`relay base URL ${JSON.stringify(options.baseUrl)} is not a URL`, {
        cause: error,
      });
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:')
      throw new ConfigError(
        `relay base URL must be https:// (or http:// for the emulator), got ${base.protocol}`,
      );
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    if (!(this.#timeoutMs > 0 && this.#timeoutMs < relayLimitMs))
      throw new ConfigError(`relay timeout must be between 0 and ${relayLimitMs} ms, got ${this.#timeoutMs}`);
    this.#base = base;
    this.#auth = options.auth;
    this.#maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    this.#maxSocketsPerConnection = options.maxSockets ?? 4;
  }

  /**
   * Connections are pooled per hybrid connection, never shared between two: once the relay has
   * bound a sender connection to a listener's rendezvous socket, later requests on it go to that
   * listener, so a pooled connection must only ever carry requests for that same server.
   * Idle sockets are dropped after 30 s; the least recently used pools beyond a bound are closed.
   */
  #agentFor(hybridConnection: string): http.Agent {
    const key = hybridConnection.toLowerCase();
    let agent = this.#agents.get(key);
    if (agent) {
      this.#agents.delete(key);
    } else {
      const maxSockets = this.#maxSocketsPerConnection;
      const agentOptions = {
        keepAlive: true,
        maxSockets,
        maxFreeSockets: maxSockets,
        timeout: 30_000,
        scheduling: 'lifo' as const,
      };
      agent = this.#base.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    }
    this.#agents.set(key, agent);
    for (const [oldest, pool] of this.#agents) {
      if (this.#agents.size <= maxPooledConnections) break;
      this.#agents.delete(oldest);
      pool.destroy();
    }
    return agent;
  }

  /**
   * `address` is a relay address (lib/relay/route.ts): a hybrid connection, or a site hub's
   * hybrid connection and the server's relay path. The token is for the hybrid connection; each
   * address has its own pool, so one server's requests never queue behind another's at a hub.
   */
  async send(address: string, request: RelayRequest): Promise<RelayResponse> {
    const url = this.#url(address, request.path);
    const token = await this.#token(parseRelayAddress(address).hybridConnection);
    const timeoutMs = request.timeoutMs ?? this.#timeoutMs;
    if (!(timeoutMs > 0 && timeoutMs < relayLimitMs))
      throw new ConfigError(`relay timeout must be between 0 and ${relayLimitMs} ms, got ${timeoutMs}`);
    const body =
      request.body === undefined
        ? undefined
        : Buffer.isBuffer(request.body)
          ? request.body
          : Buffer.from(request.body, 'utf8');
    const headers: Record<string, string> = { ...request.headers, ServiceBusAuthorization: token };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const context = { hybridConnection: address, path: request.path };
    const deadline = Date.now() + timeoutMs;
    let response: RelayResponse;
    try {
      response = await this.#exchange(
        this.#agentFor(address),
        url,
        request.method,
        headers,
        body,
        deadline,
        timeoutMs,
        context,
      );
    } catch (error) {
      // A keep-alive connection the relay closed while idle fails on first write; Node's advice is
      // to retry such a request once on a fresh connection. Agent requests are idempotent by id.
      if (!(error instanceof StaleConnection)) throw error;
      response = await this.#exchange(
        this.#agentFor(address),
        url,
        request.method,
        headers,
        body,
        deadline,
        timeoutMs,
        context,
      ).catch((retryError: unknown) => {
        throw retryError instanceof StaleConnection ? unreachable(retryError.cause, context) : retryError;
      });
    }
    return this.#judge(response, context);
  }

  /** Ends kept-alive connections; in-flight requests fail. */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  #url(hybridConnection: string, path: string): URL {
    const hcPath = hybridConnection.split('/').filter(Boolean).map(encodeURIComponent).join('/');
    if (hcPath === '') throw new ConfigError('hybrid connection name is empty');
    const url = new URL(this.#base);
    const query = path.indexOf('?');
    url.pathname = `${this.#base.pathname.replace(/\/+$/, '')}/${hcPath}/${(query < 0 ? path : path.slice(0, query)).replace(/^\/+/, '')}`;
    url.search = query < 0 ? '' : path.slice(query);
    return url;
  }

  async #token(hybridConnection: string): Promise<string> {
    const now = Date.now();
    if (this.#auth.kind === 'sas') {
      const cached = this.#sasTokens.get(hybridConnection);
      if (cached && cached.renewAt > now) return cached.token;
      // The audience Azure expects: http://{namespace}/{hc}, without port, query or $hc.
      const resource = `http://${this.#base.hostname}/${hybridConnection}`;
      const token = createSasToken(resource, this.#auth.keyName, this.#auth.key, {
        expiresInSeconds: tokenLifetimeSeconds,
        now: new Date(now),
      });
      this.#sasTokens.set(hybridConnection, {
        token,
        renewAt: now + tokenLifetimeSeconds * 1000 - tokenRefreshMarginMs,
      });
      return token;
    }
    if (this.#entraToken && this.#entraToken.renewAt > now) return this.#entraToken.token;
    this.#entraPending ??= this.#fetchEntraToken(this.#auth.credential).finally(() => {
      this.#entraPending = undefined;
    });
    return this.#entraPending;
  }

  async #fetchEntraToken(credential: TokenCredential): Promise<string> {
    let accessToken: AccessToken | null;
    try {
      // A credential stuck on an unreachable identity endpoint must not hold the caller forever.
      accessToken = await credential.getToken(relayEntraScope, {
        abortSignal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new RelayAuthError(
        `could not get a Microsoft Entra token for ${relayEntraScope}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (!accessToken)
      throw new RelayAuthError(`the credential returned no Microsoft Entra token for ${relayEntraScope}`);
    const renewAt =
      accessToken.refreshAfterTimestamp ?? accessToken.expiresOnTimestamp - tokenRefreshMarginMs;
    this.#entraToken = { token: accessToken.token, renewAt };
    return accessToken.token;
  }

  #exchange(
    agent: http.Agent,
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    deadline: number,
    timeoutMs: number,
    context: Record<string, unknown>,
  ): Promise<RelayResponse> {
    const transport = url.protocol === 'https:' ? https : http;
    const where = `${String(context['hybridConnection'])}${String(context['path'])}`;
    return new Promise<RelayResponse>((resolve, reject) => {
      // Set before we destroy the request ourselves, so the socket errors that follow are not mistaken for the cause.
      let ours: EmfleetError | undefined;
      const request = transport.request(url, { method, headers, agent });
      const abort = (error: EmfleetError): void => {
        ours ??= error;
        request.destroy();
      };
      const timer = setTimeout(
        () => abort(new RelayTimeoutError(`no reply from ${where} within ${timeoutMs} ms`, { context })),
        Math.max(0, deadline - Date.now()),
      );
      const fail = (error: unknown): void => {
        clearTimeout(timer);
        if (ours) reject(ours);
        else if (request.reusedSocket && (error as NodeJS.ErrnoException).code === 'ECONNRESET')
          reject(new StaleConnection(error));
        else reject(unreachable(error, context));
      };
      request.on('error', fail);
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#maxResponseBytes)
            abort(
              new AgentReplyError(
                '(body)',
                `reply from ${where} is larger than ${this.#maxResponseBytes} bytes`,
                { context },
              ),
            );
          else chunks.push(chunk);
        });
        response.on('error', fail);
        response.on('end', () => {
          clearTimeout(timer);
          if (ours) reject(ours);
          else
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks),
            });
        });
      });
      request.end(body);
    });
  }

  /**
   * Tells the relay's own answers from the listener's: the relay adds `Via` to what a listener
   * sent, and a listener may not send 502 or 504.
   */
  #judge(response: RelayResponse, context: Record<string, unknown>): RelayResponse {
    const { status } = response;
    const fromListener = response.headers.via !== undefined && status !== 502 && status !== 504;
    if (fromListener) return response;
    const hc = String(context['hybridConnection']);
    const said = response.body.toString('utf8', 0, Math.min(response.body.length, 300)).trim();
    const withRelayText = (message: string): string =>
      said === '' ? message : `${message} (relay said: ${said})`;
    const options = { context: { ...context, status } };
    const credential =
      this.#auth.kind === 'sas'
        ? `SAS send rule ${JSON.stringify(this.#auth.keyName)}`
        : 'Microsoft Entra identity';
    switch (status) {
      case 401:
        throw new RelayAuthError(
          withRelayText(
            `relay rejected the ${credential} for ${hc} (401 Unauthorized): the token is missing, malformed, expired or signed with the wrong key; check the send rule name and key, or that the identity has the Azure Relay Sender role`,
          ),
          options,
        );
      case 403:
        throw new RelayAuthError(
          withRelayText(
            `relay refused the ${credential} for ${hc} (403 Forbidden): the send rule or role assignment does not grant Send on this hybrid connection`,
          ),
          options,
        );
      case 404:
        throw new RelayUnreachableError(
          withRelayText(`hybrid connection ${hc} does not exist on ${this.#base.host} (404)`),
          options,
        );
      case 502:
      case 503:
        throw new RelayUnreachableError(withRelayText(`no agent is listening on ${hc} (${status})`), options);
      case 504:
        throw new RelayTimeoutError(
          withRelayText(`the agent on ${hc} did not answer in the relay's time limit (504)`),
          options,
        );
      case 500:
        throw new RelayUnreachableError(withRelayText(`relay service error for ${hc} (500)`), options);
      default:
        return response;
    }
  }
}

/** A reused keep-alive connection that turned out dead; retried once on a new one. */
class StaleConnection extends Error {
  constructor(cause: unknown) {
    super('stale keep-alive connection', { cause });
  }
}

function unreachable(error: unknown, context: Record<string, unknown>): RelayUnreachableError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code !== undefined && networkFailures.has(code)
      ? code
      : ((error as Error | undefined)?.message ?? String(error));
  return new RelayUnreachableError(
    `cannot reach the relay for ${String(context['hybridConnection'])}: ${reason}`,
    { cause: error, context },
  );
}

export interface AgentClientOptions {
  /** Per call; defaults to the sender's. */
  readonly timeoutMs?: number;
}

/**
 * The cloud's side of the agent protocol (lib/relay/protocol.ts) over a RelaySender. Requests are
 * validated before they leave, replies when they arrive; nothing half-valid gets through.
 */
export class AgentClient {
  readonly #sender: RelaySender;
  readonly #timeoutMs: number | undefined;

  constructor(sender: RelaySender, options: AgentClientOptions = {}) {
    this.#sender = sender;
    this.#timeoutMs = options.timeoutMs;
  }

  /** 200 with outcomes, or 202 while the agent still works (then ask status). */
  async apply(hybridConnection: string, request: ApplyRequest): Promise<OperationReply> {
    return this.#call(
      hybridConnection,
      'POST',
      agentPaths.apply,
      checked(applyRequest, request),
      operationReply,
    );
  }

  async remove(hybridConnection: string, request: RemoveRequest): Promise<OperationReply> {
    return this.#call(
      hybridConnection,
      'POST',
      agentPaths.remove,
      checked(removeRequest, request),
      operationReply,
    );
  }

  /** `verify`: the agent re-checks on the server that each applied mitigation is still in place (slower; for reconcile). */
  async status(hybridConnection: string, options: { verify?: boolean } = {}): Promise<StatusReply> {
    return this.#call(
      hybridConnection,
      'GET',
      options.verify ? `${agentPaths.status}?verify=true` : agentPaths.status,
      undefined,
      statusReply,
    );
  }

  async ping(hybridConnection: string, request: z.input<typeof pingRequest> = {}): Promise<PingReply> {
    return this.#call(hybridConnection, 'POST', agentPaths.ping, checked(pingRequest, request), pingReply);
  }

  async #call<T>(
    hybridConnection: string,
    method: string,
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const response = await this.#sender.send(hybridConnection, {
      method,
      path,
      headers:
        body === undefined
          ? { accept: 'application/json' }
          : { accept: 'application/json', 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(this.#timeoutMs === undefined ? {} : { timeoutMs: this.#timeoutMs }),
    });
    const context = { hybridConnection, path, status: response.status };
    let json: unknown;
    try {
      json = JSON.parse(response.body.toString('utf8'));
    } catch (error) {
      throw new AgentReplyError(
        '(body)',
        `agent reply ${response.status} to ${path} on ${hybridConnection} is not JSON`,
        { cause: error, context },
      );
    }
    if (response.status < 200 || response.status > 299) {
      const refusal = errorReply.safeParse(json);
      if (!refusal.success)
        throw invalidReply(
          refusal.error,
          `error reply ${response.status} to ${path} on ${hybridConnection}`,
          context,
        );
      throw refusalError(refusal.data, response.status, context);
    }
    const reply = schema.safeParse(json);
    if (!reply.success)
      throw invalidReply(reply.error, `reply ${response.status} to ${path} on ${hybridConnection}`, context);
    return reply.data;
  }
}

/**
 * A site hub's "cannot reach the agent" is, to the cloud, what a relay without a listener is: the
 * message is retried, and the hub's words (`hubAnswer`) become the Unreachable detail.
 */
function refusalError(refusal: ErrorReply, status: number, context: Record<string, unknown>): EmfleetError {
  const where = String(context['hybridConnection']);
  const hubContext = { context: { ...context, hubAnswer: refusal.detail } };
  if (refusal.error === hubRefusals.agentUnreachable)
    return new RelayUnreachableError(
      `the site hub could not reach the agent for ${where}: ${refusal.detail}`,
      hubContext,
    );
  if (refusal.error === hubRefusals.agentTimeout)
    return new RelayTimeoutError(
      `the agent for ${where} did not answer its site hub in time: ${refusal.detail}`,
      hubContext,
    );
  return new AgentError(refusal.error, status, refusal.detail, { context });
}

/** The site hub's own words about a server it could not reach, if that is what an error is. */
export function hubAnswerOf(error: unknown): string | undefined {
  const answer = error instanceof EmfleetError ? error.context['hubAnswer'] : undefined;
  return typeof answer === 'string' ? answer : undefined;
}

function checked<T>(schema: z.ZodType<T>, request: unknown): T {
  const parsed = schema.safeParse(request);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join('.') || '(request)';
  throw new AgentRequestError(field, `request not sent: ${field}: ${issue.message}`);
}

function invalidReply(error: z.ZodError, what: string, context: Record<string, unknown>): AgentReplyError {
  const issue = error.issues[0]!;
  const field = issue.path.map(String).join('.') || '(body)';
  return new AgentReplyError(field, `${what} breaks the protocol: ${field}: ${issue.message}`, { context });
}

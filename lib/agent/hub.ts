import type http from 'node:http';
import https from 'node:https';
import { silentLogger, type Logger } from '../log.js';
import type { ReasonCode } from '../model/reasons.js';
import { errorReplyBody, hubRefusals } from '../relay/protocol.js';
import type { IncomingRelayRequest, RelayReply } from './listener.js';
import { PinnedAgent, siteLinkHeaders, signSiteRequest } from './site-link.js';

/**
 * The site relay hub's forwarding: a request that reached the site's hybrid connection as
 * `/{relayPath}/{agent path}` goes to that server's agent over the site LAN (lib/agent/site-link.ts),
 * and the agent's answer goes back as it is. The hub holds no state and no signing key, never
 * applies anything and never looks inside a package: it can be restarted at any time, and two hubs
 * on one hybrid connection share the load (the relay picks a listener per request).
 *
 * Its own answers (errorReply, lib/relay/protocol.ts `hubRefusals`):
 * - 404 NotBehindThisHub: no agent of that relay path at this site;
 * - 503 AgentUnreachable: the agent refused the connection, reset it, showed another certificate
 *   than the pinned one, or refused the hub's signature (the site secrets differ);
 * - 503 AgentTimeout: no answer within the forward deadline, which stays inside the relay's 60 s.
 */

export interface HubAgent {
  /** https://{host}:{port} of the agent's site-link listener. */
  readonly url: string;
  readonly certificateSha256: string;
}

export interface HubForwarderOptions {
  /** This hub's name in its answers and logs (several may serve one site). */
  readonly hubName: string;
  readonly site: string;
  /** By relay path, lower case: the servers behind this hub. */
  readonly agents: ReadonlyMap<string, HubAgent>;
  readonly secret: Buffer;
  readonly forwardTimeoutInMs: number;
  readonly logger?: Logger;
}

/** Headers the agent protocol uses; nothing else of the sender's goes on to the LAN. */
const forwardedHeaders = ['content-type', 'accept'] as const;
const maxReplyBytes = 16 * 1024 * 1024;

export function createHubForwarder(options: HubForwarderOptions): {
  handle(request: IncomingRelayRequest): Promise<RelayReply>;
  close(): void;
} {
  const logger = options.logger ?? silentLogger;
  const pinned = new Map<string, PinnedAgent>();
  const agentFor = (relayPath: string, target: HubAgent): PinnedAgent => {
    let agent = pinned.get(relayPath);
    if (!agent) pinned.set(relayPath, (agent = new PinnedAgent(target.certificateSha256)));
    return agent;
  };
  const hub = `hub ${options.hubName} of site ${options.site}`;

  async function handle(request: IncomingRelayRequest): Promise<RelayReply> {
    const match = /^\/([^/?]+)(\/[^?]*)?(\?.*)?$/.exec(request.path);
    const relayPath = match ? safeDecode(match[1]!).toLowerCase() : '';
    const target = options.agents.get(relayPath);
    if (!match || !target) {
      const detail = `${JSON.stringify(relayPath)} is not behind ${hub}; check the Servers row's site and relayPath`;
      logger.warn('HubRefused', {
        site: options.site,
        hub: options.hubName,
        relayPath,
        path: request.path,
        reasonCode: hubRefusals.notBehindHub,
        reasonDetail: detail,
      });
      return refusal(404, hubRefusals.notBehindHub, detail);
    }
    // One leading slash: `//host/...` must not turn into another host when resolved against the agent's URL.
    const path = `/${(match[2] ?? '/').replace(/^\/+/, '')}${match[3] ?? ''}`;
    const where = { site: options.site, hub: options.hubName, relayPath, method: request.method, path };
    const startedAt = Date.now();
    try {
      const forwarded = { method: request.method, path, headers: request.headers, body: request.body };
      // A kept-alive connection the agent closed (it restarted) fails on first use: Node's advice is to
      // retry such a request once on a fresh connection. Agent requests are idempotent by operation id.
      const reply = await forward(relayPath, target, forwarded).catch((error: unknown) => {
        if (error instanceof StaleConnection) return forward(relayPath, target, forwarded);
        throw error;
      });
      logger.info('HubForwarded', { ...where, status: reply.status, durationInMs: Date.now() - startedAt });
      return reply;
    } catch (error) {
      const failure = error as ForwardFailure;
      logger.warn('HubForwardFailed', {
        ...where,
        reasonCode: failure.refusal,
        reasonDetail: failure.message,
        durationInMs: Date.now() - startedAt,
      });
      return refusal(
        503,
        failure.refusal,
        `${hub} could not get an answer from ${relayPath} at ${target.url}: ${failure.message}`,
      );
    }
  }

  function forward(relayPath: string, target: HubAgent, request: IncomingRelayRequest): Promise<RelayReply> {
    const url = new URL(request.path, target.url);
    const headers: Record<string, string> = {
      [siteLinkHeaders.relayPath]: relayPath,
      [siteLinkHeaders.signature]: signSiteRequest(options.secret, {
        method: request.method,
        path: request.path,
        relayPath,
        body: request.body,
      }),
      'content-length': String(request.body.length),
    };
    for (const name of forwardedHeaders) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    return new Promise<RelayReply>((resolve, reject) => {
      let failure: ForwardFailure | undefined;
      const outgoing = https.request(url, {
        method: request.method,
        headers,
        agent: agentFor(relayPath, target),
      });
      const abort = (reason: ForwardFailure): void => {
        failure ??= reason;
        outgoing.destroy();
      };
      const timer = setTimeout(
        () =>
          abort(
            new ForwardFailure(hubRefusals.agentTimeout, `no answer within ${options.forwardTimeoutInMs} ms`),
          ),
        options.forwardTimeoutInMs,
      );
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (!failure && outgoing.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE'))
          return reject(new StaleConnection(error.code));
        reject(
          failure ??
            new ForwardFailure(
              hubRefusals.agentUnreachable,
              error.code
                ? `${error.code}${error.code === 'CERT_PIN_MISMATCH' ? `: ${error.message}` : ''}`
                : error.message,
            ),
        );
      });
      outgoing.on('response', (response: http.IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxReplyBytes)
            abort(
              new ForwardFailure(hubRefusals.agentUnreachable, `reply larger than ${maxReplyBytes} bytes`),
            );
          else chunks.push(chunk);
        });
        response.on('error', (error: Error) => {
          clearTimeout(timer);
          reject(failure ?? new ForwardFailure(hubRefusals.agentUnreachable, error.message));
        });
        response.on('end', () => {
          clearTimeout(timer);
          if (failure) return reject(failure);
          const body = Buffer.concat(chunks);
          const status = response.statusCode ?? 0;
          // The agent refusing the hub's signature is a site misconfiguration: to the cloud, the agent cannot be reached.
          if (status === 401 || status === 421)
            return reject(
              new ForwardFailure(
                hubRefusals.agentUnreachable,
                `the agent refused the hub (${status}): ${body.toString('utf8', 0, 300)}`,
              ),
            );
          const type = response.headers['content-type'];
          resolve({ status, headers: typeof type === 'string' ? { 'content-type': type } : {}, body });
        });
      });
      outgoing.end(request.body);
    });
  }

  return {
    handle,
    close: () => {
      for (const agent of pinned.values()) agent.destroy();
      pinned.clear();
    },
  };
}

class ForwardFailure extends Error {
  constructor(
    readonly refusal: (typeof hubRefusals)['agentUnreachable' | 'agentTimeout'],
    message: string,
  ) {
    super(message);
  }
}

/** A reused keep-alive connection that turned out closed; the request is sent again once, on a new one. */
class StaleConnection extends ForwardFailure {
  constructor(code: string) {
    super(hubRefusals.agentUnreachable, `${code} on a kept-alive connection`);
  }
}

function refusal(status: number, code: ReasonCode, detail: string): RelayReply {
  return { status, headers: { 'content-type': 'application/json' }, body: errorReplyBody(code, detail) };
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

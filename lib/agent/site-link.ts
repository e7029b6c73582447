import { createHash, createHmac, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ConfigError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { ReasonCode } from '../model/reasons.js';
import { errorReplyBody } from '../relay/protocol.js';
import type { IncomingRelayRequest, RelayReply } from './listener.js';

/**
 * The link between a site's relay hub and the site's agents, over the site LAN. Two things make it
 * safe without adding trust to the path (every agent still verifies every package itself):
 * - the hub pins each agent's TLS certificate by its SHA-256 fingerprint, so it talks to that
 *   agent and no other host on the LAN (a self-signed certificate is fine: no CA is consulted);
 * - every request carries an HMAC-SHA256 over its method, path, relay path, body digest, time and
 *   a nonce, keyed with a secret only the site's agents and hub hold (made by the agent's install
 *   script); the agent refuses unsigned, stale (over 5 minutes) and replayed requests, and
 *   requests meant for another server.
 */

export const siteLinkHeaders = {
  signature: 'x-emfleet-hub-signature',
  /** The relay path the hub forwarded for: the agent refuses what is not its own. */
  relayPath: 'x-emfleet-relay-path',
} as const;

const signatureVersion = 'v1';
/** How far a signed request's time may be from the agent's clock, either way. */
export const signatureWindowMs = 5 * 60_000;
/** The site secret: at least this many bytes once decoded (the install script makes 32). */
const minimumSecretBytes = 32;
const maxRequestBody = 16 * 1024 * 1024;

export interface SignedRequest {
  readonly method: string;
  /** The agent path with its query, e.g. /status?verify=true. */
  readonly path: string;
  readonly relayPath: string;
  readonly body: Buffer;
}

/** The site secret from its base64 text (what the install script writes); too short is refused. */
export function parseSiteSecret(text: string, where: string): Buffer {
  const trimmed = text.trim();
  const secret = /^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) ? Buffer.from(trimmed, 'base64') : Buffer.alloc(0);
  if (secret.length < minimumSecretBytes)
    throw new ConfigError(
      `${where}: the site secret must be base64 of at least ${minimumSecretBytes} random bytes`,
    );
  return secret;
}

function canonical(request: SignedRequest, time: number, nonce: string): string {
  const digest = createHash('sha256').update(request.body).digest('hex');
  return [
    signatureVersion,
    String(time),
    nonce,
    request.method.toUpperCase(),
    request.path,
    request.relayPath.toLowerCase(),
    digest,
  ].join('\n');
}

/** The signature header the hub sends: v1:{unix seconds}:{nonce}:{base64 HMAC}. */
export function signSiteRequest(
  secret: Buffer,
  request: SignedRequest,
  options: { now?: Date; nonce?: string } = {},
): string {
  const time = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const nonce = options.nonce ?? randomUUID();
  const mac = createHmac('sha256', secret)
    .update(canonical(request, time, nonce), 'utf8')
    .digest('base64');
  return `${signatureVersion}:${time}:${nonce}:${mac}`;
}

export type SiteSignatureRejection =
  | 'Missing'
  | 'BadFormat'
  | 'BadSignature'
  | 'Stale'
  | 'Replayed'
  | 'WrongServer';

/** Nonces seen inside the window, so a captured request cannot be sent again. */
export class NonceCache {
  readonly #seen = new Map<string, number>();

  /** false if the nonce was already used; remembers it until `expiresAt` (ms). */
  remember(nonce: string, expiresAt: number, now: number): boolean {
    if (this.#seen.size > 1000)
      for (const [seen, until] of this.#seen) if (until <= now) this.#seen.delete(seen);
    if (this.#seen.has(nonce)) return false;
    this.#seen.set(nonce, expiresAt);
    return true;
  }
}

export function verifySiteRequest(
  secret: Buffer,
  header: string | undefined,
  request: SignedRequest,
  options: { ownRelayPath: string; nonces: NonceCache; now?: Date },
): { ok: true } | { ok: false; reason: SiteSignatureRejection; detail: string } {
  if (header === undefined || header === '')
    return {
      ok: false,
      reason: 'Missing',
      detail: `no ${siteLinkHeaders.signature} header: only the site hub may call this listener`,
    };
  const match = /^v1:(\d{1,12}):([A-Za-z0-9-]{1,64}):([A-Za-z0-9+/]+={0,2})$/.exec(header);
  if (!match)
    return {
      ok: false,
      reason: 'BadFormat',
      detail: `${siteLinkHeaders.signature} is not v1:{time}:{nonce}:{mac}`,
    };
  const [, timeText, nonce, mac] = match as unknown as [string, string, string, string];
  const expected = createHmac('sha256', secret)
    .update(canonical(request, Number(timeText), nonce), 'utf8')
    .digest();
  const given = Buffer.from(mac, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'BadSignature', detail: "the signature does not match this site's secret" };
  if (request.relayPath.toLowerCase() !== options.ownRelayPath.toLowerCase())
    return {
      ok: false,
      reason: 'WrongServer',
      detail: `the request is for ${request.relayPath}, this agent is ${options.ownRelayPath}`,
    };
  const now = (options.now ?? new Date()).getTime();
  const time = Number(timeText) * 1000;
  if (Math.abs(now - time) > signatureWindowMs)
    return {
      ok: false,
      reason: 'Stale',
      detail: `signed at ${new Date(time).toISOString()}, more than ${signatureWindowMs / 60_000} minutes from this agent's clock`,
    };
  if (!options.nonces.remember(nonce, time + signatureWindowMs, now))
    return { ok: false, reason: 'Replayed', detail: `nonce ${nonce} was already used` };
  return { ok: true };
}

/** A certificate fingerprint as the config writes it (hex, any case, colons optional), normalised. */
export function normaliseFingerprint(text: string): string {
  return text.replace(/:/g, '').toUpperCase();
}

export function fingerprintOf(certificatePem: string): string {
  return normaliseFingerprint(new X509Certificate(certificatePem).fingerprint256);
}

/**
 * An https.Agent that hands out a connection only once the peer presented the pinned certificate:
 * no request byte is written to anyone else. TLS sessions are not resumed (a resumed session shows
 * no certificate to check); connections are kept alive instead.
 */
export class PinnedAgent extends https.Agent {
  readonly #fingerprint: string;

  constructor(certificateSha256: string, options: https.AgentOptions = {}) {
    super({ keepAlive: true, maxSockets: 8, timeout: 30_000, ...options });
    this.#fingerprint = normaliseFingerprint(certificateSha256);
  }

  override createConnection(
    options: tls.ConnectionOptions,
    callback?: (error: Error | null, socket: Duplex) => void,
  ): undefined {
    const socket = tls.connect({ ...options, rejectUnauthorized: false, session: undefined });
    const fail = (error: Error): void => {
      socket.destroy();
      callback?.(error, socket);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      const presented = normaliseFingerprint(socket.getPeerCertificate().fingerprint256 ?? '');
      if (presented !== this.#fingerprint) {
        const error = Object.assign(
          new Error(
            `the agent presented certificate ${presented || '(none)'}, not the pinned ${this.#fingerprint}`,
          ),
          { code: 'CERT_PIN_MISMATCH' },
        );
        socket.destroy();
        callback?.(error, socket);
        return;
      }
      callback?.(null, socket);
    });
    return undefined;
  }
}

export interface SiteLinkListenerOptions {
  /** Where to listen on the LAN (default all interfaces) and the port (0: any free one, for tests). */
  readonly host: string;
  readonly port: number;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly secret: Buffer;
  /** This server's relay path (its name at the hub). */
  readonly relayPath: string;
  readonly handler: (request: IncomingRelayRequest) => Promise<RelayReply>;
  readonly logger?: Logger;
  readonly now?: () => Date;
}

export interface SiteLinkListener {
  /** https://{host}:{port} as listened on. */
  readonly url: string;
  readonly certificateSha256: string;
  close(): Promise<void>;
}

/** The agent's LAN listener for its site hub: HTTPS with its own certificate, HMAC-checked requests. */
export async function startSiteLinkListener(options: SiteLinkListenerOptions): Promise<SiteLinkListener> {
  const logger = options.logger ?? silentLogger;
  const nonces = new NonceCache();
  const server = https.createServer({
    cert: options.certificatePem,
    key: options.privateKeyPem,
    minVersion: 'TLSv1.2',
  });
  server.keepAliveTimeout = 60_000;
  server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    void serve(request, response).catch((error: unknown) => {
      logger.error('SiteLinkRequestFailed', { error: (error as Error).message });
      if (!response.headersSent)
        send(response, {
          status: 500,
          body: errorReplyBody(
            'InternalError',
            `agent failed to handle the request: ${(error as Error).message}`,
          ),
        });
    });
  });
  // A LAN scanner's half-open handshake is not our problem; it must not end the agent.
  server.on('tlsClientError', (error: Error) => logger.warn('SiteLinkTlsError', { error: error.message }));

  async function serve(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const body = await readBody(request);
    if (body === undefined)
      return send(response, {
        status: 413,
        body: errorReplyBody('TooLarge', `request body over ${maxRequestBody} bytes`),
      });
    const path = request.url ?? '/';
    const relayPath = header(request, siteLinkHeaders.relayPath) ?? '';
    const verdict = verifySiteRequest(
      options.secret,
      header(request, siteLinkHeaders.signature),
      { method: request.method ?? 'GET', path, relayPath, body },
      { ownRelayPath: options.relayPath, nonces, ...(options.now ? { now: options.now() } : {}) },
    );
    if (!verdict.ok) {
      logger.warn('SiteLinkRequestRefused', {
        reasonCode: `HubSignature${verdict.reason}` satisfies ReasonCode,
        reasonDetail: verdict.detail,
        remote: request.socket.remoteAddress,
        path,
      });
      return send(response, {
        status: verdict.reason === 'WrongServer' ? 421 : 401,
        body: errorReplyBody(`HubSignature${verdict.reason}`, verdict.detail),
      });
    }
    send(
      response,
      await options.handler({ method: request.method ?? 'GET', path, headers: request.headers, body }),
    );
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
  const url = `https://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  const certificateSha256 = fingerprintOf(options.certificatePem);
  logger.info('SiteLinkListening', { url, relayPath: options.relayPath, certificateSha256 });
  return {
    url,
    certificateSha256,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function header(request: http.IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function send(response: http.ServerResponse, reply: RelayReply): void {
  const body = Buffer.isBuffer(reply.body) ? reply.body : Buffer.from(reply.body, 'utf8');
  response.writeHead(reply.status, {
    'content-type': 'application/json',
    ...reply.headers,
    'content-length': String(body.length),
  });
  response.end(body);
}

async function readBody(request: http.IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxRequestBody) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
